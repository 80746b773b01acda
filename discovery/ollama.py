"""Ollama's REST API: /api/version, /api/tags (present) and /api/ps (loaded)."""

from __future__ import annotations

from typing import Any

import httpx

from .http import BackendError, Deadline, NotFound, as_int, as_str, get_json
from .modelinfo import ModelInfo, Probe


def _models(payload: Any, path: str) -> list[dict[str, Any]]:
    models = payload.get("models") if isinstance(payload, dict) else None
    if models is None and isinstance(payload, dict) and path == "/api/ps":
        return []
    if not isinstance(models, list):
        raise BackendError("shape", f"{path} has no models list")
    return [m for m in models if isinstance(m, dict) and as_str(m.get("name") or m.get("model"))]


def fetch(client: httpx.Client, base: str, deadline: Deadline) -> Probe:
    version = get_json(client, f"{base}/api/version", deadline)
    if not isinstance(version, dict):
        raise BackendError("shape", "/api/version is not an object")
    tags = _models(get_json(client, f"{base}/api/tags", deadline), "/api/tags")
    try:
        ps = _models(get_json(client, f"{base}/api/ps", deadline), "/api/ps")
    except NotFound:
        ps = None  # servers before /api/ps existed: loaded state unknown
    loaded = {(m.get("name") or m.get("model")): m for m in ps or []}
    models = []
    for m in tags:
        name = m.get("name") or m.get("model")
        details = m.get("details") if isinstance(m.get("details"), dict) else {}
        running = loaded.get(name)
        models.append(
            ModelInfo(
                id=name,
                loaded=None if ps is None else running is not None,
                size=as_int(m.get("size")),
                quantization=as_str(details.get("quantization_level")),
                family=as_str(details.get("family")),
                parameter_size=as_str(details.get("parameter_size")),
                context_length=as_int(running.get("context_length")) if running else None,
                size_vram=as_int(running.get("size_vram")) if running else None,
                modified_at=as_str(m.get("modified_at")),
                expires_at=as_str(running.get("expires_at")) if running else None,
                format=as_str(details.get("format")),
            )
        )
    # A model can be loaded without being listed (pulled under another tag): show it anyway.
    listed = {m.id for m in models}
    for name, running in loaded.items():
        if name not in listed:
            details = running.get("details") if isinstance(running.get("details"), dict) else {}
            models.append(
                ModelInfo(
                    id=name,
                    loaded=True,
                    size=as_int(running.get("size")),
                    quantization=as_str(details.get("quantization_level")),
                    family=as_str(details.get("family")),
                    parameter_size=as_str(details.get("parameter_size")),
                    context_length=as_int(running.get("context_length")),
                    size_vram=as_int(running.get("size_vram")),
                    expires_at=as_str(running.get("expires_at")),
                )
            )
    return Probe(version=as_str(version.get("version")), api="ollama", models=models)
