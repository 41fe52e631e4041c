#!/usr/bin/env bash
# Installs what `make image` and the image test need on Debian bookworm, idempotently:
# Debian's docker.io (dockerd, containerd, runc and the docker client) and debootstrap (for the
# locally assembled base image, hack/image-base.sh). apt runs only when one is missing (root or
# sudo then). Non-interactive: safe with no stdin (CI).
set -euo pipefail

packages=(docker.io debootstrap)

missing=()
for p in "${packages[@]}"; do
  # A removed package with leftover config files is still known to dpkg: check its status.
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != 'install ok installed' ]; then missing+=("$p"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "image-deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo=(sudo -n); else
    echo "image-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
# Wait for the dpkg lock instead of failing when another install is running.
apt=(apt-get -q -o DPkg::Lock::Timeout=600)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update </dev/null >&2
# No recommends: we start our own dockerd (hack/image-docker.sh); the distribution's service, if
# the init system starts one, is not used.
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${packages[@]}" </dev/null >&2
