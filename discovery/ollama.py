"""Ollama's REST API: /api/version, /api/tags (present) and /api/ps (loaded)."""

from __future__ import annotations

from typing import Any

import httpx

from .http import BackendError, Deadline, NotFound, get_json
from .modelinfo import ModelInfo, Probe
from .values import as_dict, as_int, as_str


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
    )


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
    return Probe(version=as_str(version.get("version")), api="ollama", models=models)
