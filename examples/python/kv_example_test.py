#!/usr/bin/python3
"""Runs the Python example against a live kvd that the test starts.

    KVD=build/server/kvd PYTHONPATH=build/examples/python \
        /usr/bin/python3 examples/python/kv_example_test.py

kvd listens on a free loopback port (--listen 127.0.0.1:0, the bound address
read from its --ready-file) with its data in a temporary directory; it is
stopped with SIGTERM (SIGKILL after 10 s) whatever the outcome.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kv_example  # noqa: E402
import kv_pb2  # noqa: E402
import kv_pb2_grpc  # noqa: E402

KVD = os.environ.get("KVD", "build/server/kvd")


class KvdProcess:
    def __init__(self, *extra_args):
        self.dir = tempfile.mkdtemp(prefix="kv-python-example-")
        ready = os.path.join(self.dir, "ready")
        self.log = open(os.path.join(self.dir, "kvd.log"), "w+")
        self.proc = subprocess.Popen(
            [KVD, "--name", "py-example", "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(self.dir, "data"),
             "--ready-file", ready, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                with open(ready) as f:
                    self.endpoint = f.read().strip()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"kvd did not start; its log:\n{self.log_text()}")

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ExampleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kvd = KvdProcess()
        cls.channel = grpc.insecure_channel(cls.kvd.endpoint)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.kvd.stop()

    def test_demo_steps(self):
        lines = []
        kv_example.run_demo(self.channel, out=lines.append)
        print(f"\n--- kv_example.py against kvd at {self.kvd.endpoint}")
        print("\n".join(lines))
        self.assertEqual(len(lines), 8)

    def test_exact_codes(self):
        kv = kv_pb2_grpc.KVStub(self.channel)
        with self.assertRaises(grpc.RpcError) as ctx:
            kv.Put(kv_pb2.PutRequest(
                key=b"never-written", value=b"v",
                precondition=kv_pb2.Precondition(
                    expected_version=kv_pb2.Version(hlc=1, node_id=1))),
                timeout=5)
        self.assertEqual(ctx.exception.code(),
                         grpc.StatusCode.FAILED_PRECONDITION)
        with self.assertRaises(grpc.RpcError) as ctx:
            kv.Get(kv_pb2.GetRequest(key=b"k" * 4097), timeout=5)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("4096", ctx.exception.details())
        # Nothing was written by the failed put.
        self.assertFalse(
            kv.Get(kv_pb2.GetRequest(key=b"never-written"), timeout=5).found)

    def test_main_exit_code(self):
        self.assertEqual(kv_example.main(["kv_example.py", self.kvd.endpoint]),
                         0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
