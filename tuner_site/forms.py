"""The form that starts an evaluation, checked against what is discovered right now."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from discovery import serving
from discovery.backends import Backend, BackendStatus
from discovery.checkpoints import Checkpoint
from discovery.prompt_sets import PromptSet

from . import workspace
from .jobs import evaluator
from .jobs.evaluator import DEFAULT_TEMPERATURE, EVALUATOR_KINDS
from .prompt_notes import listed

FIELDS = ("backend", "model", "prompt_set", "tags", "limit", "temperature", "seed")
MAX_SEED = 2**31 - 1
MAX_LIMIT = 2**31 - 1  # what every database's integer column holds
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class Offer:
    """What can be evaluated now: the Ollama and LM Studio servers' answers, the prompt sets."""

    statuses: list[BackendStatus]
    prompt_sets: list[PromptSet]

    def status(self, name: str) -> BackendStatus | None:
        return next((s for s in self.statuses if s.backend.name == name), None)

    def prompt_set(self, name: str) -> PromptSet | None:
        return next((p for p in self.prompt_sets if p.name == name), None)

    def prompt_set_file(self, name: str) -> PurePath:
        """The prompt set's file as the Evaluator gets it: relative to the workspace."""
        found = self.prompt_set(name)
        assert found is not None
        return evaluator.prompt_file(found.path)

    @property
    def available(self) -> list[BackendStatus]:
        return [s for s in self.statuses if s.available]


def current_offer(root: Path) -> Offer:
    statuses = [s for s in workspace.backend_statuses() if s.backend.kind in EVALUATOR_KINDS]
    sets = [x.prompt_set for x in listed(root, include_hidden=True) if x.prompt_set.cases]
    return Offer(statuses, sets)


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit]) + (", …" if len(names) > limit else "")
    return shown or "none"


class EvaluationForm(forms.Form):
    """Every field is text here: each clean method says what it accepts when it refuses."""

    # The bounds the page shows and its inputs enforce, from the one place they are decided.
    max_temperature = MAX_TEMPERATURE
    default_temperature = DEFAULT_TEMPERATURE
    max_limit = MAX_LIMIT

    @property
    def budget(self) -> evaluator.Budget:
        return evaluator.budget()

    backend = forms.CharField(required=False)
    model = forms.CharField(required=False, max_length=500)
    prompt_set = forms.CharField(required=False)
    tags = forms.CharField(required=False)
    limit = forms.CharField(required=False)
    temperature = forms.CharField(required=False)
    seed = forms.CharField(required=False)

    def __init__(self, *args: Any, offer: Offer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer = offer

    def clean_backend(self) -> str:
        raw = self.cleaned_data["backend"]
        names = [s.backend.name for s in self.offer.statuses]
        if not names:
            raise ValidationError(
                "No Ollama or LM Studio server is configured: set OLLAMA_HOST or LMSTUDIO_HOST."
            )
        status = self.offer.status(raw)
        if status is None:
            raise ValidationError(
                f"backend must be one of the configured servers: {_listing(names)}; not {raw!r}."
            )
        if not status.available:
            raise ValidationError(f"{raw} is not answering right now: {status.error}")
        if problem := evaluator.server_problem(status.backend.url):
            raise ValidationError(problem)
        return raw

    def clean_prompt_set(self) -> str:
        raw = self.cleaned_data["prompt_set"]
        if self.offer.prompt_set(raw) is None:
            names = [p.name for p in self.offer.prompt_sets]
            raise ValidationError(
                f"prompt_set must be one of the prompt sets in Evaluator/prompts/: "
                f"{_listing(names)}; not {raw!r}."
            )
        if problem := evaluator.file_problem(raw, self.offer.prompt_set_file(raw)):
            raise ValidationError(problem)
        return raw

    def clean_limit(self) -> int | None:
        raw = self.cleaned_data["limit"].strip()
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= MAX_LIMIT:
            raise ValidationError(
                f"limit must be a whole number from 1 to {MAX_LIMIT:,}, or empty for every case;"
                f" not {raw!r}."
            )
        return value

    def clean_temperature(self) -> float:
        raw = self.cleaned_data["temperature"].strip()
        if not raw:
            return DEFAULT_TEMPERATURE
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0 <= value <= MAX_TEMPERATURE:
            raise ValidationError(
                f"temperature must be a number from 0 to {MAX_TEMPERATURE:g} "
                f"(empty: the Evaluator's {DEFAULT_TEMPERATURE}); not {raw!r}."
            )
        return value

    def clean_seed(self) -> int | None:
        raw = self.cleaned_data["seed"].strip()
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if not 0 <= value <= MAX_SEED:
            raise ValidationError(
                f"seed must be a whole number from 0 to {MAX_SEED}, or empty for none; not {raw!r}."
            )
        return value

    def clean_tags(self) -> tuple[str, ...]:
        raw = self.cleaned_data["tags"]
        tags = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
        if problem := evaluator.tags_problem(tags):
            raise ValidationError(problem)
        return tags

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        status = self.offer.status(data.get("backend") or "")
        model = (self.cleaned_data.get("model") or "").strip()
        if problem := evaluator.option_problem("The model", model):
            self.add_error("model", problem)
        elif status is not None and status.available:
            served = [m.id for m in status.models]
            if model not in served:
                self.add_error(
                    "model",
                    f"model must be one of the models {status.backend.name} serves now: "
                    f"{_listing(served)}; not {model!r}.",
                )
        prompt_set = self.offer.prompt_set(data.get("prompt_set") or "")
        tags = data.get("tags") or ()
        if prompt_set is not None and tags:
            self._check_tags(prompt_set, tags)
        return data

    def _check_tags(self, prompt_set: PromptSet, tags: tuple[str, ...]) -> None:
        cases = prompt_set.cases or ()
        known = sorted({t for c in cases for t in c.tags})
        unknown = [t for t in tags if t not in known]
        if unknown:
            self.add_error(
                "tags",
                f"tags must be tags {prompt_set.name} uses, comma-separated: "
                f"{_listing(known, 40)}; not {_listing(unknown)}.",
            )
        elif not any(set(tags) <= set(c.tags) for c in cases):
            # The Evaluator keeps the cases that have every tag, and stops when none has.
            self.add_error(
                "tags", f"No case of {prompt_set.name} has all of these tags: {', '.join(tags)}."
            )

    def chosen_backend(self) -> Backend:
        status = self.offer.status(self.cleaned_data["backend"])
        assert status is not None
        return status.backend

    def job_fields(self) -> dict[str, Any]:
        return {
            "model": self.cleaned_data["model"].strip(),
            **{k: self.cleaned_data[k] for k in FIELDS if k not in ("backend", "model")},
        }


SWEEP_FIELDS = (
    *("backend", "base", "prompt_set", "checkpoints"),
    *("tags", "limit", "temperature", "seed", "keep"),
)


def base_warnings(
    status: BackendStatus | None, base: str, adapters: list[serving.Adapter | None]
) -> list[str]:
    """What looks wrong with an Ollama base for these adapters (`serving.base_warning`), once
    each: said in the form before a sweep starts and on its page, never a refusal."""
    if status is None or status.backend.kind != "ollama" or not base:
        return []
    info = next((m for m in status.models if m.id == base), None)
    found: list[str] = []
    for adapter in adapters:
        if info is None or adapter is None:
            continue
        warning = serving.base_warning(base, info.family, adapter.base_model)
        if warning and warning not in found:
            found.append(warning)
    return found


def sweep_offer(root: Path) -> Offer:
    """What a sweep can use: servers that take adapters (Ollama, vLLM), the prompt sets."""
    statuses = [s for s in workspace.backend_statuses() if serving.api_for(s.backend.kind)]
    sets = [x.prompt_set for x in listed(root, include_hidden=True) if x.prompt_set.cases]
    return Offer(statuses, sets)


class SweepForm(EvaluationForm):
    """A sweep over a run's checkpoints: the evaluation's fields, the base model for Ollama,
    the checkpoints (default: `serving.default_selection`) and whether to keep each model."""

    base = forms.CharField(required=False, max_length=500)
    checkpoints = forms.CharField(required=False)
    keep = forms.CharField(required=False)

    def __init__(
        self,
        *args: Any,
        offer: Offer,
        run_checkpoints: tuple[Checkpoint, ...],
        best: str | None,
        root: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, offer=offer, **kwargs)
        self.fields.pop("model")
        self.run_checkpoints, self.best, self.root = run_checkpoints, best, root
        self.servable = {c.name: serving.servable(c, root) for c in run_checkpoints}
        self.warnings: list[str] = []

    def clean_backend(self) -> str:
        if not self.offer.statuses:
            raise ValidationError(
                "No Ollama or vLLM server is configured: set OLLAMA_HOST, or "
                "TUNER_OPENAI_BACKENDS=name=url for vLLM."
            )
        raw = super().clean_backend()
        status = self.offer.status(raw)
        assert status is not None
        if serving.api_for(status.backend.kind) == "vllm":
            try:
                problem = serving.runtime_lora_problem(status.backend.url)
            except serving.ServingError as exc:
                problem = str(exc)
            if problem:
                raise ValidationError(problem)
        return raw

    def clean_keep(self) -> bool:
        raw = self.cleaned_data["keep"].strip().lower()
        if raw not in ("", "0", "1", "true", "false", "on", "off", "yes", "no"):
            raise ValidationError(f"keep must be true or false; not {raw!r}.")
        return raw in ("1", "true", "on", "yes")

    def clean_checkpoints(self) -> list[str]:
        raw = self.cleaned_data["checkpoints"]
        names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
        ok = [n for n, s in self.servable.items() if s.adapter is not None]
        if not names:
            chosen = serving.default_selection(self.run_checkpoints, self.best, ok)
            if not chosen:
                why = "; ".join(f"{n}: {s.reason}" for n, s in list(self.servable.items())[:6])
                raise ValidationError(
                    f"No checkpoint of this run can be served as an adapter ({why or 'none'})."
                )
            return chosen
        problems = []
        for name in names:
            found = self.servable.get(name)
            if found is None:
                problems.append(f"{name} is not a checkpoint of this run")
            elif found.adapter is None:
                problems.append(f"{name} cannot be served: {found.reason}")
        if problems:
            more = f"; and {len(problems) - 10:,} more" if len(problems) > 10 else ""
            raise ValidationError(
                f"checkpoints must be servable checkpoints of this run ({_listing(ok)}): "
                + "; ".join(problems[:10])
                + more
                + "."
            )
        order = [c.name for c in sorted(self.run_checkpoints, key=serving.step_order)]
        return sorted(names, key=order.index)

    def clean(self) -> dict[str, Any]:
        data = forms.Form.clean(self) or {}
        status = self.offer.status(data.get("backend") or "")
        base = (self.cleaned_data.get("base") or "").strip()
        if status is not None and status.available and status.backend.kind == "ollama":
            served = [m.id for m in status.models]
            if not base:
                self.add_error(
                    "base",
                    f"base is the model on {status.backend.name} the adapter "
                    f"goes on, one of: {_listing(served)}.",
                )
            elif base not in served:
                self.add_error(
                    "base",
                    f"base must be one of the models {status.backend.name} serves now: "
                    f"{_listing(served)}; not {base!r}.",
                )
            else:
                self.warnings = self.warnings_for(data.get("backend") or "", base, data)
        elif status is not None and status.available and not self.errors:
            self._try_load(status, data.get("checkpoints") or ())
        data["base"] = base
        prompt_set = self.offer.prompt_set(data.get("prompt_set") or "")
        tags = data.get("tags") or ()
        if prompt_set is not None and tags:
            self._check_tags(prompt_set, tags)
        return data

    def warnings_for(self, backend: str, base: str, data: dict[str, Any]) -> list[str]:
        """The base's warnings for the checked checkpoints (or the default ones)."""
        names = data.get("checkpoints")
        if names is None:
            ok = [n for n, s in self.servable.items() if s.adapter is not None]
            names = serving.default_selection(self.run_checkpoints, self.best, ok)
        found = [self.servable[n].adapter for n in names if n in self.servable]
        return base_warnings(self.offer.status(backend), base, found)

    def _try_load(self, status: BackendStatus, names: Sequence[str]) -> None:
        """vLLM: load the first checkpoint once, so a server that cannot (404/400) says so
        here, before anything starts; every checkpoint of a run is the same kind of folder."""
        adapter = self.servable[names[0]].adapter if names else None
        if serving.api_for(status.backend.kind) != "vllm" or adapter is None:
            return
        if problem := serving.load_problem(status.backend.url, adapter):
            self.add_error("backend", f"{status.backend.name} could not load {names[0]}: {problem}")

    def sweep_fields(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in SWEEP_FIELDS if k not in ("backend",)}
