"""OpenAI-compatible servers (vLLM, llama.cpp's llama-server, …): GET /v1/models."""

from __future__ import annotations

from typing import Any

import httpx

from .http import BackendError, Deadline, get_json
from .modelinfo import ModelInfo, Probe
from .values import as_dict, as_int, as_str


def _params(n: Any) -> str | None:
    n = as_int(n)
    return f"{n / 1e9:.1f}B" if n else None


def fetch(client: httpx.Client, base: str, deadline: Deadline) -> Probe:
    payload = get_json(client, f"{base}/v1/models", deadline)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise BackendError("shape", "/v1/models has no data list")
    models = []
    for m in data:
        m = as_dict(m)
        model_id = as_str(m.get("id"))
        if model_id is None:
            continue
        meta = as_dict(m.get("meta"))  # llama.cpp; null while loading
        # vLLM names what it loaded in `root`; llama.cpp's id is its model file (or an alias).
        root = as_str(m.get("root")) or (model_id if m.get("owned_by") == "llamacpp" else None)
        models.append(
            ModelInfo(
                id=model_id,
                loaded=True,  # these servers list what they serve
                size=as_int(meta.get("size")),
                parameter_size=_params(meta.get("n_params")),
                context_length=as_int(m.get("max_model_len")) or as_int(meta.get("n_ctx_train")),
                parent=as_str(m.get("parent")),  # vLLM: the base model of a LoRA adapter
                root=root,
            )
        )
    return Probe(version=None, api="openai", models=models)
