"""Configuration against outcome, across runs: which settings went with better results.

A run is a point when it has the chosen configuration key (discovery.config) and the chosen
outcome; every other run is listed as missing, with why. Outcomes:
- `best_score`: the best checkpoint's score under one named rule (`rule`, a metric, and its
  order): scores of different rules do not compare, so a run whose own rule is another is
  ranked again by the named one when it logged that metric;
- `metric:<name>`: a logged metric's value at the run's best checkpoint, or at its final one;
- `pass_rate:<prompt set>`: the best pass rate on that prompt set of any model or checkpoint
  evaluated from the run (discovery.lineage links evaluations to runs).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .config import FRACTIONAL, RunConfig, Value, key_order
from .lineage import Lineage
from .ranking import RankError, RankRequest
from .runs import RunDetail, detail
from .values import finite

BEST_SCORE = "best_score"
METRIC = "metric:"
PASS_RATE = "pass_rate:"
AT = ("best", "final")
COLOR_BY = ("method", "base_model")
# Rates and ratios spanning this factor or more are drawn on a log axis.
LOG_SPAN = 20.0


@dataclass(frozen=True)
class Outcome:
    kind: str  # BEST_SCORE, "metric" or "pass_rate"
    name: str = ""  # the metric or the prompt set
    at: str = "best"  # a metric's checkpoint: the best one or the final one

    @property
    def spec(self) -> str:
        if self.kind == BEST_SCORE:
            return BEST_SCORE
        return f"{self.kind}:{self.name}"

    @property
    def label(self) -> str:
        if self.kind == BEST_SCORE:
            return "best score"
        if self.kind == "metric":
            return f"{self.name} at the {self.at} checkpoint"
        return f"pass rate on {self.name}"


def parse_outcome(text: str, at: str = "best") -> Outcome | None:
    if text == BEST_SCORE:
        return Outcome(BEST_SCORE)
    for prefix, kind in ((METRIC, "metric"), (PASS_RATE, "pass_rate")):
        if text.startswith(prefix) and len(text) > len(prefix):
            return Outcome(kind, text[len(prefix) :], at)
    return None


@dataclass(frozen=True)
class Rule:
    """The one rule best scores are compared under: a metric and which way is better."""

    metric: str
    order: str

    @property
    def label(self) -> str:
        return f"{self.metric}, {'higher' if self.order == 'max' else 'lower'} is better"


@dataclass(frozen=True)
class Point:
    d: RunDetail
    values: tuple[Value, ...]  # one per key, in the order asked
    y: float
    method: str
    base_model: str | None

    @property
    def x(self) -> Value:
        return self.values[0]


@dataclass(frozen=True)
class Missing:
    d: RunDetail
    why: str


@dataclass(frozen=True)
class Exploration:
    keys: tuple[str, ...]
    outcome: Outcome
    rule: Rule | None
    points: tuple[Point, ...]
    missing: tuple[Missing, ...]


@dataclass(frozen=True)
class Available:
    """What can be explored, each with how many runs have it."""

    keys: tuple[tuple[str, int], ...]
    outcomes: tuple[tuple[str, int], ...]
    rules: tuple[tuple[Rule, int], ...]  # best_score's rules, the most common first
    runs: int


def _own_rule(d: RunDetail) -> Rule | None:
    if d.best_score is None or not d.ranking.metric:
        return None
    return Rule(d.ranking.metric, d.ranking.order)


def rules(details: Sequence[RunDetail]) -> tuple[tuple[Rule, int], ...]:
    counts = Counter(r for r in map(_own_rule, details) if r is not None)
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].metric)))


def best_score(d: RunDetail, rule: Rule) -> tuple[float | None, str]:
    """The run's best score under `rule`, or why it has none."""
    own = _own_rule(d)
    if own == rule:
        return d.best_score, ""
    if rule.metric not in d.history.metric_names():
        scored = f"scored by {own.metric}" if own else "no score"
        return None, f"{scored}; {rule.metric} not logged"
    try:
        ranked = detail(d.run, RankRequest(rule.metric, rule.order))
    except RankError as exc:
        return None, str(exc)
    if ranked.best_score is None:
        return None, f"no checkpoint has a {rule.metric} score"
    return ranked.best_score, ""


def metric_at(d: RunDetail, name: str, at: str) -> tuple[float | None, str]:
    if not d.checkpoints:
        return None, "no checkpoint"
    if at == "best":
        c = d.best
        if c is None:
            return None, "no best checkpoint"
    else:
        c = max(d.checkpoints, key=lambda c: (c.step is not None, c.step or 0, c.is_final))
    value = finite(c.metrics.get(name))
    if value is None:
        return None, f"{name} not logged at {c.name}"
    return value, ""


def pass_rate(rates: Mapping[str, Mapping[str, float]], d: RunDetail, name: str) -> tuple:
    value = rates.get(d.run.id, {}).get(name)
    return (value, "") if value is not None else (None, f"not evaluated on {name}")


def explore(
    details: Sequence[RunDetail],
    configs: Mapping[str, RunConfig],
    keys: Sequence[str],
    outcome: Outcome,
    rule: Rule | None,
    rates: Mapping[str, Mapping[str, float]],
) -> Exploration:
    value: Callable[[RunDetail], tuple[float | None, str]]
    if outcome.kind == BEST_SCORE:
        assert rule is not None

        def value(d: RunDetail) -> tuple[float | None, str]:
            return best_score(d, rule)
    elif outcome.kind == "metric":

        def value(d: RunDetail) -> tuple[float | None, str]:
            return metric_at(d, outcome.name, outcome.at)
    else:

        def value(d: RunDetail) -> tuple[float | None, str]:
            return pass_rate(rates, d, outcome.name)

    points, missing = [], []
    for d in details:
        cfg = configs[d.run.id]
        lacking = [k for k in keys if cfg.get(k) is None]
        if d.pending:
            missing.append(Missing(d, "its log is still being read"))
            continue
        y, why = value(d)
        if lacking or y is None:
            whys = [f"no {k}" for k in lacking] + ([why] if y is None else [])
            missing.append(Missing(d, "; ".join(whys)))
            continue
        method = cfg.get("method")
        base = cfg.get("base_model")
        points.append(
            Point(
                d,
                tuple(cfg.get(k) for k in keys),  # type: ignore[misc]
                y,
                method if isinstance(method, str) else d.run.type,
                base if isinstance(base, str) else d.base_model,
            )
        )
    return Exploration(tuple(keys), outcome, rule, tuple(points), tuple(missing))


def available(
    details: Sequence[RunDetail],
    configs: Mapping[str, RunConfig],
    rates: Mapping[str, Mapping[str, float]],
) -> Available:
    keys: Counter[str] = Counter()
    for d in details:
        keys.update(list(configs[d.run.id].by_key))
    metrics: Counter[str] = Counter()
    for d in details:
        names = {m for c in d.checkpoints for m in c.metrics}
        metrics.update(names)
    sets: Counter[str] = Counter(name for per_run in rates.values() for name in per_run)
    outcomes = [(BEST_SCORE, sum(d.best_score is not None for d in details))]
    outcomes += [(f"{METRIC}{m}", n) for m, n in sorted(metrics.items())]
    outcomes += [(f"{PASS_RATE}{s}", n) for s, n in sorted(sets.items())]
    return Available(
        tuple(sorted(keys.items(), key=lambda kv: key_order(kv[0]))),
        tuple(outcomes),
        rules(details),
        len(details),
    )


def numeric(values: Sequence[Value]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def wants_log(key: str, values: Sequence[Value]) -> bool:
    """A rate or ratio spread over orders of magnitude reads on a log axis."""
    if key not in FRACTIONAL or not values or not numeric(values):
        return False
    numbers = [float(v) for v in values]  # type: ignore[arg-type]
    if min(numbers) <= 0 or not all(math.isfinite(v) for v in numbers):
        return False
    return max(numbers) / min(numbers) >= LOG_SPAN


def pass_rates(lineage: Lineage) -> dict[str, dict[str, float]]:
    """Each run's best pass rate per prompt set, over every model or checkpoint evaluated from
    it (an evaluation linked to the run by discovery.lineage)."""
    rates: dict[str, dict[str, float]] = {}
    for model in lineage.models:
        for e in model.evaluations:
            ev = e.evaluation
            rate = finite(ev.pass_rate)
            if e.link is None or ev.prompt_set is None or rate is None:
                continue
            per_run = rates.setdefault(e.link.origin.run.id, {})
            per_run[ev.prompt_set] = max(rate, per_run.get(ev.prompt_set, rate))
    return rates
