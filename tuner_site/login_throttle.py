"""Failed logins back off per address: after a few, each new try waits twice as long as the
last (up to five minutes), so guessing passwords is slow and costs no password hashing.

The count is kept by each server process (a gunicorn worker each), and only from the address
the request came from: `X-Forwarded-For` can be forged, and is not read.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from discovery import caches

FREE_FAILURES = 5  # typos are free
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 300.0
FORGET_AFTER_S = 900.0  # a quarter of an hour without a failure starts afresh
MAX_ADDRESSES = 10_000


def wait_after(failures: int) -> float:
    """How long another try waits after `failures` failed ones in a row."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(FIRST_WAIT_S * 2 ** (failures - FREE_FAILURES), MAX_WAIT_S)


class FailedLogins:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # address → (failures in a row, monotonic time of the last)
        self._by: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds before `address` may try again; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            count, last = self._by.get(address, (0, now))
        if now - last >= FORGET_AFTER_S:
            return 0.0
        return max(last + wait_after(count) - now, 0.0)

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            count, last = self._by.pop(address, (0, now))
            if now - last >= FORGET_AFTER_S:
                count = 0
            self._by[address] = (count + 1, now)
            while len(self._by) > MAX_ADDRESSES:
                self._by.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._by.pop(address, None)

    def clear(self) -> None:
        with self._lock:
            self._by.clear()


failed_logins = FailedLogins()
caches.register(__name__, failed_logins.clear, "failed_logins")


def address(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


@receiver(user_login_failed)
def _failed(sender: Any, credentials: Any = None, request: HttpRequest | None = None, **_: Any):
    if request is not None:
        failed_logins.failed(address(request))


@receiver(user_logged_in)
def _logged_in(sender: Any, request: HttpRequest | None = None, **_: Any) -> None:
    if request is not None:
        failed_logins.succeeded(address(request))
