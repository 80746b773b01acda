"""The seed document's public classes, as the upstream menu and scripts call them.

Thin: each delegates to the module where its rule lives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backends
from .logindex import read_history
from .paths import realpath
from .prompt_sets import count_source, default_description, list_prompt_sets
from .ranking import margin_over_kl
from .runs import Workspace, list_checkpoints, list_runs
from .values import finite


class TrainingRunDiscovery:
    """Run folders of one trainer type, newest first."""

    def __init__(self, repo_root: Path | str | None = None) -> None:
        self.repo_root = Path(repo_root) if repo_root is not None else Path.cwd()

    def discover(
        self, trainer_type: str, limit: int | None = None, platform: str | None = None
    ) -> list[Path]:
        """Run folders, newest first; `platform` ("rtx", "rtx3090", "mac") narrows by trainer."""
        if not self.repo_root.is_dir():
            return []
        # The seed lists runs with something to publish or evaluate: a checkpoint or final model.
        runs = [
            r
            for r in list_runs(Workspace.at(self.repo_root), trainer_type)
            if r.checkpoint_steps or r.final
        ]
        if platform:
            runs = [r for r in runs if r.trainer.platform.lower().startswith(platform.lower())]
        # An MLX trainer's runs share its folder: name it once.
        paths = list(dict.fromkeys(r.path for r in runs))
        return paths[:limit] if limit is not None else paths


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint record: `score()` is higher-is-better for `max()`."""

    path: Path
    step: int
    metrics: dict[str, Any] = field(default_factory=dict)
    is_final: bool = False

    def score(self, training_type: str) -> float:
        if training_type.lower() == "kto":
            value = margin_over_kl(self.metrics)
            return value if value is not None else -math.inf
        loss = finite(self.metrics.get("loss"))
        return -loss if loss is not None else -math.inf


class CheckpointDiscovery:
    """Checkpoints of a run folder, and its merged metrics by step."""

    @staticmethod
    def load_metrics(run_dir: Path) -> dict[int, dict[str, Any]]:
        run_dir = Path(run_dir)
        merged = read_history(run_dir, realpath(run_dir)).merged
        return {step: dict(merged[step]) for step in sorted(merged)}

    @staticmethod
    def discover(run_dir: Path) -> list[CheckpointInfo]:
        return [
            CheckpointInfo(
                path=c.path,
                step=-1 if c.is_final else c.step,  # type: ignore[arg-type]
                metrics=dict(c.metrics),
                is_final=c.is_final,
            )
            for c in list_checkpoints(Path(run_dir))
        ]


class ModelDiscovery:
    """Model names per inference server, `[]` when it fails or is unknown.

    The one reader of the environment in this package: the seed calls it without arguments.
    """

    @staticmethod
    def status(
        backend_name: str, timeout: float = backends.DEFAULT_TIMEOUT_S
    ) -> backends.BackendStatus | None:
        """The richer call: availability, the error message and every model's details."""
        env = os.environ
        try:
            found = backends.configured(
                env.get("OLLAMA_HOST"), env.get("LMSTUDIO_HOST"), env.get("TUNER_OPENAI_BACKENDS")
            )
        except ValueError:
            return None
        backend = next((b for b in found if b.name == backend_name), None)
        return backends.probe(backend, timeout) if backend else None

    @staticmethod
    def discover(backend_name: str, timeout: float = backends.DEFAULT_TIMEOUT_S) -> list[str]:
        result = ModelDiscovery.status(backend_name, timeout)
        return [m.id for m in result.models] if result and result.available else []


class PromptSetDiscovery:
    """`(name, description, count)` for every prompt set."""

    def __init__(
        self, repo_root: Path | str | None = None, descriptions: Mapping[str, str] | None = None
    ) -> None:
        self.repo_root = Path(repo_root) if repo_root is not None else Path.cwd()
        self.descriptions = dict(descriptions or {})

    def discover(self) -> list[tuple[str, str, int | None]]:
        root = realpath(self.repo_root)
        return [
            (s.name, self.descriptions.get(s.name) or default_description(s.name), s.count)
            for s in list_prompt_sets(root)
        ]

    @staticmethod
    def _count_prompts(data: Any) -> int:
        items = count_source(data)
        return len(items) if items is not None else 0
