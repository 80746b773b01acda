"""Running the workspace's own Evaluator (`python -m Evaluator.cli`) and reading what it prints.

Plain functions and one small stateful reader; the job logic in evaluation_jobs.py calls them
with values it took from the database and settings.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

# The servers the Evaluator's CLI can talk to (its --backend choices).
EVALUATOR_KINDS = ("ollama", "lmstudio")
DEFAULT_TEMPERATURE = 0.2  # the Evaluator's own default
OUTPUT_LINES = 200
LINE_CHARS = 500
# The Evaluator reads these itself, and OLLAMA_HOST as a bare host unlike Ollama; the server
# it talks to comes from --host/--port instead, so none of them may leak in.
SCRUBBED_ENV = ("OLLAMA_HOST", "OLLAMA_PORT", "LMSTUDIO_HOST", "LMSTUDIO_PORT")
# The dashboard's own settings and secrets are not the workspace's code's business.
DASHBOARD_ENV = ("SECRET_KEY", "DATABASE_URL")
DASHBOARD_ENV_PREFIXES = ("TUNER_", "DJANGO_")

RUNNING = re.compile(r"^\s*Running (\d+) evaluations")
CASE = re.compile(r"^\s*([✓✗])\s+(PASS|FAIL)\b")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
REQUEST_ERROR = re.compile(r"^\s+Error: ")  # indented under a ✗ FAIL line


@dataclass(frozen=True)
class Arguments:
    kind: str
    url: str
    model: str
    prompt_file: Path
    output: Path
    markdown: Path
    temperature: float = DEFAULT_TEMPERATURE
    tags: tuple[str, ...] = ()
    limit: int | None = None
    seed: int | None = None


def missing_parts(root: Path) -> str | None:
    """Why this workspace cannot run its Evaluator, or None when it can."""
    if not (root / "Evaluator" / "cli.py").is_file():
        return (
            f"This workspace ({root}) has no Evaluator/cli.py. The dashboard runs the "
            "workspace's own Evaluator: check out the training project there, with its "
            "Evaluator/ and tools/ folders."
        )
    if not (root / "tools" / "validate_syngen.py").is_file():
        return (
            f"This workspace ({root}) has Evaluator/ but no tools/validate_syngen.py, which the "
            "Evaluator imports to score tool calls: check out the project's tools/ folder too."
        )
    return None


def host_port(url: str) -> tuple[str, int]:
    """The Evaluator builds http://{host}:{port} itself: an IPv6 host keeps its brackets."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return host, parts.port or 80


def command(python: str, args: Arguments) -> list[str]:
    host, port = host_port(args.url)
    cmd = [python, "-u", "-m", "Evaluator.cli", "--backend", args.kind, "--model", args.model]
    cmd += ["--prompt-set", str(args.prompt_file), "--host", host, "--port", str(port)]
    cmd += ["--temperature", repr(args.temperature)]
    if args.tags:
        cmd += ["--tags", ",".join(args.tags)]
    if args.limit is not None:
        cmd += ["--limit", str(args.limit)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    return cmd + ["--output", str(args.output), "--markdown", str(args.markdown)]


def environment(base: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in base.items()
        if k not in SCRUBBED_ENV
        and k not in DASHBOARD_ENV
        and not k.startswith(DASHBOARD_ENV_PREFIXES)
    }
    # Live lines through a pipe, ✓/✗ whatever the locale, and no colours or wrapping when
    # `rich` is installed (it wraps at 80 columns off a terminal).
    env |= {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    env["COLUMNS"] = "500"
    return env


def start(python: str, args: Arguments, cwd: Path, base_env: Mapping[str, str]) -> subprocess.Popen:
    # Its own session: cancel and recovery stop the whole process group, and a Ctrl-C meant
    # for the worker's terminal does not reach it.
    return subprocess.Popen(
        command(python, args),
        cwd=cwd,
        env=environment(base_env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class Progress:
    """Cases done and passed, and the last lines, read from the Evaluator's output."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self.passed = 0
        self.request_errors = 0
        self.first_error: str | None = None
        self.version = 0  # counts lines read, so a reader can tell whether anything is new
        self.lines: deque[str] = deque(maxlen=OUTPUT_LINES)
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        line = ANSI.sub("", line).rstrip()
        with self._lock:
            self.version += 1
            self.lines.append(line[:LINE_CHARS])
            if m := RUNNING.match(line):
                self.total = int(m.group(1))
            elif m := CASE.match(line):
                self.done += 1
                self.passed += m.group(2) == "PASS"
            elif REQUEST_ERROR.match(line):  # a case whose request failed
                self.request_errors += 1
                self.first_error = self.first_error or line.strip()

    def read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.feed(raw.decode("utf-8", "replace"))

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "total": self.total,
                "done": self.done,
                "passed": self.passed,
                "output": "\n".join(self.lines),
            }

    def last_line(self) -> str | None:
        with self._lock:
            return next((s.strip() for s in reversed(self.lines) if s.strip()), None)


# What the Evaluator's exit codes say (cli_utils.py `determine_exit_code`).
EXIT_CODES = {0: "every case passed", 2: "some cases failed", 3: "request errors"}


def outcome(exit_code: int, progress: Progress, has_result: bool) -> tuple[str, str]:
    """The job's status and, when it failed, why in one line (exit codes from cli_utils.py)."""
    if exit_code in (0, 2) and has_result:  # 2: some cases failed, a finished evaluation
        return "succeeded", ""
    if exit_code == 3:
        return "failed", _line(
            f"{progress.request_errors} of {progress.total} cases got no answer from the server "
            f"(is it up, with the model on it?): {progress.first_error or 'no detail'}"
        )
    if exit_code < 0:
        return "failed", f"The Evaluator was killed by signal {-exit_code}."
    last = progress.last_line() or "no output"
    if "No module named 'requests'" in last:
        last += ". The Evaluator's Python needs `requests`: pip install requests"
    return "failed", _line(f"The Evaluator exited with code {exit_code}: {last}")


def _line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the Evaluator's process group, SIGKILL if it is still there after `grace`."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_orphan(pgid: int, grace: float) -> bool:
    """Stop an Evaluator a dead worker left running, if that process is still an Evaluator."""
    try:
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes()
    except OSError:
        return False  # gone, or no /proc to tell what it is: leave it alone
    if b"Evaluator.cli" not in cmdline:
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
