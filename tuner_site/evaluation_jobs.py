"""Where evaluation jobs lived before `tuner_site.jobs`. A django-tasks row stores its task's
dotted path; rows queued before the move name `tuner_site.evaluation_jobs.run_evaluation`, and
a worker still runs them through this name."""

from __future__ import annotations

from tuner_site.jobs.evaluation import run_evaluation

__all__ = ["run_evaluation"]
