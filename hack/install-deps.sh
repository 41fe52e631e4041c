#!/usr/bin/env bash
# Installs what the integration tests and the demo need on Debian bookworm, idempotently:
#  - the Debian packages below (apt only when at least one is missing; needs root then);
#  - a kube-apiserver v1.20.2 built from Debian's source package (hack/build-kube-apiserver.sh,
#    cached under ${XDG_CACHE_HOME:-$HOME/.cache}/oci-source-controller/).
# Non-interactive: safe with no stdin (CI).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

packages=(
  docker-registry etcd-server etcd-client golang-go make rsync jq dpkg-dev
  golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  skopeo apache2-utils openssl
)

# The harness runs kubectl (/usr/bin/kubectl). Any kubectl will do; when there is none, Debian's
# kubernetes-client (kubectl 1.20.2, same version as the test apiserver) provides it.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x /usr/bin/kubectl ]; then
  packages+=(kubernetes-client)
fi

missing=()
for p in "${packages[@]}"; do
  # `dpkg -s` succeeds for removed packages with leftover config files, so check the status line.
  if ! dpkg -s "$p" 2>/dev/null | grep -qx 'Status: install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo -n); else
      echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${packages[@]}" </dev/null >&2
fi

"$here/build-kube-apiserver.sh" >/dev/null
