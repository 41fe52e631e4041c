#!/usr/bin/env bash
# Peers the benchmarks compare against: nginx (static file serving), wrk (HTTP load), skopeo.
set -euo pipefail
pkgs=(nginx-light wrk skopeo)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" 2>/dev/null | grep -qx 'Status: install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2
  # Debian starts nginx as a service on install; the benchmark runs its own instance.
  (command -v systemctl >/dev/null && "${sudo[@]}" systemctl stop nginx 2>/dev/null) || "${sudo[@]}" pkill -x nginx 2>/dev/null || true
fi
