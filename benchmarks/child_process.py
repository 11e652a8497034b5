"""A benchmark's child process, driven over stdin/stdout with one JSON line each way.

The benchmarks measure their in-process cells in a process of their own, under the servers'
TensorFlow thread setting, so that neither side pays for the other's threads. The parent runs
`python SCRIPT --child ARG...` (the script's own hidden `--child` flag) and the child speaks:

1. when it has loaded and warmed up, one line `{"ready": true}`;
2. then, for each request (one JSON object on one line of its stdin, with the benchmark's own
   fields), one JSON object on one line of its stdout: the answer, or `{"error": "..."}` when
   that request failed;
3. when its stdin closes, it exits.

Its stdout carries nothing else; logs go to stderr, which the child shares with the parent.

    child = ChildProcess(__file__, spec_file, "1,0")  # starts it; loads while the parent goes on
    child.ready()                                     # waits for {"ready": true}
    answer = child.ask({"model": "simple_cnn", "seconds": 1.5})
    child.stop()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


class ChildProcess:
    """`python script --child *args`, asked one JSON request at a time.

    Args:
        script: the benchmark's file (its `__file__`).
        *args: the arguments after `--child` (paths are turned into strings).
        what: how errors name the child.
    """

    def __init__(self, script: str | os.PathLike, *args, what: str = "the in-process child"):
        self.what = what
        self.process = subprocess.Popen([sys.executable, str(script), "--child", *map(str, args)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ready(self) -> None:
        """Wait until the child has loaded and warmed up; RuntimeError if it says anything else or exits."""
        line = self.process.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"{self.what} did not start")

    def ask(self, request: dict) -> dict:
        """The child's answer to `request`; RuntimeError with the child's message if it answers an error."""
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.what} died")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def stop(self) -> None:
        """Close the child's stdin (its signal to exit) and wait for it."""
        self.process.stdin.close()
        self.process.wait(timeout=60)
