#!/usr/bin/env bash
# Checks the Debian package in a clean environment: a debootstrap bookworm
# chroot (made once in $ROOTFS, default /tmp/kvstore-pkg-rootfs; needs root
# and the Debian mirror), apt-get install of the .deb with its dependencies,
# then kvd started from it as the unit would (user kvstore, the packaged
# /etc/kvstore/kvd.conf; the port from KVD_LISTEN), kvctl health/put/get and
# a snapshot, kvd --version. Exit 0 when all of that works.
#   scripts/package_test.sh [DEB]     (default: the newest build-pkg/kvstore_*.deb)
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(ls -t build-pkg/kvstore_*.deb 2>/dev/null | head -1)}
[ -f "$deb" ] || { echo "no package; run scripts/package.sh first" >&2; exit 2; }
ROOTFS=${ROOTFS:-/tmp/kvstore-pkg-rootfs}
if [ ! -x "$ROOTFS/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || apt-get install -y debootstrap >/dev/null
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  debootstrap --variant=minbase bookworm "$ROOTFS" "${mirror:-http://deb.debian.org/debian}"
fi
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  umount "$ROOTFS/proc" 2>/dev/null || true
}
trap cleanup EXIT
cp "$deb" "$ROOTFS/tmp/kvstore.deb"
chroot "$ROOTFS" apt-get install -y --reinstall /tmp/kvstore.deb >/dev/null
chroot "$ROOTFS" dpkg -s kvstore | grep -E '^(Status|Version):'
chroot "$ROOTFS" /usr/bin/kvd --version
chroot "$ROOTFS" /usr/bin/kvctl --version
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chroot --userspec=kvstore:kvstore "$ROOTFS" /usr/bin/env KVD_LISTEN=127.0.0.1:$port \
  /usr/bin/kvd --config /etc/kvstore/kvd.conf &
pid=$!
kvctl() { chroot "$ROOTFS" /usr/bin/kvctl -e 127.0.0.1:$port "$@"; }
for _ in $(seq 100); do kvctl health >/dev/null 2>&1 && break; sleep 0.1; done
kvctl health
kvctl put package-test ok >/dev/null
[ "$(kvctl get package-test)" = ok ]
snap=/var/lib/kvstore/snap-$(date +%s)
kvctl snapshot save "$snap"
echo "package test: ok ($deb)"
