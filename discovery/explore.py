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
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import caches
from .checkpoints import Checkpoint
from .config import FRACTIONAL, RunConfig, Value, key_order
from .lineage import Lineage
from .ranking import RankError, RankRequest
from .runs import Run, RunDetail, detail
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
class Seen:
    """A checkpoint as an outcome reads it: its name and logged metrics."""

    name: str
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Facts:
    """The few things /explore/ reads of a run's detail, kept per run while its signature
    holds: a warm page decodes no run's detail (10,000 decoded details held 300 MB)."""

    pending: bool
    own: tuple[Rule | None, float | None]  # the run's own rule and best score under it
    logged: frozenset[str]  # every metric name of its history
    best: Seen | None
    last: Seen | None  # the last checkpoint (outcome_checkpoints)
    base_model: str | None

    @property
    def outcome_metrics(self) -> set[str]:
        return {m for c in (self.best, self.last) if c is not None for m in c.metrics}


def facts_of(d: RunDetail) -> Facts:
    score = d.best_score
    rule = Rule(d.ranking.metric, d.ranking.order) if score is not None else None
    seen = outcome_checkpoints(d)
    best = d.best if d.checkpoints else None
    return Facts(
        d.pending,
        (rule if rule and rule.metric else None, score),
        frozenset(d.history.metric_names()),
        Seen(best.name, dict(best.metrics)) if best is not None else None,
        Seen(seen[-1].name, dict(seen[-1].metrics)) if seen else None,
        d.base_model,
    )


def knows(run: Run) -> bool:
    """Whether this run's facts are kept for its signature (then its detail is not needed)."""
    with _lock:
        hit = _facts.get(run.id)
        if hit is None or not run.signature:
            return False
        if hit[0] is run.signature:
            return True
        if hit[0] == run.signature:
            # Each walk makes new, equal signatures: the next request compares by identity.
            _facts[run.id] = (run.signature, hit[1])
            return True
    return False


def learn(d: RunDetail) -> Facts:
    """The facts of a run's detail, kept unless the run is still being read (the detail itself
    is not: a page reading 10,000 runs holds one at a time)."""
    found = facts_of(d)
    if d.run.signature and not d.pending and not d.history.approximate:
        with _lock:
            _facts[d.run.id] = (d.run.signature, found)
    return found


def facts(runs: Sequence[Run], learned: Mapping[str, Facts]) -> dict[str, Facts]:
    """Every run's facts: those just `learn`ed, else those kept."""
    with _lock:
        return {r.id: learned[r.id] if r.id in learned else _facts[r.id][1] for r in runs}


@dataclass(frozen=True)
class Point:
    run: Run
    values: tuple[Value, ...]  # one per key, in the order asked
    y: float
    method: str
    base_model: str | None

    @property
    def x(self) -> Value:
        return self.values[0]


@dataclass(frozen=True)
class Missing:
    run: Run
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


Own = Mapping[str, tuple["Rule | None", float | None]]


def own_scores(facts: Mapping[str, Facts]) -> dict[str, tuple[Rule | None, float | None]]:
    """Each run's own rule and best score under it."""
    return {run: f.own for run, f in facts.items()}


def rules(own: Own) -> tuple[tuple[Rule, int], ...]:
    counts = Counter(r for r, _ in own.values() if r is not None)
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].metric)))


def best_score(run: Run, f: Facts, rule: Rule) -> tuple[float | None, str]:
    """The run's best score under `rule`, or why it has none."""
    own_rule, own_score = f.own
    if own_rule == rule:
        return own_score, ""
    if rule.metric not in f.logged:
        scored = f"scored by {own_rule.metric}" if own_rule else "no score"
        return None, f"{scored}; {rule.metric} not logged"
    key = (run.id, rule)
    with _lock:
        hit = _ranked.get(key)
    if hit is not None and hit[0] == run.signature and run.signature:
        return hit[1]
    try:
        ranked = detail(run, RankRequest(rule.metric, rule.order))
    except RankError as exc:
        found: tuple[float | None, str] = (None, str(exc))
    else:
        score = ranked.best_score
        found = (
            (score, "") if score is not None else (None, f"no checkpoint has a {rule.metric} score")
        )
    with _lock:
        _ranked[key] = (run.signature, found)
    return found


# (run id, rule) → (the run's signature, its best score under the rule or why none): ranking
# every checkpoint of a thousand runs again on each page would cost more than all else.
_ranked: dict[tuple[str, Rule], tuple[tuple, tuple[float | None, str]]] = {}
# run id → (the run's signature, its Facts).
_facts: dict[str, tuple[tuple, Facts]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _ranked.clear()
        _facts.clear()
        _available.clear()
        _explored.clear()


caches.register(__name__, clear_cache, "_ranked", "_facts", "_available", "_explored")


def metric_at(f: Facts, name: str, at: str) -> tuple[float | None, str]:
    if f.last is None:
        return None, "no checkpoint"
    if at == "best":
        c = f.best
        if c is None:
            return None, "no best checkpoint"
    else:
        c = f.last
    value = finite(c.metrics.get(name))
    if value is None:
        return None, f"{name} not logged at {c.name}"
    return value, ""


def pass_rate(rates: Mapping[str, Mapping[str, float]], run: Run, name: str) -> tuple:
    value = rates.get(run.id, {}).get(name)
    return (value, "") if value is not None else (None, f"not evaluated on {name}")


def explore(
    runs: Sequence[Run],
    facts: Mapping[str, Facts],
    configs: Mapping[str, RunConfig],
    keys: Sequence[str],
    outcome: Outcome,
    rule: Rule | None,
    rates: Mapping[str, Mapping[str, float]],
) -> Exploration:
    """Every run a point or missing; the last answer is reused while no run, configuration or
    pass rate changed and the same plot is asked for (then nothing is done per run)."""
    key = (
        tuple((r.id, r.signature, facts[r.id]) for r in runs),
        tuple(configs[r.id] for r in runs),
        tuple(keys),
        outcome,
        rule,
        tuple((run, tuple(sorted(per.items()))) for run, per in sorted(rates.items()))
        if outcome.kind == "pass_rate"
        else (),
    )
    with _lock:
        hit = _explored.get("last")
    if hit is not None and hit[0] == key:
        return hit[1]
    found = _explore_now(runs, facts, configs, keys, outcome, rule, rates)
    with _lock:
        _explored["last"] = (key, found)
    return found


_explored: dict[str, tuple[tuple, Exploration]] = {}


def _explore_now(
    runs: Sequence[Run],
    facts: Mapping[str, Facts],
    configs: Mapping[str, RunConfig],
    keys: Sequence[str],
    outcome: Outcome,
    rule: Rule | None,
    rates: Mapping[str, Mapping[str, float]],
) -> Exploration:
    value: Callable[[Run, Facts], tuple[float | None, str]]
    if outcome.kind == BEST_SCORE:
        assert rule is not None

        def value(r: Run, f: Facts) -> tuple[float | None, str]:
            return best_score(r, f, rule)
    elif outcome.kind == "metric":

        def value(r: Run, f: Facts) -> tuple[float | None, str]:
            return metric_at(f, outcome.name, outcome.at)
    else:

        def value(r: Run, f: Facts) -> tuple[float | None, str]:
            return pass_rate(rates, r, outcome.name)

    points, missing = [], []
    for r in runs:
        cfg = configs[r.id]
        f = facts[r.id]
        lacking = [k for k in keys if cfg.get(k) is None]
        if f.pending:
            missing.append(Missing(r, "its log is still being read"))
            continue
        y, why = value(r, f)
        if lacking or y is None:
            whys = [f"no {k}" for k in lacking] + ([why] if y is None else [])
            missing.append(Missing(r, "; ".join(whys)))
            continue
        method = cfg.get("method")
        base = cfg.get("base_model")
        points.append(
            Point(
                r,
                tuple(cfg.get(k) for k in keys),  # type: ignore[misc]
                y,
                method if isinstance(method, str) else r.type,
                base if isinstance(base, str) else f.base_model,
            )
        )
    return Exploration(tuple(keys), outcome, rule, tuple(points), tuple(missing))


def outcome_checkpoints(d: RunDetail) -> list[Checkpoint]:
    """The checkpoints a metric outcome reads: the best one and the final one."""
    if not d.checkpoints:
        return []
    last = max(d.checkpoints, key=lambda c: (c.step is not None, c.step or 0, c.is_final))
    return [last] if d.best is None or d.best is last else [d.best, last]


def config_keys(configs: Mapping[str, RunConfig]) -> Counter[str]:
    keys: Counter[str] = Counter()
    for cfg in configs.values():
        keys.update(list(cfg.by_key))
    return keys


def available(
    runs: Sequence[Run],
    facts: Mapping[str, Facts],
    configs: Mapping[str, RunConfig],
    rates: Mapping[str, Mapping[str, float]],
) -> Available:
    """What can be explored; the last answer is reused while no run, configuration or pass
    rate changed (unchanged runs keep their objects, so the check is mostly identity)."""
    key = (
        tuple((r.id, r.signature, facts[r.id]) for r in runs),
        tuple(configs.values()),
        tuple((run, tuple(sorted(per.items()))) for run, per in sorted(rates.items())),
    )
    with _lock:
        hit = _available.get("last")
    if hit is not None and hit[0] == key:
        return hit[1]
    found = _available_now(facts, configs, rates)
    with _lock:
        _available["last"] = (key, found)
    return found


_available: dict[str, tuple[tuple, Available]] = {}


def _available_now(
    facts: Mapping[str, Facts],
    configs: Mapping[str, RunConfig],
    rates: Mapping[str, Mapping[str, float]],
) -> Available:
    keys = config_keys(configs)
    own = own_scores(facts)
    metrics: Counter[str] = Counter()
    for f in facts.values():
        metrics.update(f.outcome_metrics)
    sets: Counter[str] = Counter(name for per_run in rates.values() for name in per_run)
    outcomes = [(BEST_SCORE, sum(score is not None for _, score in own.values()))]
    outcomes += [(f"{METRIC}{m}", n) for m, n in sorted(metrics.items())]
    outcomes += [(f"{PASS_RATE}{s}", n) for s, n in sorted(sets.items())]
    return Available(
        tuple(sorted(keys.items(), key=lambda kv: key_order(kv[0]))),
        tuple(outcomes),
        rules(own),
        len(facts),
    )


def has_outcome(
    facts: Mapping[str, Facts], rates: Mapping[str, Mapping[str, float]], outcome: Outcome
) -> bool:
    """Whether some run has this outcome (a page asks for it by name)."""
    if outcome.kind == BEST_SCORE:
        return True
    if outcome.kind == "pass_rate":
        return any(outcome.name in per_run for per_run in rates.values())
    return any(outcome.name in f.outcome_metrics for f in facts.values())


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
