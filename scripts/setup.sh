#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need. Idempotent: when
# everything is present it only checks (a second or so) and exits.
set -euo pipefail

PACKAGES=(
  cmake ninja-build ccache pkg-config g++
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  librocksdb-dev libabsl-dev libgtest-dev libgmock-dev
  libcli11-dev libspdlog-dev libfmt-dev libxxhash-dev
  clang-14 libclang-rt-14-dev python3
  python3-grpcio python3-protobuf  # examples/python and its test
  libcpp-httplib-dev  # kvd's /metrics HTTP server
  python3-prometheus-client openssl  # metrics and TLS tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
