"""Load on loopback: gunicorn with 2 workers, a log growing meanwhile, httpx clients.

    python bench/load.py [--seconds 10] [--clients 8] [--dir /tmp/tuner-bench] [--slow-server]

Drives /api/runs/, /runs/ and a run page in turn on the small benchmark workspace, while
another process appends to a running run's log. Reports requests per second, p50, p99,
errors (not 200) and wrong answers (a run missing, or a running run's last step going back).
With --slow-server, an Ollama on 127.0.0.1 that sends its answers a byte every 0.1 s is
configured, and the pages that show servers (/, /backends/, /api/backends/) are driven too:
a wrong answer there is one without the server, or one that took past the deadline.
Every loop is bounded by --seconds and --max-requests; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def append_lines(log: Path, stop_at: float) -> None:
    """Another process writing to a running run's log, as a trainer does."""
    step = json.loads(log.read_bytes().rstrip().rsplit(b"\n", 1)[-1])["step"]
    while time.monotonic() < stop_at:
        step += 1
        with log.open("a") as f:
            f.write(json.dumps({"step": step, "loss": 0.5, "learning_rate": 1e-5}) + "\n")
        time.sleep(0.05)


def drive(base: str, path: str, seconds: float, clients: int, max_requests: int, check) -> dict:
    times: list[float] = []
    errors = wrong = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors, wrong
        with httpx.Client(base_url=base, timeout=10) as client:
            while time.monotonic() < stop_at:
                with lock:
                    if len(times) + errors >= max_requests:
                        return
                t = time.perf_counter()
                try:
                    r = client.get(path)
                    ok = r.status_code == 200
                    right = ok and check(r, t)
                except httpx.HTTPError:
                    ok = right = False
                elapsed = time.perf_counter() - t
                with lock:
                    if not ok:
                        errors += 1
                    else:
                        times.append(elapsed)
                        wrong += not right

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - started
    times.sort()
    pick = lambda q: times[min(int(len(times) * q), len(times) - 1)] * 1000 if times else 0  # noqa: E731
    return {
        "requests": len(times) + errors,
        "rps": (len(times) + errors) / wall,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "errors": errors,
        "wrong": wrong,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "tuner-bench")
    parser.add_argument("--slow-server", action="store_true", help="configure a dripping Ollama")
    args = parser.parse_args()

    from bench.run import ensure_workspace

    root = ensure_workspace(args.dir, "small").resolve()
    slow = None
    if args.slow_server:
        from tests.fake_servers import FakeServer

        slow = FakeServer("ollama", mode="drip").start()
    data = Path(tempfile.mkdtemp(prefix="tuner-load-"))
    port = free_port()
    env = dict(
        os.environ,
        TUNER_WORKSPACE=str(root),
        TUNER_DATA_DIR=str(data),
        DEBUG="0",
        TUNER_HTTPS="0",
        ALLOWED_HOSTS="127.0.0.1",
        SECRET_KEY="load-test-only-" + "x" * 40,
        OLLAMA_HOST=slow.host if slow else "",
        LMSTUDIO_HOST="",
        TUNER_BACKEND_TIMEOUT_MS="1500",
        TUNER_BACKEND_CACHE_SECONDS="3",
    )
    manage = [sys.executable, str(REPO / "manage.py")]
    for cmd in (["migrate", "--no-input", "-v0"], ["collectstatic", "--no-input", "-v0"]):
        subprocess.run(manage + cmd, env=env, check=True, cwd=REPO)
    subprocess.run(
        manage + ["discover", "index"], env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL
    )
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [
            str(gunicorn),
            "tuner_site.wsgi",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/api/runs/", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        runs = httpx.get(base + "/api/runs/?status=running", timeout=30).json()["runs"]
        if not runs:
            # A workspace built over TUNER_RUNNING_WINDOW ago: one stopped run trains again.
            runs = httpx.get(base + "/api/runs/?status=stopped", timeout=30).json()["runs"]
        running = runs[0]
        log = sorted(
            (root / "Trainers" / running["trainer"]).glob(
                f"*/{running['run']}/logs/training_2*.jsonl"
            )
        )[-1]
        append_lines(log, time.monotonic() + 0.1)  # a write now: it counts as running
        expected = httpx.get(base + "/api/runs/", timeout=30).json()["count"]
        answered: list[tuple[float, int]] = []  # (when a response arrived, its last step)
        answered_lock = threading.Lock()

        def check_api(r: httpx.Response, sent: float) -> bool:
            """All runs there, and no older than any answer that arrived before this request."""
            body = r.json()
            mine = [x for x in body["runs"] if x["run"] == running["run"]]
            if body["count"] != expected or len(mine) != 1:
                return False
            step = mine[0]["last_step"]
            with answered_lock:
                floor = max((s for t, s in answered if t < sent), default=0)
                answered.append((time.perf_counter(), step))
            return step >= floor

        pages = [
            ("/api/runs/", check_api),
            ("/runs/", lambda r, sent: running["run"] in r.text),
            (running["url"], lambda r, sent: "checkpoint-" in r.text),
        ]
        if slow:

            def in_time(ok: bool, sent: float) -> bool:
                # The first answer waits for one probe (1.5 s); none waits longer.
                return ok and time.perf_counter() - sent < 2.0

            def check_backends(r: httpx.Response, sent: float) -> bool:
                (b,) = r.json()["backends"]
                return in_time(b["name"] == "ollama" and b["available"] is False, sent)

            pages += [
                ("/api/backends/", check_backends),
                ("/backends/", lambda r, sent: in_time('data-backend="ollama"' in r.text, sent)),
                ("/", lambda r, sent: in_time('data-backend="ollama"' in r.text, sent)),
            ]
        total = args.seconds * len(pages)
        appender = multiprocessing.Process(
            target=append_lines, args=(log, time.monotonic() + total + 5)
        )
        appender.start()
        print(
            f"gunicorn, 2 workers, {args.clients} clients, {args.seconds:g} s each, {expected} runs"
            + (", a server dripping its answers" if slow else "")
        )
        print("| path | requests | req/s | p50 | p99 | errors | wrong |")
        print("|---|---|---|---|---|---|---|")
        for path, check in pages:
            r = drive(base, path, args.seconds, args.clients, args.max_requests, check)
            name = "run page" if path == running["url"] else path
            print(
                f"| `{name}` | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.1f} ms | "
                f"{r['p99_ms']:.1f} ms | {r['errors']} | {r['wrong']} |",
                flush=True,
            )
        appender.terminate()
        appender.join()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        if slow:
            slow.stop()


if __name__ == "__main__":
    main()
