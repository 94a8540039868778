#!/usr/bin/python3
"""A small kvd client in Python: put, get, scan, delete, a conditional put.

Uses Debian's python3-grpcio and python3-protobuf (1.51, like the server) and
stubs generated from proto/kv.proto:

    protoc -I proto --python_out=OUT --grpc_out=OUT \
        --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" proto/kv.proto
    PYTHONPATH=OUT /usr/bin/python3 examples/python/kv_example.py 127.0.0.1:7071

The build generates them into BUILD_DIR/examples/python (see
tests/e2e/CMakeLists.txt), so after scripts/build.sh:

    PYTHONPATH=build/examples/python /usr/bin/python3 \
        examples/python/kv_example.py 127.0.0.1:7071

Every step prints one line. Exit code 0 when every step did what kv.proto
promises, 1 otherwise (the failing step says what it got).
"""

import sys

import grpc

import kv_pb2
import kv_pb2_grpc

# The node's default key limit (kvd --max-key-bytes).
DEFAULT_MAX_KEY_BYTES = 4096


class StepFailed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise StepFailed(what)


def expect_code(call, code, what):
    """Runs call(); it must fail with the gRPC status `code`."""
    try:
        call()
    except grpc.RpcError as e:
        expect(e.code() == code,
               f"{what}: want {code.name}, got {e.code().name}: {e.details()}")
        return e
    raise StepFailed(f"{what}: want {code.name}, the call succeeded")


def fmt_version(v):
    return f"{v.hlc}:{v.node_id}"


def run_demo(channel, prefix=b"py-demo/", max_key_bytes=DEFAULT_MAX_KEY_BYTES,
             out=print):
    """Runs every step against the node behind `channel`; raises StepFailed
    (or grpc.RpcError for an unexpected error) on the first step that does not
    do what kv.proto says."""
    kv = kv_pb2_grpc.KVStub(channel)
    key = prefix + b"greeting"

    put = kv.Put(kv_pb2.PutRequest(key=key, value=b"hello"), timeout=5)
    expect(put.version.hlc != 0, "put: no version")
    out(f"put {key.decode()} = hello -> version {fmt_version(put.version)}")

    got = kv.Get(kv_pb2.GetRequest(key=key), timeout=5)
    expect(got.found and got.value == b"hello", f"get: got {got}")
    expect(got.version == put.version, "get: not the put's version")
    out(f"get {key.decode()} -> {got.value.decode()} "
        f"(version {fmt_version(got.version)})")

    # Conditional put at the version just read: succeeds.
    cond = kv.Put(kv_pb2.PutRequest(
        key=key, value=b"hello again",
        precondition=kv_pb2.Precondition(expected_version=got.version)),
        timeout=5)
    out(f"put {key.decode()} if version {fmt_version(got.version)} -> "
        f"version {fmt_version(cond.version)}")

    # The same condition again: the version moved on, so FAILED_PRECONDITION.
    err = expect_code(lambda: kv.Put(kv_pb2.PutRequest(
        key=key, value=b"lost update",
        precondition=kv_pb2.Precondition(expected_version=got.version)),
        timeout=5), grpc.StatusCode.FAILED_PRECONDITION,
        "stale conditional put")
    out(f"put {key.decode()} if version {fmt_version(got.version)} (stale) -> "
        f"{err.code().name}: {err.details()}")
    err = expect_code(lambda: kv.Put(kv_pb2.PutRequest(
        key=key, value=b"x",
        precondition=kv_pb2.Precondition(must_not_exist=True)), timeout=5),
        grpc.StatusCode.FAILED_PRECONDITION, "put if absent on a live key")
    out(f"put {key.decode()} if absent -> {err.code().name}: {err.details()}")

    for name in (b"a", b"b", b"c"):
        kv.Put(kv_pb2.PutRequest(key=prefix + b"list/" + name,
                                 value=b"value-" + name), timeout=5)
    entries = [e for chunk in kv.Scan(
        kv_pb2.ScanRequest(prefix=prefix + b"list/"), timeout=5)
        for e in chunk.entries]
    keys = [e.key for e in entries]
    expect(keys == [prefix + b"list/" + n for n in (b"a", b"b", b"c")],
           f"scan: got keys {keys}")
    out(f"scan prefix {(prefix + b'list/').decode()} -> " + ", ".join(
        f"{e.key.decode()}={e.value.decode()}" for e in entries))

    deleted = kv.Delete(kv_pb2.DeleteRequest(key=key), timeout=5)
    after = kv.Get(kv_pb2.GetRequest(key=key), timeout=5)
    expect(not after.found, "get after delete: still found")
    expect(after.version == deleted.version,
           "get after delete: not the tombstone's version")
    out(f"delete {key.decode()} -> version {fmt_version(deleted.version)}; "
        f"get -> found={after.found}")

    too_long = b"k" * (max_key_bytes + 1)
    err = expect_code(lambda: kv.Put(kv_pb2.PutRequest(key=too_long, value=b"v"),
                                     timeout=5),
                      grpc.StatusCode.INVALID_ARGUMENT, "put of a key over the limit")
    out(f"put of a {len(too_long)}-byte key -> {err.code().name}: {err.details()}")


def main(argv):
    endpoint = argv[1] if len(argv) > 1 else "127.0.0.1:7070"
    with grpc.insecure_channel(endpoint) as channel:
        try:
            run_demo(channel)
        except StepFailed as e:
            print(f"FAILED: {e}", file=sys.stderr)
            return 1
        except grpc.RpcError as e:
            print(f"FAILED: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    print("all steps ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
