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


@dataclass(frozen=True)
class Probe:
    """What one successful round of requests to a server returned."""

    version: str | None
    api: str
    models: list[ModelInfo] = field(default_factory=list)
