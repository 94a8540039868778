#!/usr/bin/env bash
# Installs missing packages, builds kvd and kvctl, and runs one node in the
# foreground (Ctrl-C stops it cleanly): by default node1 on 127.0.0.1:7070
# with its data in ./data/node1. Extra arguments go to kvd and override those
# defaults, e.g. a second node:
#   scripts/run.sh --name node2 --listen 127.0.0.1:7071 --data-dir data/node2 \
#     --seeds 127.0.0.1:7070
# The defaults are passed as environment variables (KVD_NAME, KVD_LISTEN,
# KVD_DATA_DIR), which kvd's flags override; set them yourself to change the
# defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh kvd kvctl
BUILD_DIR=${BUILD_DIR:-build}
export KVD_NAME=${KVD_NAME:-node1}
export KVD_LISTEN=${KVD_LISTEN:-127.0.0.1:7070}
export KVD_DATA_DIR=${KVD_DATA_DIR:-data/node1}
# What kvd will use, for the message below (a flag beats the variable).
name=$KVD_NAME listen=$KVD_LISTEN data_dir=$KVD_DATA_DIR
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  next=${args[i + 1]:-}
  case ${args[i]} in
    --name) name=$next ;;
    --name=*) name=${args[i]#*=} ;;
    --listen) listen=$next ;;
    --listen=*) listen=${args[i]#*=} ;;
    --data-dir) data_dir=$next ;;
    --data-dir=*) data_dir=${args[i]#*=} ;;
  esac
done
mkdir -p "$(dirname "$data_dir")"
echo "kvd: starting $name on $listen, data in $data_dir"
echo "kvd: try   $BUILD_DIR/client/kvctl -e $listen put hello world && $BUILD_DIR/client/kvctl -e $listen get hello"
exec "$BUILD_DIR/server/kvd" "$@"
