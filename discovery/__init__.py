"""Reading what trainers, evaluators and inference servers already have: no Django here."""

from __future__ import annotations

from .checkpoints import Checkpoint, CheckpointDiscovery, CheckpointInfo, list_checkpoints
from .jsonl import History, read_history
from .models import Backend, BackendStatus, ModelDiscovery, ModelInfo
from .prompt_sets import PromptSet, PromptSetDiscovery
from .ranking import Ranking, rank
from .runs import Run, RunDetail, Trainer, TrainingRunDiscovery, detail, get_run, list_runs

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
    "Ranking",
    "Run",
    "RunDetail",
    "Trainer",
    "TrainingRunDiscovery",
    "detail",
    "get_run",
    "list_checkpoints",
    "list_runs",
    "rank",
    "read_history",
]
