"""The background pass over first-answered logs, in a second process: `python -m discovery.verify`.

It reads requests (a log path, its root and the steps a table needs, marshalled and
length-prefixed: names may hold any character, newlines and tabs too) on stdin and answers
each with the log's exact index fields, marshalled and length-prefixed, on stdout. A plain
subprocess rather than multiprocessing: nothing of the parent's main module is imported again.
"""

from __future__ import annotations

import marshal
import subprocess
import sys
import threading
from typing import Any


def serve() -> None:
    from .logindex import verify_file

    stdin, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        while header := stdin.read(8):
            path, root, targets = marshal.loads(_read(stdin, int.from_bytes(header, "little")))
            out.write(_framed(verify_file(path, root, targets)))
            out.flush()
    except (BrokenPipeError, EOFError):
        pass  # the server went away mid-answer: nothing is left to answer


def _framed(value: Any) -> bytes:
    data = marshal.dumps(value)
    return len(data).to_bytes(8, "little") + data


class Worker:
    """The parent's end: one worker process, started on first use, restarted if it dies."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def check(self, path: str, root: str, targets: list[int]) -> tuple[Any, ...] | None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "discovery.verify"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=None,
                )
            proc = self._proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(_framed((path, root, targets)))
                proc.stdin.flush()
                size = int.from_bytes(_read(proc.stdout, 8), "little")
                value = marshal.loads(_read(proc.stdout, size))
            except (OSError, EOFError, ValueError):
                proc.kill()
                self._proc = None
                raise OSError("the background check process stopped") from None
            return value if isinstance(value, tuple) else None


def _read(stream: Any, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


if __name__ == "__main__":
    serve()
