#!/usr/bin/env bash
# Builds the Debian package kvstore_<version>_<arch>.deb (kvd, kvctl, the
# .proto files, a systemd unit and an example config; see cmake/Install.cmake)
# into $BUILD_DIR (default build-pkg, a Release build), and lists it.
#   scripts/package.sh            build and package
# Install: apt-get install ./build-pkg/kvstore_*.deb (pulls the libraries),
# then edit /etc/kvstore/kvd.conf and systemctl enable --now kvd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build-pkg}
sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release}
fi
cmake "$BUILD_DIR" -DKV_PACKAGE_VERSION="0.1.0+git$sha" >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target kvd kvctl
(cd "$BUILD_DIR" && cpack -G DEB)
deb=$(ls -t "$BUILD_DIR"/kvstore_*.deb | head -1)
echo "package: $deb"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
