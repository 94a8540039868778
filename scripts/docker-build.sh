#!/usr/bin/env bash
# Builds the kvd image from the binaries built on this machine, without
# pulling anything (the Docker engine here cannot reach a registry).
#
#   scripts/docker-build.sh [--no-build]
#
# Builds kvd and kvctl (scripts/build.sh; skipped with --no-build), then an
# image FROM scratch (docker/Dockerfile) holding /kvd and /kvctl stripped,
# every shared library `ldd` lists for them at the path it lists, the loader
# /lib64/ld-linux-x86-64.so.2, and an empty /data for the data volume, owned
# by uid 65532, which the server runs as. Tags it IMAGE:<git sha> (with
# "-dirty" when the work tree has uncommitted changes) and IMAGE:latest and
# prints both. BUILD_DIR (default build) and IMAGE (default kvstore) override
# the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
IMAGE=${IMAGE:-kvstore}
case "${1:-}" in
  --no-build) ;;
  "") scripts/build.sh kvd kvctl ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 3 ;;
esac
bins=("$BUILD_DIR/server/kvd" "$BUILD_DIR/client/kvctl")
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "docker-build: no $b (build it first)" >&2; exit 2; }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
mkdir -p "$root/data"
for b in "${bins[@]}"; do
  strip --strip-unneeded -o "$root/$(basename "$b")" "$b"
done
# ldd lines: "libx.so.1 => /path/libx.so.1 (0x...)" or "/lib64/ld-linux... (0x...)";
# linux-vdso has no file. Copy each file (following links) to the path listed.
libs=$(ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(0x/ { print $1 }' |
  sort -u)
[ -n "$libs" ] || { echo "docker-build: ldd listed no library" >&2; exit 2; }
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
[ -f "$root/lib64/ld-linux-x86-64.so.2" ] ||
  { echo "docker-build: ldd did not list the loader /lib64/ld-linux-x86-64.so.2" >&2; exit 2; }
# One layer; ADD unpacks it keeping owners: root everywhere but /data.
tar -C "$root" --owner=0 --group=0 --numeric-owner --exclude=./data -cf "$stage/rootfs.tar" .
tar -C "$root" --owner=65532 --group=65532 --numeric-owner -rf "$stage/rootfs.tar" ./data
cp docker/Dockerfile "$stage/"

rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || rev="$rev-dirty"
echo "docker-build: $(echo "$libs" | wc -l) shared objects (libraries and loader); building $IMAGE:$rev"
old=$(docker image inspect -f '{{.Id}}' "$IMAGE:latest" 2>/dev/null || true)
# No buildx here: the legacy builder (its deprecation notice is expected).
DOCKER_BUILDKIT=0 docker build -q --label "org.opencontainers.image.revision=$rev" \
  -t "$IMAGE:$rev" -t "$IMAGE:latest" "$stage" >/dev/null
# The image that was IMAGE:latest before, when no tag is left on it (a rebuild
# at the same revision): remove it, unless a container still uses it.
if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$IMAGE:latest")" ] &&
  [ "$(docker image inspect -f '{{len .RepoTags}}' "$old" 2>/dev/null)" = 0 ]; then
  docker rmi "$old" >/dev/null 2>&1 || true
fi
size=$(docker image inspect -f '{{.Size}}' "$IMAGE:latest")
echo "docker-build: $IMAGE:$rev and $IMAGE:latest, $((size / 1000000)) MB"
