#!/usr/bin/env bash
# Generates the Go stubs for proto/kv.proto into examples/go/kvpb (not
# committed), with protoc-gen-go and protoc-gen-go-grpc built from the versions
# pinned in go.mod (its `tool` lines) through the Go module proxy. Run by
# `go generate` (see main.go) and by examples/go/test.sh.
#
# kv.proto has no go_package option (changing it would rebuild every C++ unit
# that includes kv.pb.h); the import path is given with protoc's M option
# instead. For stubs of your own, pass your package's import path there:
#   protoc -I proto --go_out=OUT --go_opt=Mkv.proto=example.com/you/kvpb ...
set -euo pipefail
cd "$(dirname "$0")"
bin=$(mktemp -d)
out=$(mktemp -d)
trap 'rm -rf "$bin" "$out"' EXIT
go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc
pkg=kvstore/examples/go/kvpb
protoc -I ../../proto \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --go_out="$out" --go_opt=paths=source_relative,Mkv.proto=$pkg \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative,Mkv.proto=$pkg \
  kv.proto
# Replace the package in one step, so that a concurrent build never sees half.
mkdir -p kvpb
mv -f "$out/kv.pb.go" "$out/kv_grpc.pb.go" kvpb/
