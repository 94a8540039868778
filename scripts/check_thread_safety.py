#!/usr/bin/python3
"""Runs clang's -Wthread-safety analysis over every non-test source.

The build itself uses g++ (which has no such analysis); this check compiles
each translation unit of compile_commands.json once more with clang++,
-fsyntax-only, and fails on any thread-safety warning. Usage:
  check_thread_safety.py BUILD_DIR
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys


def main() -> int:
    build_dir = sys.argv[1] if len(sys.argv) > 1 else "build"
    source_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        commands = json.load(f)
    jobs = []
    for entry in commands:
        path = entry["file"]
        # Our own sources only: not generated code, not tests.
        if not path.startswith(source_root + "/") or path.endswith("_test.cc"):
            continue
        if os.path.abspath(path).startswith(os.path.abspath(build_dir)):
            continue
        args = shlex.split(entry["command"])
        compiler = next(i for i, a in enumerate(args) if a.endswith(("c++", "g++")))
        out, skip = ["clang++-14"], False
        for a in args[compiler + 1:]:
            if skip:
                skip = False
                continue
            if a == "-o":
                skip = True
                continue
            if a == "-c":
                continue
            out.append(a)
        out += ["-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety",
                "-Wno-unused-command-line-argument"]
        jobs.append((path, out, entry["directory"]))

    def run(job):
        path, out, directory = job
        return path, subprocess.run(out, cwd=directory, capture_output=True, text=True)

    checked, failed = 0, 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for path, result in pool.map(run, jobs):
            checked += 1
            if result.returncode != 0:
                failed += 1
                print(f"thread-safety: {os.path.relpath(path, source_root)}:")
                print(result.stderr)
    print(f"thread-safety: {checked} sources checked with clang -Wthread-safety, "
          f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
