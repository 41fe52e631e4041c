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

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
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

# kubectl is used by the test harness; it is not in bookworm, so only warn.
command -v kubectl >/dev/null || echo "install-deps: WARNING: kubectl not found on PATH (test/harness/kube.ts uses /usr/bin/kubectl)" >&2

"$here/build-kube-apiserver.sh" >/dev/null
