"""The HTTP helpers the inference-server clients share: requests that must return JSON.

Every request is bounded as a whole, not per socket read: connecting, the status line, the
headers and every byte of the body must arrive within the backend's deadline (a server sending
a byte a second is a timeout). Each socket operation waits at most what is left of it, in the
calling thread, so when the deadline passes the socket is closed and nothing is left running.
The body is capped after decoding, so a small gzip bomb is "too large", not gigabytes of memory.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

# What the largest real answer needs (LM Studio listing 10,000 models is about 7 MB) with room.
MAX_BODY_BYTES = 32 * 1024 * 1024
HEADERS = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate"}


class BackendError(Exception):
    """A failure with a short reason; the caller turns it into an actionable message."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind  # refused, timeout, http, not_json, shape, too_large
        self.detail = detail


class NotFound(BackendError):
    """A 404: the server is up but lacks this endpoint (an older version)."""


@dataclass
class Deadline:
    """A time budget for one backend, shared by its sequential requests."""

    seconds: float
    start: float = 0.0

    def __post_init__(self) -> None:
        self.start = time.monotonic()

    def remaining(self) -> float:
        return max(self.seconds - (time.monotonic() - self.start), 0.001)

    def expired(self) -> bool:
        return time.monotonic() - self.start >= self.seconds


# The deadline of the request this thread is making; every socket operation stays within it.
_current: ContextVar[Deadline | None] = ContextVar("backend_deadline", default=None)


def _within(timeout: float | None, expired: type[Exception]) -> float | None:
    """A socket timeout cut to what is left of the current request's deadline."""
    deadline = _current.get()
    if deadline is None:
        return timeout
    left = deadline.seconds - (time.monotonic() - deadline.start)
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


def client() -> httpx.Client:
    """A client whose requests through `get_json`/`post_json` end at their deadline, headers
    included: a server that trickles its status line cannot hold the socket past it."""
    # httpcore (with h11 and anyio, thousands of objects) loads with the first client, not
    # with every process that reads a workspace.
    from .sockets import bounded_pool

    transport = httpx.HTTPTransport(trust_env=False)
    # httpx takes no network backend; its pool is rebuilt with the same defaults and ours.
    transport._pool = bounded_pool(httpx.create_ssl_context(trust_env=False))
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False)


class _Body:
    """A response body as it arrives, decoded, refused once it passes `limit` bytes."""

    def __init__(self, encoding: str, url: str, limit: int) -> None:
        self.url, self.limit = url, limit
        self.parts: list[bytes] = []
        self.size = 0
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self.inflate = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self.inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        else:
            raise BackendError("not_json", f"{url}: content encoding {encoding!r}")

    def feed(self, data: bytes) -> None:
        if self.inflate is None:
            self._add(data)
            return
        try:
            while data:
                # Never more than one byte past the limit, however well the data compresses.
                self._add(self.inflate.decompress(data, self.limit - self.size + 1))
                data = self.inflate.unconsumed_tail
        except zlib.error:
            raise BackendError("not_json", f"{self.url}: broken compressed data") from None

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BackendError("too_large", self.url)
        self.parts.append(data)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _read(response: httpx.Response, deadline: Deadline, url: str) -> bytes:
    body = _Body(response.headers.get("content-encoding", ""), url, MAX_BODY_BYTES)
    length = response.headers.get("content-length", "")
    if body.inflate is None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise BackendError("too_large", url)
    # As it arrives, with no buffering up to a chunk size; a mock transport's is there already.
    chunks = [response.content] if response.is_stream_consumed else response.iter_raw()
    for chunk in chunks:
        body.feed(chunk)
        if deadline.expired():
            raise BackendError("timeout", url)
    return body.bytes()


@contextmanager
def within(deadline: Deadline) -> Iterator[None]:
    """Every socket operation of `client()` requests inside stays within `deadline`: for
    callers whose answers are not one JSON document (uploads, streamed progress, plain text)."""
    bound = _current.set(deadline)
    try:
        yield
    finally:
        _current.reset(bound)


def read_body(response: httpx.Response, deadline: Deadline, url: str) -> bytes:
    """A response's body, decoded and capped like every JSON answer's."""
    return _read(response, deadline, url)


def get_json(client: httpx.Client, url: str, deadline: Deadline) -> Any:
    return _json(client, "GET", url, None, deadline)


def post_json(client: httpx.Client, url: str, body: Any, timeout: float) -> Any:
    return _json(client, "POST", url, body, Deadline(timeout))


def _json(client: httpx.Client, method: str, url: str, body: Any, deadline: Deadline) -> Any:
    left = deadline.remaining()
    bound = _current.set(deadline)
    try:
        with client.stream(
            method,
            url,
            json=body,
            headers=HEADERS,
            timeout=httpx.Timeout(left, connect=min(left, 1.0)),
        ) as response:
            if response.status_code == 404:
                raise NotFound("http", f"HTTP 404 from {url}")
            if response.status_code >= 400:
                raise BackendError("http", f"HTTP {response.status_code} from {url}")
            data = _read(response, deadline, url)
    except httpx.TimeoutException:
        raise BackendError("timeout", url) from None
    except httpx.ConnectError as exc:
        raise BackendError("refused", f"{url}: {exc}") from None
    except httpx.HTTPError as exc:  # a connection dropped or garbled mid-answer
        raise BackendError("http", f"{type(exc).__name__} from {url}") from None
    finally:
        _current.reset(bound)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BackendError("not_json", url) from None
