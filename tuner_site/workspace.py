"""Where settings reach discovery: the workspace to read, the inference servers to ask, and
where the index store and the hash file live.

Views, the CLI, admin and the background indexer all start here; discovery reads no setting.
"""

from __future__ import annotations

from django.conf import settings

from discovery import backends as backends_mod
from discovery import lineage as lineage_mod
from discovery.backends import Backend, BackendStatus
from discovery.evaluations import list_evaluations
from discovery.hashing import hasher
from discovery.logindex import indexer
from discovery.runs import Workspace

# Pages reuse a walk for a second (training runs are always read again): many open pages
# polling every few seconds share one walk of a thousand runs instead of each making its own.
WALK_REUSE_S = 1.0


def configure() -> None:
    """Hand discovery's process-wide readers their folders (at start-up, from `apps.ready`)."""
    # Indexes survive restarts in the dashboard's own data folder, never in the workspace.
    indexer.configure(settings.TUNER_INDEX_DIR)
    hasher.configure(settings.TUNER_HASH_FILE)


class WorkspaceMissing(Exception):
    """The configured workspace is not a readable folder; pages answer 503 saying so."""

    def message(self) -> str:
        return (
            f"The training workspace {self} is missing or unreadable. Set TUNER_WORKSPACE "
            "to a checkout of the training project (the folder with Trainers/ and "
            "Evaluator/), or unset it to use the demo workspace."
        )


def current() -> Workspace:
    """The configured workspace, or WorkspaceMissing. Run folders alone (TUNER_RUN_DIRS) are
    enough to show: then a missing workspace only means no prompt sets or results."""
    ws = Workspace.at(
        settings.TUNER_WORKSPACE,
        float(settings.TUNER_RUNNING_WINDOW),
        # Missing ones too: the run list says which give no run, and why.
        tuple(settings.TUNER_RUN_DIRS),
        WALK_REUSE_S,
    )
    try:
        next(iter(ws.root.iterdir()), None)
    except OSError:  # missing, not a folder, or unreadable
        if any(d.is_dir() for d in ws.run_dirs):
            return ws
        raise WorkspaceMissing(str(settings.TUNER_WORKSPACE)) from None
    return ws


def backends() -> list[Backend]:
    return backends_mod.configured(
        settings.OLLAMA_HOST, settings.LMSTUDIO_HOST, settings.TUNER_OPENAI_BACKENDS
    )


def backend_statuses() -> list[BackendStatus]:
    """Every configured server's answer, cached for a few seconds across requests."""
    return backends_mod.statuses(
        backends(), settings.TUNER_BACKEND_TIMEOUT, settings.TUNER_BACKEND_CACHE_SECONDS
    )


def probe(backend: Backend) -> BackendStatus:
    """One server's answer right now, uncached: a job checks its server before it starts."""
    return backends_mod.probe(backend, settings.TUNER_BACKEND_TIMEOUT)


def catalog() -> lineage_mod.Catalog:
    """What runs published, read again as often as the servers are asked."""
    return lineage_mod.recent_catalog(current(), settings.TUNER_BACKEND_CACHE_SECONDS)


def lineage(statuses: list[BackendStatus] | None = None) -> lineage_mod.Lineage:
    """Runs, what they published, what serves it and how it scored, joined."""
    ws = current()
    found = backend_statuses() if statuses is None else statuses
    # Upload folders are read again as often as the servers are asked.
    max_age = settings.TUNER_BACKEND_CACHE_SECONDS
    return lineage_mod.build(ws, found, list_evaluations(ws.root), max_age)
