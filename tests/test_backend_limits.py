"""Inference servers that drip, flood or bomb: every page answers in time, memory stays small.

Real servers on 127.0.0.1: one that sends a byte every 0.1 s (each socket read is quick, the
answer never ends), answers of 48 MB with and without a length, a 1 MB gzip bomb that inflates
to 1 GB. The timeout bounds the whole request; the body is capped after decoding; the cache
answers from the last answer while one refresh runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from discovery.backends import Backend, cache, probe, probe_all, statuses
from discovery.http import MAX_BODY_BYTES

from . import fake_servers as fs
from .conftest import REPO


def _backend(kind: str, server: fs.FakeServer, name: str | None = None) -> Backend:
    return Backend(name or kind, "openai" if kind == "vllm" else kind, server.url)


@pytest.mark.parametrize("kind", ["ollama", "lmstudio", "vllm"])
def test_a_server_that_drips_its_answer_is_a_timeout_within_the_deadline(serve, kind):
    server = serve(kind, "v1" if kind == "lmstudio" else "", "drip")
    t = time.monotonic()
    s = probe(_backend(kind, server), timeout=1.0)
    assert time.monotonic() - t < 1.6
    assert s.available is False and "did not answer within 1 s" in s.error


@pytest.mark.parametrize("kind", ["ollama", "lmstudio", "vllm"])
def test_a_server_that_trickles_its_headers_is_a_timeout_within_the_deadline(serve, kind):
    server = serve(kind, "v1" if kind == "lmstudio" else "", "trickle")
    server.drip_seconds = 0.05  # each read is quick: only the whole request's deadline ends it
    found: list = []
    t = time.monotonic()
    asking = threading.Thread(target=lambda: found.append(probe(_backend(kind, server), 1.0)))
    asking.start()
    asking.join(5)
    assert not asking.is_alive(), "the probe waited for the headers past its deadline"
    assert time.monotonic() - t < 1.6
    assert found[0].available is False and "did not answer within 1 s" in found[0].error


TRICKLE_SERVER = """
import sys
from tests.fake_servers import FakeServer
server = FakeServer(sys.argv[1], "", "trickle")
server.drip_seconds = 0.02
print(server.start().url, flush=True)
sys.stdin.read()
"""


def _threads_and_fds() -> tuple[int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


def test_refreshing_a_trickling_server_leaves_no_thread_or_socket_behind():
    # In another process, so that only the probes' threads and sockets are counted here.
    servers = [
        subprocess.Popen(
            [sys.executable, "-c", TRICKLE_SERVER, kind],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for kind in ("ollama", "openai")
    ]
    try:
        urls = [s.stdout.readline().strip() for s in servers if s.stdout]
        backends = [Backend("o", "ollama", urls[0]), Backend("v", "openai", urls[1])]
        probe_all(backends, 0.2)  # the first time imports and starts what stays for good
        time.sleep(0.3)
        baseline = _threads_and_fds()
        for _ in range(20):
            found = probe_all(backends, 0.2)
            assert [s.available for s in found] == [False, False]

        # Fewer is fine: a thread an earlier test in this process left may end meanwhile.
        def left() -> bool:
            threads, fds = _threads_and_fds()
            return threads <= baseline[0] and fds <= baseline[1]

        settle = time.monotonic() + 5  # a busy machine may be slow to let a thread end
        while not left() and time.monotonic() < settle:
            time.sleep(0.05)
        assert left(), (_threads_and_fds(), baseline)
    finally:
        for s in servers:
            s.kill()
            s.wait()
            if s.stdout:
                s.stdout.close()
            if s.stdin:
                s.stdin.close()


@pytest.mark.parametrize("variant", ["", "length"])
def test_an_answer_larger_than_the_cap_is_too_large_not_read_whole(serve, variant):
    server = serve("vllm", variant, "huge")
    t = time.monotonic()
    s = probe(_backend("vllm", server), timeout=2.0)
    assert time.monotonic() - t < 2.0
    assert s.available is False
    assert f"more than {MAX_BODY_BYTES // 2**20} MB" in s.error


def test_compressed_answers_are_read(serve):
    for mode in ("gzip", "deflate"):
        s = probe(_backend("vllm", serve("vllm", "", mode)), timeout=2.0)
        assert s.available, (mode, s.error)
        assert [m.id for m in s.models] == ["mistralai/Mistral-7B-v0.3", "nexus-kto"]


BOMB_PROBE = r"""
import re, sys, time
from pathlib import Path
from discovery.backends import Backend, probe_all
urls = sys.argv[1:]
t = time.monotonic()
found = probe_all([Backend(f"b{i}", "openai", u) for i, u in enumerate(urls)], 5.0)
# This process's own peak (VmHWM): getrusage's maxrss keeps the forking test process's.
peak_kb = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
print(round(time.monotonic() - t, 2), peak_kb // 1024)
for s in found:
    print(s.available, s.error)
"""


def test_three_gzip_bombs_at_once_are_too_large_and_cost_little_memory(serve):
    bombs = [serve("vllm", "", "bomb") for _ in range(3)]
    out = subprocess.run(
        [sys.executable, "-c", BOMB_PROBE, *(b.url for b in bombs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    first, *lines = out.stdout.splitlines()
    seconds, peak_mb = first.split()
    assert float(seconds) < 5.5
    assert int(peak_mb) < 400, f"peak memory {peak_mb} MB"
    assert len(lines) == 3
    assert all(line.startswith("False") and "more than" in line for line in lines), lines


def test_one_refresh_at_a_time_and_no_one_waits_behind_a_slow_server(serve):
    fast, slow = serve("ollama"), serve("vllm", "", "drip")
    backends = [_backend("ollama", fast), _backend("vllm", slow)]
    t = time.monotonic()
    first = statuses(backends, 1.0, 0.2)  # the first answer is waited for, within the deadline
    assert time.monotonic() - t < 1.7
    assert [s.available for s in first] == [True, False]
    time.sleep(0.3)  # stale now: the next requests start one refresh between them
    hits = len(fast.hits)
    times, answers = [], []

    def ask() -> None:
        started = time.monotonic()
        answers.append(statuses(backends, 1.0, 0.2))
        times.append(time.monotonic() - started)

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert max(times) < 0.6, times  # the last answer, served while the slow refresh runs
    # Only the request that started the refresh waits for it (a moment); the others not at all.
    assert sorted(times)[-2] < 0.1, times
    assert all([s.available for s in a] == [True, False] for a in answers)
    deadline = time.monotonic() + 3
    while len(fast.hits) < hits + 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert len(fast.hits) == hits + 3  # one refresh: Ollama's three requests, once


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["drip", "bomb", "huge"])
def test_pages_answer_in_time_with_a_dripping_or_flooding_server(
    client, settings, serve, use_workspace, mode
):
    server = serve("ollama", "", mode)
    settings.OLLAMA_HOST = server.host
    settings.TUNER_BACKEND_TIMEOUT = 1.0
    settings.TUNER_BACKEND_CACHE_SECONDS = 1
    cache.clear()
    t = time.monotonic()
    assert client.get("/api/backends/").status_code == 200
    assert time.monotonic() - t < 1.7  # the first answer: within the deadline
    for _ in range(3):
        for url in ("/", "/backends/", "/api/backends/"):
            t = time.monotonic()
            response = client.get(url)
            assert response.status_code == 200, url
            assert time.monotonic() - t < 0.8, (url, time.monotonic() - t)
        time.sleep(0.5)
    backend = json.loads(client.get("/api/backends/").content)["backends"][0]
    assert backend["available"] is False and backend["error"]
