"""`make run` (`manage.py serve`): a busy port is refused before anything starts, the demo's
inference server links its models to their runs, and nothing is left running however it ends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import REPO

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/environ").exists(), reason="finds leftover processes through /proc"
)


def _env(data: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TUNER_", "DJANGO_", "DATABASE_URL", "OLLAMA", "LMSTUDIO"))
    }
    # The data folder marks every process started for this test.
    return env | {"TUNER_DATA_DIR": str(data), "LMSTUDIO_HOST": ""}


def _ours(data: Path) -> dict[int, str]:
    """The command line of each process whose environment names this test's data folder."""
    marker = f"TUNER_DATA_DIR={data}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and marker in _read(proc / "environ").split(b"\0"):
            found[int(proc.name)] = _read(proc / "cmdline").replace(b"\0", b" ").decode()
    return found


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""  # gone meanwhile, or not ours to read


def _gone(data: Path, within: float = 20.0) -> dict[int, str]:
    deadline = time.monotonic() + within
    while (left := _ours(data)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_refuses_a_busy_port_in_one_line_and_starts_nothing(tmp_path, busy_port):
    data = tmp_path / "data"
    out = subprocess.run(
        ["make", "-s", "run", f"PORT={busy_port}"],
        cwd=REPO,
        env=_env(data),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    # The last line but make's own (an install after pyproject.toml changed may come first).
    said = [line for line in out.stderr.splitlines() if not line.startswith("make")]
    assert said[-1] == (
        f"Port {busy_port} on 127.0.0.1 is in use by another program: stop it, or choose "
        f"another port, e.g. PORT={busy_port + 1} make run"
    )
    assert "Demo workspace ready" not in out.stdout
    assert not (data / "demo-workspace").exists() and not (data / "tuner.sqlite3").exists()
    assert _gone(data, within=0) == {}


class Serve:
    """`manage.py serve` on a free port, for the demo; stopped (and checked) by the fixture."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, _free_port()
        self.log = data.parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=_env(data),
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                httpx.get(self.url + "/", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError("the server never answered:\n" + self.output())


@pytest.fixture
def serve(tmp_path) -> Iterator[Serve]:
    s = Serve(tmp_path / "data")
    yield s
    stopped = s.proc.poll() is not None
    if not stopped:  # the test failed before stopping it
        os.killpg(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
    left = _ours(s.data)
    for pid in left:  # never leave one behind, even when the test failed
        os.kill(pid, signal.SIGKILL)
    assert not (stopped and left), f"left running: {left}"


def _backends(url: str, *, want_exact: int) -> dict:
    """/api/backends/ once the demo server's models are linked (GGUF files hash in the
    background, so the first answers may link by name)."""
    deadline = time.monotonic() + 30
    while True:
        body = httpx.get(url + "/api/backends/", timeout=10).json()
        ollama = next(b for b in body["backends"] if b["kind"] == "ollama")
        links = [(m["lineage"] or {}).get("link") for m in ollama["models"]]
        if links.count("exact") >= want_exact or time.monotonic() > deadline:
            return ollama
        time.sleep(0.5)


def test_the_demo_serves_its_models_linked_exactly_and_everything_stops_together(serve):
    serve.wait_until_serving()
    ollama = _backends(serve.url, want_exact=5)
    assert ollama["available"] and "demo" in ollama["version"]
    by_id = {m["id"]: m for m in ollama["models"]}
    kto = by_id["hf.co/professorsynapse/nexus-tools-kto-GGUF:Q4_K_M"]
    assert kto["loaded"] is True and kto["lineage"]["link"] == "exact"
    assert [m["id"] for m in ollama["models"] if m["loaded"]] == [kto["id"]]
    checkpoint = by_id["nexus-tools-kto:checkpoint-275"]["lineage"]
    assert (checkpoint["link"], checkpoint["checkpoint"]) == ("exact", "checkpoint-275")
    assert by_id["mistral:7b-instruct"]["lineage"]["link"] is None  # from no run
    assert f"Demo inference server (Ollama's API, no real model) at {ollama['url']}" in (
        serve.output()
    )
    # A second demo on another port would rebuild this one under it: refused.
    again = subprocess.run(
        [sys.executable, "manage.py", "serve", "--port", str(_free_port())],
        cwd=REPO,
        env=_env(serve.data),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert f"Another `make run` (process {serve.proc.pid}) is serving the demo" in again.stderr
    # TERM (as `kill` or a closing terminal sends) stops the server, worker and demo parts.
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(30) == 0
    assert _gone(serve.data) == {}
    with pytest.raises(httpx.TransportError):
        httpx.get(ollama["url"] + "/api/version", timeout=2)


def test_when_one_part_ends_the_others_stop_too(serve):
    serve.wait_until_serving()
    worker = next(pid for pid, cmd in _ours(serve.data).items() if "db_worker" in cmd)
    os.kill(worker, signal.SIGKILL)
    assert serve.proc.wait(30) != 0
    assert "The evaluation worker stopped (exit code -9); stopping the rest." in serve.output()
    assert _gone(serve.data) == {}
