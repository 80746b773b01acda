"""A run's ranking as its page and JSON ask for it (`?rank=`), with the first rule tier: the
pass rate its checkpoints' sweeps found on a prompt set (discovery.ranking.by_evaluation).

`rank` is empty (the default rule: a prompt set's pass rate where two checkpoints have results
on one, else the training-metric rule), `eval:<prompt set>`, `training` (the training-metric
rule, chosen by name where evaluations would rank), or a metric the run logged (with `order`).

The run list's and /explore/'s best score stay the training-metric rule's: they compare runs'
scores within one rule (Ranking.group), from details discovery keeps without the database, and
a pass rate compares only between runs evaluated on the same prompt set; /explore/ sets
configurations against that already through its `pass_rate:<prompt set>` outcome. The run
list's best names its rule, so it reads right beside a run page ranked by a pass rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.http import HttpRequest

from discovery.ranking import (
    TRAINING,
    PassRate,
    RankError,
    RankRequest,
    Results,
    by_evaluation,
    prompt_set_of,
    rankable_sets,
    with_evaluations,
)
from discovery.runs import Run, RunDetail, detail
from tuner_site.jobs.sweep import checkpoint_evaluations
from tuner_site.params import BadQuery, choice_param

Evaluated = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Ranked:
    d: RunDetail
    # Each checkpoint's newest sweep result per prompt set (jobs/sweep.py), as the JSON gives.
    evaluated: Evaluated
    # Prompt sets that can rank this run (`eval:<set>`), the default first.
    prompt_sets: tuple[str, ...]
    training_rule: str  # the training-metric rule (Ranking.label), which `rank=training` gives


def pass_rates(evaluated: Mapping[str, list[dict[str, Any]]]) -> Results:
    """The results as discovery ranks them; a result's name (run_YYYYmmdd_HHMMSS) dates it."""
    return {
        checkpoint: [
            PassRate(e["prompt_set"], e["passed"], e["total"], e["result"] or "") for e in found
        ]
        for checkpoint, found in evaluated.items()
    }


def ranked_detail(request: HttpRequest, run: Run) -> Ranked:
    """The run's detail ranked as `rank` and `order` ask; a value it cannot rank by is a
    BadQuery that says which it can."""
    return ranked(
        run, request.GET.get("rank") or None, choice_param(request, "order", ("min", "max"))
    )


def ranked(run: Run, asked: str | None = None, order: str | None = None) -> Ranked:
    """The run's detail ranked by `asked` (as `?rank=`; None: the default rule), as its page,
    its JSON and `discover checkpoints` give it. One query reads every checkpoint's results."""
    prompt_set = prompt_set_of(asked) if asked else None
    metric = asked if asked != TRAINING and prompt_set is None else None
    if order is not None and metric is None:
        raise BadQuery("order applies with rank=<metric>; give both, e.g. ?rank=loss&order=min.")
    try:
        d = detail(run, RankRequest(metric, order)) if metric else detail(run)
        if d.pending:  # not read yet: nothing to set the results against
            return Ranked(d, {}, (), d.ranking.label)
        evaluated = checkpoint_evaluations(run.trainer.id, run.name)
        results = pass_rates(evaluated)
        if metric is None and asked != TRAINING:
            ranking = by_evaluation(d.checkpoints, results, d.ranking, prompt_set)
        else:
            ranking = with_evaluations(d.ranking, d.checkpoints, results)
    except RankError as exc:
        raise BadQuery(str(exc)) from None
    sets = rankable_sets(d.checkpoints, results)
    training = detail(run).ranking if metric else d.ranking  # detail() keeps it: no re-read
    return Ranked(replace(d, ranking=ranking), evaluated, sets, training.label)
