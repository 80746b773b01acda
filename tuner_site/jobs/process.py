"""The child process a job runs: started in its own session under resource limits, its output
read line by line, stopped as a whole process group."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

OUTPUT_LINES = 200
LINE_CHARS = 500
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Limits:
    """What the child may use: address space and the largest file it may write, in bytes."""

    memory_bytes: int | None = None
    file_bytes: int | None = None

    def apply(self) -> None:
        """In the child, before it runs its program (Popen's preexec_fn): nothing is imported
        there, as a fork may hold the import lock another thread had."""
        for which, value in (
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
        ):
            if value is not None:
                resource.setrlimit(which, (value, value))


def start(
    cmd: Sequence[str], cwd: Path, env: Mapping[str, str], limits: Limits
) -> subprocess.Popen[bytes]:
    # Its own session: cancel and recovery stop the whole process group, and a Ctrl-C meant
    # for the worker's terminal does not reach it. The limits apply to the child only; the
    # worker is single-threaded when it starts one, as preexec_fn needs.
    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=limits.apply,  # noqa: PLW1509
    )


# An absolute path outside the workspace (not part of a URL): only its last part is shown.
ABSOLUTE = re.compile(r"(?<![\w.:/~-])/(?:[\w.@+~-]+/)+([\w.@+~-]+)")


def hide_paths(text: str, root: Path | None) -> str:
    """What a child printed, for viewers who may not see this machine's folders: paths in the
    workspace become relative, any other absolute path keeps only its last part."""
    if root is not None:
        text = text.replace(f"{root}/", "").replace(str(root), root.name)
    return ABSOLUTE.sub(r"…/\1", text)


class OutputTail:
    """The last lines a child printed; a kind of job reads more from them in `parse`."""

    def __init__(self) -> None:
        self.version = 0  # counts lines read, so a reader can tell whether anything is new
        self.lines: deque[str] = deque(maxlen=OUTPUT_LINES)
        self._lock = threading.Lock()

    def parse(self, line: str) -> None:
        """Called for each line, holding the lock."""

    def fields(self) -> dict[str, object]:
        """The job's fields this output sets besides `output`, holding the lock."""
        return {}

    def feed(self, line: str) -> None:
        line = ANSI.sub("", line).rstrip()
        with self._lock:
            self.version += 1
            self.lines.append(line[:LINE_CHARS])
            self.parse(line)

    def read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.feed(raw.decode("utf-8", "replace"))

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {**self.fields(), "output": "\n".join(self.lines)}

    def last_line(self) -> str | None:
        with self._lock:
            return next((s.strip() for s in reversed(self.lines) if s.strip()), None)

    def mentions(self, text: str) -> bool:
        with self._lock:
            return any(text in line for line in self.lines)


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the child's process group, SIGKILL if it is still there after `grace`."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_orphan(pgid: int, grace: float, marker: bytes) -> bool:
    """Stop a child a dead worker left running, if that process still runs `marker`."""
    try:
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes()
    except OSError:
        return False  # gone, or no /proc to tell what it is: leave it alone
    if marker not in cmdline:
        return False  # the pid was reused by something else
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def pid_alive(pid: int) -> bool:
    """Whether a process runs here; a zombie (dead, not yet reaped) counts as gone."""
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    try:  # no /proc (macOS): signal 0 only asks whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
