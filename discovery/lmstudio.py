"""LM Studio: /api/v1/models (0.4+), else /api/v0/models (0.3.6+), else /v1/models (ids only)."""

from __future__ import annotations

from typing import Any

import httpx

from .http import BackendError, Deadline, NotFound, get_json
from .modelinfo import ModelInfo, Probe
from .values import as_int, as_str


def _list(payload: Any, key: str, path: str) -> list[dict[str, Any]]:
    items = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise BackendError("shape", f"{path} has no {key} list")
    return [m for m in items if isinstance(m, dict)]


def _v1(payload: Any) -> list[ModelInfo]:
    models = []
    for m in _list(payload, "models", "/api/v1/models"):
        key = as_str(m.get("key")) or as_str(m.get("id"))
        if key is None:
            continue
        instances = m.get("loaded_instances")
        instances = instances if isinstance(instances, list) else []
        config = instances[0].get("config") if instances and isinstance(instances[0], dict) else {}
        quant = m.get("quantization")
        models.append(
            ModelInfo(
                id=key,
                loaded=bool(instances),
                size=as_int(m.get("size_bytes")),
                quantization=as_str(quant.get("name"))
                if isinstance(quant, dict)
                else as_str(quant),
                family=as_str(m.get("architecture")),
                parameter_size=as_str(m.get("params_string")),
                context_length=as_int((config or {}).get("context_length"))
                or as_int(m.get("max_context_length")),
                format=as_str(m.get("format")),
                type=as_str(m.get("type")),
                publisher=as_str(m.get("publisher")),
            )
        )
    return models


def _v0(payload: Any) -> list[ModelInfo]:
    return [
        ModelInfo(
            id=m["id"],
            loaded=m.get("state") == "loaded",
            quantization=as_str(m.get("quantization")),
            family=as_str(m.get("arch")),
            context_length=as_int(m.get("max_context_length")),
            format=as_str(m.get("compatibility_type")),
            type=as_str(m.get("type")),
            publisher=as_str(m.get("publisher")),
        )
        for m in _list(payload, "data", "/api/v0/models")
        if as_str(m.get("id"))
    ]


def _openai(payload: Any) -> list[ModelInfo]:
    # Ids only; with just-in-time loading the list holds every downloaded model.
    return [
        ModelInfo(id=m["id"], loaded=None)
        for m in _list(payload, "data", "/v1/models")
        if as_str(m.get("id"))
    ]


def fetch(client: httpx.Client, base: str, deadline: Deadline) -> Probe:
    for path, key, api, parse in (
        ("/api/v1/models", "models", "lmstudio-v1", _v1),
        ("/api/v0/models", "data", "lmstudio-v0", _v0),
        ("/v1/models", "data", "openai", _openai),
    ):
        try:
            payload = get_json(client, f"{base}{path}", deadline)
        except NotFound:
            continue
        if isinstance(payload, dict) and key not in payload and "error" in payload:
            # LM Studio answers endpoints it lacks with 200 and {"error": "Unexpected endpoint…"}.
            continue
        return Probe(version=None, api=api, models=parse(payload))
    raise BackendError("http", "none of /api/v1/models, /api/v0/models, /v1/models exists")
