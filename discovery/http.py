"""The HTTP helpers the inference-server clients share: requests that must return JSON."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson


class BackendError(Exception):
    """A failure with a short reason; the caller turns it into an actionable message."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind  # refused, timeout, http, not_json, shape
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


def get_json(client: httpx.Client, url: str, deadline: Deadline) -> Any:
    return _json(client, "GET", url, None, deadline.remaining())


def post_json(client: httpx.Client, url: str, body: Any, timeout: float) -> Any:
    return _json(client, "POST", url, body, timeout)


def _json(client: httpx.Client, method: str, url: str, body: Any, left: float) -> Any:
    try:
        response = client.request(
            method, url, json=body, timeout=httpx.Timeout(left, connect=min(left, 1.0))
        )
    except httpx.TimeoutException:
        raise BackendError("timeout", url) from None
    except httpx.HTTPError as exc:
        raise BackendError("refused", f"{url}: {exc}") from None
    if response.status_code == 404:
        raise NotFound("http", f"HTTP 404 from {url}")
    if response.status_code >= 400:
        raise BackendError("http", f"HTTP {response.status_code} from {url}")
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise BackendError("not_json", url) from None
