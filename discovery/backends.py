"""Inference servers and their models: configured backends, concurrent probes, a short cache."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from . import caches, lmstudio, ollama, openai_compat
from .http import MAX_BODY_BYTES, BackendError, Deadline, client
from .modelinfo import ModelInfo

DEFAULT_TIMEOUT_S = 1.5
DEFAULT_CACHE_S = 3.0
# Where each server listens unless told otherwise (Ollama's and LM Studio's own defaults).
OLLAMA_DEFAULT = "127.0.0.1:11434"
LMSTUDIO_DEFAULT = "127.0.0.1:1234"
FETCH = {"ollama": ollama.fetch, "lmstudio": lmstudio.fetch, "openai": openai_compat.fetch}


@dataclass(frozen=True)
class Backend:
    name: str
    kind: str
    url: str

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc or self.url


@dataclass(frozen=True)
class BackendStatus:
    backend: Backend
    available: bool
    error: str | None
    version: str | None
    latency_ms: float | None
    models: tuple[ModelInfo, ...]
    api: str | None = None
    checked_at: float = 0.0
    # While a server is down: what it said when it last answered, so its models stay in view.
    last_seen: BackendStatus | None = None

    @property
    def loaded_count(self) -> int:
        return sum(1 for m in self.models if m.loaded)


def normalize_url(value: str, default_port: int) -> str:
    """`host`, `host:port` or a URL (Ollama's OLLAMA_HOST convention) → a base URL."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
    parts = urlsplit(value)
    if not parts.hostname:
        raise ValueError(f"no host in {value!r}")
    port = parts.port or (default_port if parts.scheme == "http" else None)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def configured(
    ollama_host: str | None = None,
    lmstudio_host: str | None = None,
    openai_backends: str | None = None,
) -> list[Backend]:
    """Backends from their settings: None means the default address, an empty value off."""
    ollama_host = OLLAMA_DEFAULT if ollama_host is None else ollama_host
    lmstudio_host = LMSTUDIO_DEFAULT if lmstudio_host is None else lmstudio_host
    backends = []
    if ollama_host.strip():
        backends.append(Backend("ollama", "ollama", normalize_url(ollama_host, 11434)))
    if lmstudio_host.strip():
        backends.append(Backend("lmstudio", "lmstudio", normalize_url(lmstudio_host, 1234)))
    for pair in (openai_backends or "").split(","):
        if not pair.strip():
            continue
        name, sep, url = pair.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"TUNER_OPENAI_BACKENDS wants name=url pairs, got {pair.strip()!r}")
        backends.append(Backend(name.strip(), "openai", normalize_url(url, 8000)))
    return backends


def _message(backend: Backend, error: BackendError, timeout: float) -> str:
    where = backend.address
    label = {"ollama": "Ollama", "lmstudio": "LM Studio"}.get(backend.kind, backend.name)
    fix = {
        "ollama": "Start it with `ollama serve`, or set `OLLAMA_HOST`.",
        "lmstudio": (
            "Start its server (Developer tab, or `lms server start`), or set `LMSTUDIO_HOST`."
        ),
        "openai": f"Start it, or fix `{backend.name}=…` in `TUNER_OPENAI_BACKENDS`.",
    }[backend.kind]
    if error.kind == "refused":
        return f"{label} is not running at {where}. {fix}"
    if error.kind == "timeout":
        return f"{label} at {where} did not answer within {timeout:g} s. It may be busy. {fix}"
    if error.kind == "http":
        return f"{label} at {where} answered with an error ({error.detail}). Check its log."
    if error.kind == "too_large":
        return (
            f"{label} at {where} answered with more than {MAX_BODY_BYTES // 2**20} MB "
            f"({error.detail}), which is more than any model list needs. Is another program "
            f"using that port? {fix}"
        )
    if error.kind == "not_json":
        return (
            f"{label} at {where} answered with something that is not JSON. "
            f"Is another program using that port? {fix}"
        )
    return f"{label} at {where} answered JSON of an unexpected shape ({error.detail}). {fix}"


def probe(backend: Backend, timeout: float = DEFAULT_TIMEOUT_S) -> BackendStatus:
    """Query one backend within `timeout` seconds in all; failures become a status, not a raise."""
    started = time.monotonic()
    deadline = Deadline(timeout)
    try:
        with client() as http_client:
            result = FETCH[backend.kind](http_client, backend.url, deadline)
    except BackendError as exc:
        down = BackendStatus(
            backend, False, _message(backend, exc, timeout), None, None, (), None, time.time()
        )
        return last_seen.recall(down)
    latency = round((time.monotonic() - started) * 1000, 1)
    # Loaded models first, then by name, so the panel answers "what is in memory now" first.
    models = tuple(sorted(result.models, key=lambda m: (not m.loaded, m.id.lower())))
    up = BackendStatus(
        backend, True, None, result.version, latency, models, result.api, time.time()
    )
    return last_seen.remember(up)


class _LastSeen:
    """Each backend's last successful answer, for as long as this process lives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._good: dict[Backend, BackendStatus] = {}

    def remember(self, status: BackendStatus) -> BackendStatus:
        with self._lock:
            self._good[status.backend] = status
        return status

    def recall(self, status: BackendStatus) -> BackendStatus:
        with self._lock:
            previous = self._good.get(status.backend)
        return replace(status, last_seen=previous) if previous else status

    def clear(self) -> None:
        with self._lock:
            self._good.clear()


last_seen = _LastSeen()
caches.register(__name__, last_seen.clear, "last_seen")


# Past the deadline, a probe still running is answered as a timeout; its thread ends on its own
# within one more read.
GRACE_S = 0.25
# How long the request that finds the cache stale waits for the refresh it starts; every other
# request is answered from the cache at once.
FRESH_WAIT_S = 0.25


def _timed_out(backend: Backend, timeout: float) -> BackendStatus:
    error = BackendError("timeout", backend.url)
    down = BackendStatus(
        backend, False, _message(backend, error, timeout), None, None, (), None, time.time()
    )
    return last_seen.recall(down)


class _Cache:
    """The last answer per backend list, and at most one refresh running, in the background.

    A request never waits behind a slow server: while a refresh runs, everyone gets the last
    answer. Only the first answer for a list of servers is waited for, within the deadline.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[tuple[Backend, ...], float, list[BackendStatus]] | None = None
        self._running: tuple[tuple[Backend, ...], threading.Event] | None = None

    def get(self, backends: list[Backend], timeout: float, max_age: float) -> list[BackendStatus]:
        key = tuple(backends)
        with self._lock:
            hit = self._value if self._value and self._value[0] == key else None
            if hit and time.monotonic() - hit[1] < max_age:
                return hit[2]
            already = self._running is not None and self._running[0] == key
            if hit and already:
                return hit[2]  # someone else's refresh is under way: the last answer, now
            done = self._refresh(key, timeout)
        done.wait(timeout + 2 * GRACE_S if hit is None else FRESH_WAIT_S)
        with self._lock:
            latest = self._value if self._value and self._value[0] == key else None
        if latest is not None:
            return latest[2]
        return [_timed_out(b, timeout) for b in backends]

    def _refresh(self, key: tuple[Backend, ...], timeout: float) -> threading.Event:
        """The refresh of `key` under way, or a new one; called with the lock held."""
        if self._running is not None and self._running[0] == key:
            return self._running[1]
        done = threading.Event()
        self._running = (key, done)

        def run() -> None:
            try:
                statuses = probe_all(list(key), timeout)
                with self._lock:
                    self._value = (key, time.monotonic(), statuses)
            finally:
                with self._lock:
                    if self._running is not None and self._running[1] is done:
                        self._running = None
                done.set()

        threading.Thread(target=run, name="backend-refresh", daemon=True).start()
        return done

    def clear(self) -> None:
        with self._lock:
            self._value = None
            self._running = None


cache = _Cache()
caches.register(__name__, cache.clear, "cache")


def probe_all(backends: list[Backend], timeout: float = DEFAULT_TIMEOUT_S) -> list[BackendStatus]:
    """Every backend at once; answered within `timeout` (and a little grace) whatever they do."""
    if not backends:
        return []
    pool = ThreadPoolExecutor(max_workers=len(backends), thread_name_prefix="probe")
    futures = [pool.submit(probe, b, timeout) for b in backends]
    done, _ = wait(futures, timeout=timeout + GRACE_S)
    pool.shutdown(wait=False, cancel_futures=True)
    return [
        f.result() if f in done else _timed_out(b, timeout)
        for b, f in zip(backends, futures, strict=True)
    ]


def statuses(
    backends: list[Backend], timeout: float = DEFAULT_TIMEOUT_S, max_age: float = DEFAULT_CACHE_S
) -> list[BackendStatus]:
    if max_age <= 0:
        return probe_all(backends, timeout)
    return cache.get(backends, timeout, max_age)
