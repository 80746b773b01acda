"""Ollama's REST API: /api/version, /api/tags (present), /api/ps (loaded) and /api/show (what
each model was made from), the last asked once per model digest and remembered."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import httpx

from . import caches
from .http import BackendError, Deadline, NotFound, get_json, post_json
from .modelinfo import ModelInfo, Probe
from .values import as_dict, as_int, as_str

# `FROM <OLLAMA_MODELS>/blobs/sha256-<hex>` (the server's models folder; or `sha256:<hex>`, or a
# Windows path) and ADAPTER lines alike; commented lines (`# FROM name:tag`) are not instructions.
_INSTRUCTION = re.compile(r"^[ \t]*(?:FROM|ADAPTER)[ \t]+(\S.*)$", re.IGNORECASE | re.MULTILINE)
_BLOB = re.compile(r"sha256[-:]([0-9a-fA-F]{64})")
# /api/show may spend at most this share of a probe's time budget; the rest waits a refresh.
SHOW_SHARE = 0.5
# Models whose /api/show answer is remembered (about 15 MB): past it, the least recently seen
# are asked again on a later refresh.
SHOW_REMEMBERED = 20_000


def _name(m: dict[str, Any]) -> str | None:
    return as_str(m.get("name")) or as_str(m.get("model"))


def _models(payload: Any, path: str) -> list[dict[str, Any]]:
    models = payload.get("models") if isinstance(payload, dict) else None
    if models is None and isinstance(payload, dict) and path == "/api/ps":
        return []
    if not isinstance(models, list):
        raise BackendError("shape", f"{path} has no models list")
    return [m for m in models if isinstance(m, dict) and _name(m)]


def _info(name: str, listed: dict[str, Any], running: dict[str, Any] | None, ps: bool) -> ModelInfo:
    """One model from its `/api/tags` entry and, when loaded, its `/api/ps` entry."""
    details = as_dict(listed.get("details")) or as_dict((running or {}).get("details"))
    run = running or {}
    return ModelInfo(
        id=name,
        loaded=None if not ps else running is not None,
        size=as_int(listed.get("size")) or as_int(run.get("size")),
        quantization=as_str(details.get("quantization_level")),
        family=as_str(details.get("family")),
        parameter_size=as_str(details.get("parameter_size")),
        context_length=as_int(run.get("context_length")),
        size_vram=as_int(run.get("size_vram")),
        modified_at=as_str(listed.get("modified_at")),
        expires_at=as_str(run.get("expires_at")),
        format=as_str(details.get("format")),
        digest=as_str(listed.get("digest")) or as_str(run.get("digest")),
    )


def blobs_of(modelfile: str, adapters_only: bool = False) -> tuple[str, ...]:
    """The sha256 of each blob a Modelfile's FROM and ADAPTER lines name, in order (only the
    ADAPTER lines' with `adapters_only`: a base's blob is shared by every model made on it)."""
    found = (
        _BLOB.search(m.group(1))
        for m in _INSTRUCTION.finditer(modelfile)
        if not adapters_only or m.group(0).lstrip().upper().startswith("ADAPTER")
    )
    return tuple(dict.fromkeys(b.group(1).lower() for b in found if b))


class _Shown:
    """What /api/show said, by model digest (a new digest asks again; a server too old to list
    digests, by server and name): the `SHOW_REMEMBERED` most recently seen models."""

    def __init__(self, size: int = SHOW_REMEMBERED) -> None:
        self._lock = threading.Lock()
        self._blobs: OrderedDict[tuple[str, ...], tuple[str, ...]] = OrderedDict()
        self.size = size

    def get(self, key: tuple[str, ...]) -> tuple[str, ...] | None:
        with self._lock:
            found = self._blobs.get(key)
            if found is not None:
                self._blobs.move_to_end(key)
            return found

    def put(self, key: tuple[str, ...], blobs: tuple[str, ...]) -> None:
        with self._lock:
            self._blobs[key] = blobs
            self._blobs.move_to_end(key)
            while len(self._blobs) > self.size:
                self._blobs.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._blobs)

    def clear(self) -> None:
        with self._lock:
            self._blobs.clear()


shown = _Shown()
caches.register(__name__, shown.clear, "shown")


def _show(
    client: httpx.Client, base: str, models: list[ModelInfo], deadline: Deadline
) -> list[ModelInfo]:
    """Each model with its blobs: remembered ones at once, others while the budget lasts."""
    reserve = deadline.seconds * (1 - SHOW_SHARE)
    result = []
    asking = True
    for m in models:
        key = ("digest", m.digest) if m.digest else ("name", base, m.id)
        blobs = shown.get(key)
        left = deadline.remaining() - reserve
        if blobs is None and asking and left > 0.01:
            try:
                # `name` too, for servers older than the `model` key.
                body = post_json(client, f"{base}/api/show", {"model": m.id, "name": m.id}, left)
            except BackendError as exc:
                if exc.kind in {"timeout", "refused"}:
                    asking = False  # a server this slow gets no more questions this round
                else:
                    blobs = ()  # it cannot say (gone, or an error): not asked again
                    shown.put(key, blobs)
            else:
                blobs = blobs_of(as_str(as_dict(body).get("modelfile")) or "")
                shown.put(key, blobs)
        result.append(replace(m, blobs=blobs) if blobs is not None else m)
    return result


def fetch(client: httpx.Client, base: str, deadline: Deadline) -> Probe:
    version = get_json(client, f"{base}/api/version", deadline)
    if not isinstance(version, dict):
        raise BackendError("shape", "/api/version is not an object")
    tags = {
        _name(m) or "": m
        for m in _models(get_json(client, f"{base}/api/tags", deadline), "/api/tags")
    }
    try:
        ps: list[dict[str, Any]] | None = _models(
            get_json(client, f"{base}/api/ps", deadline), "/api/ps"
        )
    except NotFound:
        ps = None  # servers before /api/ps existed: loaded state unknown
    loaded = {_name(m) or "": m for m in ps or []}
    models = [_info(name, m, loaded.get(name), ps is not None) for name, m in tags.items()]
    # A model can be loaded without being listed (pulled under another tag): show it anyway.
    models += [_info(name, {}, m, True) for name, m in loaded.items() if name not in tags]
    models = _show(client, base, models, deadline)
    return Probe(version=as_str(version.get("version")), api="ollama", models=models)
