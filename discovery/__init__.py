"""Reading what trainers, evaluators and inference servers already have: no Django here."""

from __future__ import annotations

from .backends import Backend, BackendStatus
from .checkpoints import Checkpoint
from .logs import History
from .modelinfo import ModelInfo
from .prompt_sets import PromptSet
from .ranking import Ranking, RankRequest, rank
from .runs import Run, RunDetail, Trainer, Workspace, detail, get_run, list_runs
from .seed import (
    CheckpointDiscovery,
    CheckpointInfo,
    ModelDiscovery,
    PromptSetDiscovery,
    TrainingRunDiscovery,
)

__all__ = [
    "Backend",
    "BackendStatus",
    "Checkpoint",
    "CheckpointDiscovery",
    "CheckpointInfo",
    "History",
    "ModelDiscovery",
    "ModelInfo",
    "PromptSet",
    "PromptSetDiscovery",
    "RankRequest",
    "Ranking",
    "Run",
    "RunDetail",
    "Trainer",
    "TrainingRunDiscovery",
    "Workspace",
    "detail",
    "get_run",
    "list_runs",
    "rank",
]
