#!/usr/bin/env bash
# `make image`: builds the Dockerfile into dist/image.tar (`docker save` of oci-source-controller:dev)
# with no access to public container registries:
#  1. Debian's docker.io and debootstrap, installed when missing (hack/image-deps.sh);
#  2. a base image equivalent to node:24-bookworm-slim, assembled locally and cached
#     (hack/image-base.sh), passed as BASE_IMAGE;
#  3. a dockerd of our own: data and exec roots, pidfile and socket under the build directory,
#     no bridge, no iptables; the build uses the host network (npm ci reaches the registry);
#  4. build, save, and stop that dockerd (by its PID) whatever happens.
# When dist/image.tar was built from exactly the same inputs (build context, Dockerfile, base,
# labels), nothing runs at all. The daemon's data root keeps the layer cache between builds.
#
# Env: IMAGE_BUILD_DIR (default .cache/image), IMAGE (default oci-source-controller:dev).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

image=${IMAGE:-oci-source-controller:dev}
build_dir=$(mkdir -p "${IMAGE_BUILD_DIR:-.cache/image}" && cd "${IMAGE_BUILD_DIR:-.cache/image}" && pwd)
out=dist/image.tar
log() { echo "image: $*" >&2; }

hack/image-deps.sh
base_tar=$(hack/image-base.sh)
base_key=$(basename "$(dirname "$base_tar")" | sed 's/^image-base-//')
base_image="oci-source-controller-base:$base_key"

# Labels. The source URL comes from package.json's repository, else the git remote.
version=$(node -p 'require("./package.json").version')
source_url=$(node -p 'const r = require("./package.json").repository; (typeof r === "string" ? r : r?.url) ?? ""')
[ -n "$source_url" ] || source_url=$(git remote get-url origin 2>/dev/null || true)
[ -n "$source_url" ] || source_url=unknown
context=(package.json package-lock.json tsconfig.json tsconfig.build.json src)
# The revision is the last commit that changed what goes into the image, so a commit touching only
# tests or docs neither changes the image nor rebuilds it.
revision=$(git log -1 --format=%H -- "${context[@]}" Dockerfile .dockerignore 2>/dev/null || true)
[ -n "$revision" ] || revision=unknown
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- "${context[@]}" Dockerfile .dockerignore)" ]; then
  revision="$revision-dirty"
fi

# Everything the result depends on; `sort -z` keeps the file order stable.
key=$( {
  find "${context[@]}" Dockerfile .dockerignore hack/image-build.sh -type f -print0 | sort -z | xargs -0 sha256sum
  echo "$image $base_key $version $revision $source_url"
} | sha256sum | cut -c1-64)
if [ -s "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
  log "$out is up to date ($image, revision $revision)"
  exit 0
fi

exec 8>"$build_dir/.lock"
flock 8

# The daemon's sockets must fit in sun_path (108 bytes); a deep checkout falls back to /tmp.
run_dir="$build_dir/run"
if [ ${#run_dir} -gt 60 ]; then run_dir=$(mktemp -d /tmp/osc-image-run.XXXXXX); fi
mkdir -p "$build_dir/data" "$run_dir"
sock="$run_dir/docker.sock"
pidfile="$run_dir/dockerd.pid"
dockerd_log="$build_dir/dockerd.log"
docker=(/usr/bin/docker -H "unix://$sock")
dockerd_pid=

stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  if kill -0 "$dockerd_pid" 2>/dev/null; then
    kill -TERM "$dockerd_pid"
    for _ in $(seq 1 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$dockerd_pid" 2>/dev/null; then log "dockerd did not stop in 30 s; killing it"; kill -KILL "$dockerd_pid"; fi
  fi
  wait "$dockerd_pid" 2>/dev/null || true
  dockerd_pid=
  # dockerd leaves its network namespace bind-mounted in the exec root; release it so that the
  # build directory can be deleted.
  awk -v p="$run_dir/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
}
trap stop_dockerd EXIT

start=$(date +%s)
/usr/sbin/dockerd \
  --data-root "$build_dir/data" --exec-root "$run_dir/exec" --pidfile "$pidfile" -H "unix://$sock" \
  --bridge=none --iptables=false --ip-masq=false \
  >"$dockerd_log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 600); do
  if "${docker[@]}" version >/dev/null 2>&1; then break; fi
  if ! kill -0 "$dockerd_pid" 2>/dev/null; then
    log "dockerd exited while starting; its log ($dockerd_log):"; tail -n 30 "$dockerd_log" >&2; exit 1
  fi
  sleep 0.1
done
"${docker[@]}" version >/dev/null || { log "dockerd not ready after 60 s:"; tail -n 30 "$dockerd_log" >&2; exit 1; }

if ! "${docker[@]}" image inspect "$base_image" >/dev/null 2>&1; then
  log "importing the base image $base_image"
  "${docker[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' "$base_tar" "$base_image" >/dev/null
fi

# Site CAs (a TLS-inspecting proxy on the way to the npm registry) for the build stage's npm ci.
extra_ca=$(cat /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt 2>/dev/null || true)

build() {
  "${docker[@]}" build --network host --build-arg "BASE_IMAGE=$base_image" --build-arg "EXTRA_CA_CERTS=$extra_ca" "$@" . \
    >>"$build_dir/build.log" 2>&1 || { log "docker build failed:"; tail -n 40 "$build_dir/build.log" >&2; exit 1; }
}
log "building $image (revision $revision)"
: >"$build_dir/build.log"
# The intermediate stages are tagged so that their layers (npm ci above all) stay cached when the
# prune below drops superseded builds.
for stage in production-modules build rootfs; do build --target "$stage" -t "oci-source-controller-cache:$stage"; done
build --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "SOURCE_URL=$source_url" -t "$image"

mkdir -p dist
"${docker[@]}" save -o "$out.tmp" "$image"
chmod 0644 "$out.tmp"   # docker save writes 0600; the archive holds nothing secret
mv "$out.tmp" "$out"
echo "$key" >"$out.key"
# Superseded builds would otherwise pile up in the data root; the layer cache of this one stays.
"${docker[@]}" image prune -f >/dev/null
size=$("${docker[@]}" image inspect -f '{{.Size}}' "$image")
stop_dockerd
log "built $out in $(( $(date +%s) - start )) s: $image, $(( size / 1000000 )) MB unpacked, $(( $(stat -c %s "$out") / 1000000 )) MB saved"
