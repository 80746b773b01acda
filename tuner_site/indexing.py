"""Reading a never-seen workspace's logs in the background, so the first page answers at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from discovery.logindex import indexer
from discovery.runs import Run, detail

logger = logging.getLogger("tuner")
_lock = threading.Lock()
_queue: dict[str, Run] = {}  # by run id: an MLX trainer's runs share one folder
_thread: threading.Thread | None = None


def _work() -> None:
    while True:
        with _lock:
            if not _queue:
                break
            run_id = next(iter(_queue))
            run = _queue.pop(run_id)
        try:
            detail(run)
        except Exception:  # one unreadable run must not stop the rest
            logger.exception("Could not index %s", run.id)
    indexer.flush()


def index_in_background(runs: Sequence[Run]) -> None:
    """Queue these runs for reading; one reader thread works through the queue."""
    global _thread
    with _lock:
        for run in runs:
            _queue.setdefault(run.id, run)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_work, daemon=True)
            _thread.start()


def wait(timeout: float | None = None) -> None:
    thread = _thread
    if thread is not None:
        thread.join(timeout)
