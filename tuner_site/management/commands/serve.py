"""What `make run` runs: the dashboard's server and its evaluation worker and, with no
TUNER_WORKSPACE, the demo (its running run, training on, and its inference server).

Nothing starts on a port that is taken, and everything stops together: on Ctrl-C or TERM, when
a step fails, or when the server or the worker ends. The demo's parts are threads of this
process, so they cannot outlive it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

if TYPE_CHECKING:
    from sampledata.inference import DemoOllama

# The worker hands its running evaluation back to the queue when told to stop, which takes up
# to the Evaluator's own stop (TERM, then KILL after 5 s); the server stops at once.
WORKER_GRACE = 12.0
SERVER_GRACE = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """A signal asked everything to stop."""


def port_problem(host: str, port: int) -> str | None:
    """Why the server cannot listen on host:port, in one line; None when it can. Checked by
    binding it as the server will (with SO_REUSEADDR: a closed connection's wait is no use)."""
    bare = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            bare, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"Cannot listen on {host}: {exc.strerror}. Set HOST to an address of this machine."
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"Port {port} on {host} is in use by another program: stop it, or choose "
                    f"another port, e.g. PORT={port + 1} make run"
                )
            if exc.errno == errno.EACCES:
                return f"Port {port} needs administrator rights: choose one above 1023 with PORT."
            return f"Cannot listen on {host}:{port}: {exc.strerror}. Check HOST and PORT."
    return None


@contextlib.contextmanager
def demo_lock(folder: Path) -> Iterator[str | None]:
    """Hold the demo for this process; yields why not when another `make run` holds it (it
    rebuilds the demo, so two would train the same run twice)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "demo.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "?"
            yield (
                f"Another `make run` (process {holder}) is serving the demo from {folder}: stop "
                "it first, or give this one its own folder with TUNER_DATA_DIR."
            )
            return
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield None
        finally:
            f.truncate(0)


class Command(BaseCommand):
    help = (
        "Serve the dashboard with its evaluation worker (and, with no TUNER_WORKSPACE, the demo "
        "and its inference server); Ctrl-C stops them all."
    )
    requires_system_checks: list[str] = []  # the server runs them

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if problem := port_problem(host, port):
            self.stderr.write(problem)
            sys.exit(1)
        demo = not os.environ.get("TUNER_WORKSPACE")
        with contextlib.ExitStack() as stack:
            if demo and (held := stack.enter_context(demo_lock(settings.DATA_DIR))):
                self.stderr.write(held)
                sys.exit(1)
            for sig in STOP_SIGNALS:
                signal.signal(sig, _raise_stop)
            try:
                code = self._serve(stack, host, port, demo)
            except (Stop, KeyboardInterrupt):
                code = 0
            finally:
                # A second Ctrl-C while stopping must not cut the clean-up short.
                for sig in STOP_SIGNALS:
                    signal.signal(sig, signal.SIG_IGN)
        sys.exit(code)

    def _serve(self, stack: contextlib.ExitStack, host: str, port: int, demo: bool) -> int:
        # Straight to the console: through this command's own wrapper, each "Applying …" would
        # end its line before its " OK".
        call_command("migrate", interactive=False, stdout=sys.stdout, stderr=sys.stderr)
        env = dict(os.environ)
        if demo:
            env["OLLAMA_HOST"] = self._start_demo(stack)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        # The worker stays in this process group, so Ctrl-C reaches it at once; the server
        # (and its autoreloader's child) gets a group of its own, stopped here as one.
        worker = stack.enter_context(
            _child([*manage, "db_worker", "--no-reload"], env, WORKER_GRACE, own_group=False)
        )
        address = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
        server = stack.enter_context(
            _child([*manage, "runserver", address], env, SERVER_GRACE, own_group=True)
        )
        while True:
            for proc, what in ((server, "The server"), (worker, "The evaluation worker")):
                if (code := proc.poll()) is not None:
                    self.stderr.write(f"{what} stopped (exit code {code}); stopping the rest.")
                    return code or 1
            time.sleep(0.2)

    def _start_demo(self, stack: contextlib.ExitStack) -> str:
        from sampledata.demo import build_demo, follow_demo
        from sampledata.inference import DemoOllama

        root = settings.TUNER_DEMO_WORKSPACE
        build_demo(root)
        self.stdout.write(f"Demo workspace ready in {root}")
        stop = threading.Event()
        trainer = threading.Thread(
            target=follow_demo, args=(root,), kwargs={"stop": stop}, name="demo-training"
        )
        trainer.start()
        stack.callback(trainer.join)
        stack.callback(stop.set)
        folder = settings.DATA_DIR / "demo-ollama"
        ollama = start_on_last_port(DemoOllama(root, folder), folder / "port")
        stack.callback(ollama.stop)
        self.stdout.write(
            f"Demo inference server (Ollama's API, no real model) at {ollama.url}: "
            f"{len(ollama.models)} models from the demo's runs, one loaded; OLLAMA_HOST points "
            "the dashboard at it."
        )
        return ollama.host


def start_on_last_port(ollama: DemoOllama, remembered: Path) -> DemoOllama:
    """Start the demo's inference server where the last `make run` had it, when that port is
    free, else on a free one (remembered for next time). A job keeps its server's address, so a
    job a stop put back in the queue, or run again, finds it after a restart, as it would a real
    Ollama."""
    with contextlib.suppress(OSError, ValueError):
        port = int(remembered.read_text())
        if 1024 <= port <= 65535:
            with contextlib.suppress(OSError):
                return ollama.start(port)
    ollama.start()
    with contextlib.suppress(OSError):
        remembered.parent.mkdir(parents=True, exist_ok=True)
        remembered.write_text(f"{ollama.port}\n")
    return ollama


def _raise_stop(signum: int, frame: Any) -> None:
    raise Stop


@contextlib.contextmanager
def _child(
    cmd: list[str], env: dict[str, str], grace: float, own_group: bool
) -> Iterator[subprocess.Popen[bytes]]:
    """A process that is stopped (TERM, then KILL after `grace` seconds) when the block ends."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=own_group)
    try:
        yield proc
    finally:
        _stop(proc, grace, own_group)


def _stop(proc: subprocess.Popen[bytes], grace: float, own_group: bool) -> None:
    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if own_group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    if proc.poll() is None:
        send(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            proc.wait()
    if own_group:
        send(signal.SIGKILL)  # whatever the group's leader left behind (the reloader's child)
