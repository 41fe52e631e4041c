#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` source package (see
# ../shared/notes/kube-apiserver.md) and caches the binary at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/oci-source-controller/kube-apiserver-<debian source version>/kube-apiserver
# Prints that path on stdout (logs go to stderr). With the cache present it only prints the path.
#
# Needs (hack/install-deps.sh installs them): golang-go make rsync dpkg-dev
# golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev, plus network access to
# the Debian archive. Never touches /etc/apt: it uses a private deb-src sources list.
#
# Env: KUBE_SRC_VERSION pins the Debian source version (default below); when that exact version
# is no longer in the archive, the newest bookworm version is built instead (with a warning).
set -euo pipefail

pinned=${KUBE_SRC_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/oci-source-controller"

cache_path() { printf '%s/kube-apiserver-%s/kube-apiserver' "$cache_root" "${1//:/_}"; }

# Fast path: cached binary for the pinned version, else any cached Debian build of 1.20.2.
fast_path() {
  local p
  p=$(cache_path "$pinned")
  if [ -x "$p" ]; then echo "$p"; return 0; fi
  for p in "$cache_root"/kube-apiserver-*really1.20.2*/kube-apiserver; do
    if [ -x "$p" ]; then echo "$p"; return 0; fi
  done
  return 1
}
if fast_path; then exit 0; fi

log() { echo "build-kube-apiserver: $*" >&2; }

mkdir -p "$cache_root"
# Serialise concurrent builds (several test files may ask at once); re-check after the lock.
exec 9>"$cache_root/.build.lock"
flock 9
if fast_path; then exit 0; fi

for tool in go make rsync dpkg-source apt-get; do
  command -v "$tool" >/dev/null || { log "missing '$tool': run hack/install-deps.sh"; exit 1; }
done
for d in /usr/share/gocode/src/github.com/modern-go/reflect2 /usr/share/gocode/src/github.com/json-iterator/go; do
  [ -d "$d" ] || { log "missing $d: install golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev"; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/osc-kube-apiserver-build.XXXXXX")
cleanup() {
  # The Go module/build caches contain read-only files.
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- private deb-src sources list, reusing the machine's Debian URI and keyring ---------------
uri="" signed_by=""
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
  # First deb822 stanza whose Suites include plain "bookworm".
  read -r uri signed_by < <(awk '
    BEGIN { RS=""; FS="\n" }
    {
      u=""; s=""; k=""; ok=0
      for (i = 1; i <= NF; i++) {
        line=$i
        if (line ~ /^URIs:/)      { sub(/^URIs:[ \t]*/, "", line); split(line, a, /[ \t]+/); u=a[1] }
        if (line ~ /^Suites:/)    { n=split(line, a, /[ \t]+/); for (j = 2; j <= n; j++) if (a[j] == "bookworm") ok=1 }
        if (line ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/, "", line); k=line }
      }
      if (ok && u != "") { print u, (k ~ /^\// ? k : "-"); exit }
    }' /etc/apt/sources.list.d/debian.sources) || true
fi
if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
  uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == "bookworm") { print $i; exit } } }' /etc/apt/sources.list) || true
fi
uri=${uri:-http://deb.debian.org/debian}
if [ -z "$signed_by" ] || [ "$signed_by" = "-" ]; then signed_by=/usr/share/keyrings/debian-archive-keyring.gpg; fi
log "using deb-src $uri bookworm main (signed-by $signed_by)"

mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/dl"
echo "deb-src [signed-by=$signed_by] $uri bookworm main" >"$work/apt/sources.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$work/apt/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" -q update >&2

available=$(apt-cache "${apt_opts[@]}" showsrc kubernetes 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -V | tail -n1)
[ -n "$available" ] || { log "no 'kubernetes' source package found in $uri bookworm"; exit 1; }
version=$pinned
if ! apt-cache "${apt_opts[@]}" showsrc kubernetes 2>/dev/null | grep -qx "Version: $pinned"; then
  log "WARNING: kubernetes source $pinned is not in the archive; building $available instead"
  version=$available
fi
out=$(cache_path "$version")

log "downloading kubernetes source $version"
(cd "$work/dl" && apt-get "${apt_opts[@]}" -q source --download-only "kubernetes=$version" >&2)
(cd "$work/dl" && dpkg-source -x kubernetes_*.dsc src >&2)
src="$work/dl/src"

# reflect2 v1.0.1 (vendored) crashes with Go >= 1.18 on the first custom-resource create:
# use Debian's packaged reflect2 and json-iterator instead.
for pair in modern-go/reflect2 json-iterator/go; do
  rm -rf "$src/vendor/github.com/$pair"
  cp -rL "/usr/share/gocode/src/github.com/$pair" "$src/vendor/github.com/$pair"
  chmod -R u+w "$src/vendor/github.com/$pair"
done

log "building kube-apiserver (GOPATH mode, offline; a few minutes)"
mkdir -p "$work/home" "$work/gocache" "$work/gotmp"
(
  cd "$src"
  unset GOFLAGS GOPATH GO111MODULE GOROOT
  export HOME="$work/home" GOCACHE="$work/gocache" GOTMPDIR="$work/gotmp" GOPROXY=off CGO_ENABLED=0
  make WHAT=cmd/kube-apiserver >&2
)
bin="$src/_output/bin/kube-apiserver"
[ -x "$bin" ] || { log "build finished but $bin is missing"; exit 1; }
ver=$("$bin" --version)
log "built: $ver"
case "$ver" in *v1.20.2*) ;; *) log "unexpected version output: $ver"; exit 1 ;; esac

mkdir -p "$(dirname "$out")"
cp "$bin" "$out.tmp.$$"
chmod 0755 "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
log "cached at $out"
echo "$out"
