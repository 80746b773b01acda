"""What an inference server says about one model, and one round of answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelInfo:
    id: str
    loaded: bool | None
    size: int | None = None
    quantization: str | None = None
    family: str | None = None
    parameter_size: str | None = None
    context_length: int | None = None
    size_vram: int | None = None
    modified_at: str | None = None
    expires_at: str | None = None
    format: str | None = None
    type: str | None = None
    parent: str | None = None
    # Ollama: the manifest digest /api/tags lists, and the sha256 of the blobs its Modelfile's
    # FROM and ADAPTER lines name (None until /api/show has been asked).
    digest: str | None = None
    blobs: tuple[str, ...] | None = None
    # vLLM: the path or repo a model or LoRA adapter was loaded from; llama.cpp: its model file.
    root: str | None = None
    # LM Studio: who published it, so `<publisher>/<key>` names the hub repo.
    publisher: str | None = None


@dataclass(frozen=True)
class Probe:
    """What one successful round of requests to a server returned."""

    version: str | None
    api: str
    models: list[ModelInfo] = field(default_factory=list)
