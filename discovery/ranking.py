"""Choosing the best checkpoint of a run, and saying which rule chose it."""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from .checkpoints import Checkpoint
from .evaluations import wilson
from .logs import History
from .metrics import PASS_RATE_PREFIX, direction, is_bookkeeping, is_evaluation

Score = Callable[[Mapping[str, float]], float | None]
ORDERS = ("min", "max")


class RankError(ValueError):
    """A ranking request this run cannot answer; the message says what it can."""


@dataclass(frozen=True)
class RankRequest:
    """Rank by `metric` (one the run logged), `order` "min"/"max" or its natural direction."""

    metric: str
    order: str | None = None

    def check(self, logged: list[str]) -> None:
        if self.order is not None and self.order not in ORDERS:
            raise RankError(f"order must be min or max, not {self.order!r}.")
        if self.metric not in logged:
            accepted = ", ".join(sorted(logged)) or "(none logged yet)"
            raise RankError(
                f"rank must be a metric this run logged: {accepted}. Got {self.metric!r}."
            )


@dataclass(frozen=True)
class Ranking:
    rule: str
    metric: str
    order: str
    scores: tuple[float | None, ...]
    best: str | None
    notes: tuple[str, ...] = ()
    # Why some checkpoints, but not all, have no score under the rule, as a sentence.
    unscored_note: str | None = None
    # How the best is chosen, as a clause pages, the CLI and the JSON print as written:
    # "ranked by eval_loss logged at the checkpoint's own step, lowest wins".
    how: str = ""
    # Where checkpoints were evaluated on prompt sets (`by_evaluation`): the checkpoint the
    # training-metric rule picks, and a sentence setting it against the best pass rate.
    training_best: str | None = None
    verdict: str | None = None

    @property
    def label(self) -> str:
        """The rule in a few words, beside a score: "eval_f1, the trainer's choice"."""
        return f"{self.metric}, the trainer's choice" if self.rule == "trainer" else self.rule

    @property
    def unscored(self) -> int:
        """How many checkpoints have no score under the rule (the trainer's too: the scores
        shown beside its choice)."""
        return sum(s is None for s in self.scores)

    @property
    def group(self) -> tuple[str, str]:
        """Which scores this ranking's compare with: the same metric, better the same way."""
        return self.metric, self.order

    @property
    def inputs(self) -> tuple[str, ...]:
        """The logged metrics a score is computed from: a ratio's margins and KL, else the
        metric itself."""
        rule = next((r for rules in RULES.values() for r in rules if r.name == self.metric), None)
        if rule is not None:
            return rule.inputs
        return (self.metric,) if self.metric else ()

    def score_of(self, checkpoints: Sequence[Checkpoint], name: str) -> float | None:
        for c, s in zip(checkpoints, self.scores, strict=True):
            if c.name == name:
                return s
        return None


def _metric(name: str) -> Score:
    def score(m: Mapping[str, float]) -> float | None:
        v = m.get(name)
        return v if v is not None and math.isfinite(v) else None

    return score


def _ratio(margin_key: str, kl_key: str) -> Score:
    def score(m: Mapping[str, float]) -> float | None:
        margin, kl = m.get(margin_key), m.get(kl_key)
        if margin is None or kl is None or not (math.isfinite(margin) and math.isfinite(kl)):
            return None
        if kl <= 0:
            return None
        value = margin / kl
        return value if math.isfinite(value) else None

    return score


margin_over_kl = _ratio("rewards/margins", "kl")
margin_over_kl.__doc__ = "KTO's score (the seed's): reward margin per unit of KL, where KL > 0."


@dataclass(frozen=True)
class Rule:
    name: str  # as pages and the JSON name it
    order: str
    score: Score
    kl_key: str | None = None  # a ratio over this KL: guarded against near-zero KL
    # The inputs count only when logged on the same line as this metric, where it is logged:
    # TRL's KTO logs rewards/margins only for batches holding both labels, and kl on every
    # line, so a margin from an older line would be set against a newer KL.
    line_of: str | None = None

    # Worked out once per rule, not on each of the many calls per checkpoint a ranking makes
    # (a frozen dataclass keeps a cached_property in its __dict__).
    @functools.cached_property
    def inputs(self) -> tuple[str, ...]:
        """The logged metrics a score is computed from."""
        if self.kl_key is not None:
            return (_margin_key(self.kl_key), self.kl_key)
        return (self.name,)

    @functools.cached_property
    def evaluates(self) -> bool:
        """Scored by evaluations, which count only at a checkpoint's own step."""
        return any(is_evaluation(k) for k in self.inputs)

    @functools.cached_property
    def _checked(self) -> tuple[tuple[str, bool], ...]:
        """Each input, and whether it is an evaluation (counted only at its own step)."""
        return tuple((k, is_evaluation(k)) for k in self.inputs)

    def values(self, c: Checkpoint) -> dict[str, float]:
        """The inputs this checkpoint may be scored by: an evaluation's value only when it was
        logged at the checkpoint's own step (transformers saves a best model only where
        `save_steps` is a multiple of `eval_steps`, so that a checkpoint is ranked by an
        evaluation of itself); a training metric's latest value at or before its step."""
        metrics, steps = c.point.values, c.point.steps
        anchor = steps.get(self.line_of) if self.line_of is not None else None
        found = {}
        for key, own_step in self._checked:
            value = metrics.get(key)
            if value is None:
                continue
            if own_step or anchor is not None:
                at = steps.get(key)
                if own_step and c.step is not None and at != c.step:
                    continue
                if anchor is not None and at != anchor:
                    continue
            found[key] = value
        return found

    def of(self, c: Checkpoint) -> float | None:
        return self.score(self.values(c))

    def inherited(self, c: Checkpoint) -> bool:
        """A value of an input is shown for this checkpoint, but from another step or line."""
        return any(k in c.metrics and math.isfinite(c.metrics[k]) for k in self.inputs) and (
            len(self.values(c)) < sum(k in c.metrics for k in self.inputs)
        )


# The first rule under which some checkpoint has a score applies, per training type.
_LOSS = (Rule("eval_loss", "min", _metric("eval_loss")), Rule("loss", "min", _metric("loss")))
RULES: dict[str, tuple[Rule, ...]] = {
    "kto": (
        Rule("eval_margin/kl", "max", _ratio("eval_rewards/margins", "eval_kl"), "eval_kl"),
        Rule("margin/kl", "max", margin_over_kl, "kl", line_of="kl"),
        # TRL clamps kl at 0, and writes 0 when KL is off: the margins alone then.
        Rule("rewards/margins", "max", _metric("rewards/margins"), line_of="kl"),
    ),
    "dpo": (
        Rule("eval_rewards/margins", "max", _metric("eval_rewards/margins")),
        Rule("rewards/margins", "max", _metric("rewards/margins")),
    ),
    "grpo": (
        Rule("eval_reward", "max", _metric("eval_reward")),
        Rule("reward", "max", _metric("reward")),
    ),
    "mlx": (Rule("val_loss", "min", _metric("val_loss")), Rule("loss", "min", _metric("loss"))),
}
RULES["orpo"] = RULES["dpo"]
# The KTO ratios count a checkpoint only when its KL is at least this share of the run's
# median positive KL: early in training KL is near 0 and the ratio explodes.
KL_FLOOR = 0.1


def rules_for(run_type: str) -> tuple[Rule, ...]:
    return RULES.get(run_type.lower(), _LOSS)


def _guarded(rule: Rule, checkpoints: Sequence[Checkpoint]) -> tuple[tuple[float | None, ...], int]:
    """Scores under `rule`, and how many checkpoints its KL guard left unscored."""
    values = [rule.values(c) for c in checkpoints]  # once: the guard reads them again
    scores = [rule.score(v) for v in values]
    if rule.kl_key is None:
        return tuple(scores), 0
    given = [v.get(rule.kl_key) for v in values]
    kls = sorted(kl for kl in given if kl is not None and kl > 0 and math.isfinite(kl))
    if not kls:
        return tuple(scores), 0
    floor = KL_FLOOR * statistics.median(kls)
    excluded = 0
    for i, kl in enumerate(given):
        if scores[i] is not None and kl is not None and kl < floor:
            scores[i] = None
            excluded += 1
    return tuple(scores), excluded


def type_rule(
    run_type: str, checkpoints: Sequence[Checkpoint], history: History | None = None
) -> tuple[Rule, tuple[float | None, ...], list[str]]:
    """The first rule of the type's list that scores some checkpoint, its scores, and notes."""
    rules = rules_for(run_type)
    passed: list[Rule] = []  # evaluation rules whose evaluations all missed the checkpoints
    # A rule none of whose inputs any checkpoint shows scores nothing and passes nothing on
    # (most runs log no evaluation): it is not asked of each checkpoint.
    shown: set[str] = set().union(*(c.metrics for c in checkpoints))
    for rule in rules:
        if shown.isdisjoint(rule.inputs):
            continue
        scores, excluded = _guarded(rule, checkpoints)
        if not any(s is not None for s in scores):
            if rule.evaluates and any(rule.inherited(c) for c in checkpoints):
                passed.append(rule)
            continue
        notes = [_missed(r, rule, checkpoints, history) for r in passed]
        if excluded:
            notes.append(
                f"{excluded} checkpoint{'s' if excluded > 1 else ''} not scored: "
                f"{rule.kl_key} below a tenth of the run's median positive {rule.kl_key}, "
                "where the ratio is noise."
            )
        return rule, scores, notes
    last = rules[-1]
    return last, (None,) * len(checkpoints), []


def pick_best(
    checkpoints: Sequence[Checkpoint], scores: Sequence[float | None], order: str
) -> str | None:
    """Best score; ties go to the earlier step, and a numbered folder beats final_model."""
    best: tuple[float, float, bool] | None = None
    best_name = None
    for c, s in zip(checkpoints, scores, strict=True):
        if s is None:
            continue
        key = (-s if order == "max" else s, c.step if c.step is not None else math.inf, c.is_final)
        if best is None or key < best:
            best, best_name = key, c.name
    return best_name


def trainer_metric(
    history: History,
    best_step: int | None,
    best_metric: float | None,
    named: str | None = None,
    greater: bool | None = None,
) -> tuple[str, str] | None:
    """The metric a Hugging Face Trainer picked its best checkpoint by, and its order: the
    `metric_for_best_model` a config names (the Trainer reads `f1` as `eval_f1`), else the
    evaluation logged at `best_global_step` whose value is `best_metric`. Greater is better
    unless the name ends in "loss", as the Trainer decides when `greater_is_better` is unset."""
    key = None
    if named:
        key = named if named.startswith("eval_") else f"eval_{named}"
    elif best_step is not None and best_metric is not None and math.isfinite(best_metric):
        point = history.at(best_step)
        found = sorted(
            k
            for k, v in point.values.items()
            if is_evaluation(k)
            and not is_bookkeeping(k)
            and point.steps.get(k) == best_step
            and math.isclose(v, best_metric, rel_tol=1e-9)
        )
        key = "eval_loss" if "eval_loss" in found else next(iter(found), None)
    if key is None:
        return None
    if greater is None:
        greater = not key.endswith("loss")
    return key, "max" if greater else "min"


def rank(
    run_type: str,
    checkpoints: Sequence[Checkpoint],
    trainer_best: tuple[str, str] | None = None,
    request: RankRequest | None = None,
    history: History | None = None,
    chosen_by: tuple[str, str] | None = None,
) -> Ranking:
    """Rank as requested, else by the trainer's own choice ((checkpoint name, where it is
    named), and `chosen_by`: the metric and order it chose by, where known), else by the first
    of the type's rules that scores a checkpoint. `history` (the run's) lets a sentence say
    when its evaluations ran."""
    notes: list[str] = []
    if request is not None:
        metric, order = request.metric, request.order or direction(request.metric)
        asked = Rule(metric, order, _metric(metric))
        scores = tuple(asked.of(c) for c in checkpoints)
        best = pick_best(checkpoints, scores, order)
        none = best is None and checkpoints
        notes = [_no_best((asked,), len(checkpoints))] if none else []
        # With no best at all, the note above says why already.
        why = _unscored_note(asked, checkpoints, scores, history) if best else None
        return Ranking(
            "requested", metric, order, scores, best, tuple(notes), why, _ranked_by(asked)
        )

    rule, scores, notes = type_rule(run_type, checkpoints, history)
    why = _unscored_note(rule, checkpoints, scores, history)
    if trainer_best is not None:
        name, source = trainer_best
        if any(c.name == name and not c.is_final for c in checkpoints):
            if chosen_by is not None:
                # The score column shows what the trainer chose by, so that it agrees with
                # the best mark.
                rule = Rule(chosen_by[0], chosen_by[1], _metric(chosen_by[0]))
                scores = tuple(rule.of(c) for c in checkpoints)
                notes = []
                why = _unscored_note(rule, checkpoints, scores, history)
            notes.insert(0, f"{source} names {name} as the best checkpoint.")
            how = _chosen(source, rule, chosen_by is not None)
            return Ranking("trainer", rule.name, rule.order, scores, name, tuple(notes), why, how)
        notes.insert(
            0,
            f"{source} names {name} as best, but that checkpoint is gone "
            f"(old checkpoints are rotated away); ranked by {rule.name} instead.",
        )
    best = pick_best(checkpoints, scores, rule.order)
    if best is None and checkpoints:
        notes.append(_no_best(rules_for(run_type), len(checkpoints)))
    why = why if best else None
    how = _ranked_by(rule)
    return Ranking(rule.name, rule.name, rule.order, scores, best, tuple(notes), why, how)


def _wins(rule: Rule) -> str:
    return "highest wins" if rule.order == "max" else "lowest wins"


def _ranked_by(rule: Rule) -> str:
    """How a rule ranks, as a clause: what it divides or reads, when, and which end wins."""
    own = " logged at the checkpoint's own step" if rule.evaluates else ""
    if rule.kl_key is not None:
        kl, margin = rule.kl_key, _margin_key(rule.kl_key)
        together = " on one line" if rule.line_of is not None else ""
        return (
            f"ranked by {margin} ÷ {kl}{own or together}, {_wins(rule)}, over checkpoints whose "
            f"{kl} is above 0 and at least a tenth of the run's median positive {kl}"
        )
    if rule.line_of is not None:
        own = f" logged on the line of its {rule.line_of}"
    return f"ranked by {rule.name}{own}, {_wins(rule)}"


def _chosen(source: str, rule: Rule, own_metric: bool) -> str:
    """The trainer's choice, as a clause: where it is named, and what the scores show."""
    where = (
        "best_model_checkpoint in trainer_state.json"
        if source.startswith("trainer_state.json")
        # MLX: "best_checkpoint.npz (a copy of checkpoint-40)", inside these brackets
        else "its " + source.replace(" (a copy of ", ", a copy of ").removesuffix(")")
    )
    shows = f"{rule.name}, the metric it chose by" if own_metric else rule.name
    return f"chosen by the trainer ({where}); the score column shows {shows}, {_wins(rule)}"


def _margin_key(kl_key: str) -> str:
    return kl_key.replace("kl", "rewards/margins")


def _when(rule: Rule, whose: str = "its") -> str:
    """When an input counts: an evaluation at the checkpoint's own step, a training metric at
    or before it."""
    if rule.evaluates:
        return f"at {whose} own step"
    if rule.line_of is not None and rule.kl_key is None:
        return f"with {whose} latest {rule.line_of}"
    return f"at or before {whose} step"


def _needs(rule: Rule) -> str:
    if rule.kl_key is not None:  # a ratio: its margins over a KL above 0
        together = " together" if rule.line_of is not None else ""
        return (
            f"{_margin_key(rule.kl_key)} with {rule.kl_key} above 0 logged{together} {_when(rule)}"
        )
    return f"a finite {rule.name} logged {_when(rule)}"


def _cadence(steps: Sequence[int]) -> str | None:
    """How often something ran, from the steps it ran at: "every 375 steps", "at step 40"."""
    steps = sorted(set(steps))
    if not steps:
        return None
    if len(steps) == 1:
        return f"only at step {steps[0]}"
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    common = max(set(gaps), key=gaps.count)
    # One odd gap is the last evaluation or save at the end of training.
    if gaps.count(common) >= len(gaps) - 1:
        return f"every {common} steps"
    shown = ", ".join(str(s) for s in steps[:4])
    return f"at steps {shown}{', …' if len(steps) > 4 else ''}"


def _schedule(rule: Rule, checkpoints: Sequence[Checkpoint], history: History | None) -> str | None:
    """ "evaluations ran every 375 steps, checkpoints every 500", where the history says."""
    if history is None:
        return None
    ran = _cadence(history.steps_of(rule.inputs[0]))
    saved = _cadence([c.step for c in checkpoints if not c.is_final and c.step is not None])
    if ran is None or saved is None:
        return None
    return f"evaluations ran {ran}, checkpoints {saved.removesuffix(' steps')}"


def _missed(
    rule: Rule, used: Rule, checkpoints: Sequence[Checkpoint], history: History | None
) -> str:
    """Why an evaluation rule scored nothing though evaluations were logged."""
    when = _schedule(rule, checkpoints, history)
    why = (
        f"{when}: none at a checkpoint's step"
        if when
        else (f"no checkpoint has {rule.name} logged at its own step")
    )
    return (
        f"Ranked by {used.name}, not {rule.name}: {why} (an evaluation scores only the "
        "checkpoint saved at its step; values from earlier evaluations are shown with their "
        "@step)."
    )


def _unscored_note(
    rule: Rule,
    checkpoints: Sequence[Checkpoint],
    scores: Sequence[float | None],
    history: History | None = None,
) -> str | None:
    """Why the checkpoints without a score have none, as one sentence. Those the KL guard left
    out are not counted here: their own note says why."""
    unscored = [
        c for c, s in zip(checkpoints, scores, strict=True) if s is None and rule.of(c) is None
    ]
    n = len(unscored)
    if n == 0:
        return None
    one = n == 1
    have = f"{n} of {len(checkpoints)} checkpoints {'has' if one else 'have'}"
    their, they = ("its", "it has") if one else ("their", "they have")
    earlier = ""
    if rule.evaluates and any(rule.inherited(c) for c in unscored):
        when = _schedule(rule, checkpoints, history)
        earlier = f" ({when})" if when else ""
    if rule.kl_key is None:
        # "finite" only where a value was logged: NaN or an infinity
        finite = (
            " finite" if any(rule.values(c).get(rule.name) is not None for c in unscored) else ""
        )
        return (
            f"{have} no{finite} {rule.name} logged {_when(rule, their)}{earlier}, "
            f"so {they} no score."
        )
    kl, margin = rule.kl_key, _margin_key(rule.kl_key)
    flat = sum(
        1 for c in unscored if (v := rule.values(c).get(kl)) is not None and -math.inf < v <= 0
    )
    ratio = f"{kl} at or below 0 (TRL clamps it at 0), where {margin} ÷ {kl} has no value"
    together = " together" if rule.line_of is not None else ""
    missing = f"no finite {margin} and {kl} logged{together}"
    if flat == n:
        return f"{have} {ratio}, so {they} no score."
    if flat == 0:
        return f"{have} {missing} {_when(rule, their)}{earlier}, so {they} no score."
    verb = {1: "has"}
    rest = n - flat
    return (
        f"{have} no score: {flat} {verb.get(flat, 'have')} {ratio}; "
        f"{rest} {verb.get(rest, 'have')} {missing} "
        f"{_when(rule, 'its' if rest == 1 else 'their')}{earlier}."
    )


def _no_best(rules: Sequence[Rule], count: int) -> str:
    """Why no checkpoint is marked best, as a sentence."""
    needs = [_needs(r) for r in rules]
    needed = needs[0] if len(needs) == 1 else f"{', '.join(needs[:-1])} or {needs[-1]}"
    names = " or ".join(r.name for r in rules)
    wins = "highest" if rules[0].order == "max" else "lowest"
    who = (
        "Its one checkpoint does not have" if count == 1 else f"None of its {count} checkpoints has"
    )
    return f"{who} {needed}, so none can be ranked by {names} ({wins} wins)."


# The first rule tier: a prompt set's pass rate. Results come from the evaluations a sweep ran
# (the site's database), handed in by checkpoint name; nothing here reads them.
TRAINING = "training"  # the rank value that asks for the training-metric rule by name


@dataclass(frozen=True)
class PassRate:
    """A checkpoint's newest result on one prompt set. `stamp` orders results in time: a later
    result's compares greater (the Evaluator's run_YYYYmmdd_HHMMSS names do)."""

    prompt_set: str
    passed: int
    total: int
    stamp: str = ""

    @property
    def rate(self) -> float:
        return self.passed / self.total

    @property
    def interval(self) -> str:
        low, high = wilson(self.passed, self.total)
        return f"{round(100 * low)}–{round(100 * high)} %"


Results = Mapping[str, Sequence[PassRate]]  # checkpoint name → its results


def eval_rule(prompt_set: str) -> str:
    return PASS_RATE_PREFIX + prompt_set


def prompt_set_of(rule: str) -> str | None:
    """The prompt set an `eval:<prompt set>` rule ranks by; None for any other rule."""
    return rule.removeprefix(PASS_RATE_PREFIX) if rule.startswith(PASS_RATE_PREFIX) else None


def _on(
    checkpoints: Sequence[Checkpoint], results: Results, prompt_set: str
) -> list[PassRate | None]:
    """Each checkpoint's result on the prompt set, None where it has none (or no cases)."""
    return [
        next((r for r in results.get(c.name, ()) if r.prompt_set == prompt_set and r.total), None)
        for c in checkpoints
    ]


def _counts(checkpoints: Sequence[Checkpoint], results: Results) -> dict[str, tuple[int, str]]:
    """Per prompt set: how many of these checkpoints have a result on it, and its newest stamp."""
    counts: dict[str, tuple[int, str]] = {}
    for c in checkpoints:
        for r in results.get(c.name, ()):
            if r.total > 0:
                n, newest = counts.get(r.prompt_set, (0, ""))
                counts[r.prompt_set] = (n + 1, max(newest, r.stamp))
    return counts


def rankable_sets(checkpoints: Sequence[Checkpoint], results: Results) -> tuple[str, ...]:
    """Prompt sets at least two of these checkpoints have results on, the default first: the
    one the most checkpoints were evaluated on, then the one evaluated last, then by name."""
    counts = _counts(checkpoints, results)
    eligible = sorted(s for s, (n, _) in counts.items() if n >= 2)
    eligible.sort(key=lambda s: counts[s][1], reverse=True)  # stable: names break ties
    eligible.sort(key=lambda s: counts[s][0], reverse=True)
    return tuple(eligible)


def by_evaluation(
    checkpoints: Sequence[Checkpoint],
    results: Results,
    training: Ranking,
    prompt_set: str | None = None,
) -> Ranking:
    """Rank by the highest pass rate on `prompt_set` (ties: the earlier step), else on the
    default of `rankable_sets`; `training` (the training-metric ranking) as it is when no
    prompt set has results for two checkpoints. A set that cannot rank is a RankError."""
    sets = rankable_sets(checkpoints, results)
    if prompt_set is None and not sets:
        return replace(training, training_best=training.best)
    if prompt_set is not None and prompt_set not in sets:
        accepted = ", ".join(eval_rule(s) for s in sets) or "none yet"
        raise RankError(
            "rank=eval:<prompt set> needs results on that prompt set for at least two of the "
            f"run's checkpoints; this run's: {accepted}. Got {eval_rule(prompt_set)!r}."
        )
    chosen = prompt_set or sets[0]
    found = _on(checkpoints, results, chosen)
    scores = tuple(r.rate if r is not None else None for r in found)
    best = pick_best(checkpoints, scores, "max")
    how = f"ranked by the pass rate on {chosen}, highest wins (ties: the earlier step)"
    if prompt_set is None:
        how += f", {_why_default(chosen, checkpoints, results)}"
    missing = sum(r is None for r in found)
    unscored = None
    if missing:
        one = missing == 1
        unscored = (
            f"{missing} of {len(checkpoints)} checkpoints {'has' if one else 'have'} no result "
            f"on {chosen}, so {'it has' if one else 'they have'} no score."
        )
    return Ranking(
        rule=eval_rule(chosen),
        metric=eval_rule(chosen),
        order="max",
        scores=scores,
        best=best,
        unscored_note=unscored,
        how=how,
        training_best=training.best,
        verdict=verdict(checkpoints, results, chosen, best, training),
    )


def _why_default(chosen: str, checkpoints: Sequence[Checkpoint], results: Results) -> str:
    """Why this prompt set ranks when several could, as a clause."""
    counts = _counts(checkpoints, results)
    n = counts[chosen][0]
    others = [s for s in rankable_sets(checkpoints, results) if s != chosen]
    if not others:
        return "the only prompt set at least two checkpoints have results on"
    if all(counts[s][0] < n for s in others):
        return f"the prompt set the most checkpoints have results on ({n})"
    return f"of the prompt sets {n} checkpoints have results on, the one evaluated last"


def with_evaluations(
    ranking: Ranking, checkpoints: Sequence[Checkpoint], results: Results
) -> Ranking:
    """A training-metric ranking someone chose while evaluations could rank: it is the
    training best, and its verdict sets it against the default prompt set's best."""
    sets = rankable_sets(checkpoints, results)
    if not sets:
        return replace(ranking, training_best=ranking.best)
    by_eval = by_evaluation(checkpoints, results, ranking, sets[0])
    return replace(ranking, training_best=ranking.best, verdict=by_eval.verdict)


def _training_label(training: Ranking) -> str:
    """What picked the training best, for the verdict: "lowest eval_loss"."""
    if training.rule == "trainer":
        return (
            f"the trainer's choice, by {training.metric}"
            if training.metric
            else "the trainer's choice"
        )
    return f"{'lowest' if training.order == 'min' else 'highest'} {training.metric}"


def verdict(
    checkpoints: Sequence[Checkpoint],
    results: Results,
    prompt_set: str,
    best: str | None,
    training: Ranking,
) -> str | None:
    """The best pass rate set against the training-metric best, as a sentence: whether the
    two rules agree and, where they do not, whether the 95 % Wilson intervals overlap."""
    if best is None:
        return None
    on = {
        c.name: r for c, r in zip(checkpoints, _on(checkpoints, results, prompt_set), strict=True)
    }
    ours = on[best]
    if ours is None:
        return None
    passes = f"{best} passes {ours.passed}/{ours.total} on {prompt_set}"
    other = training.best
    if other is None:
        return f"{passes}; no checkpoint is best by a training metric to set it against."
    label = _training_label(training)
    if other == best:
        return f"The two rules agree: {passes} and is also the {label}."
    theirs = on.get(other)
    if theirs is None:
        return (
            f"The two rules disagree: {passes}; {other} ({label}) has no result on it, "
            "so they cannot be compared: evaluate it too."
        )
    both = f"{passes}, {other} ({label}) {theirs.passed}/{theirs.total}"
    if ours.rate == theirs.rate:
        return f"{both}: the same pass rate, so not a win; the earlier step is named."
    low, _ = wilson(ours.passed, ours.total)
    _, high = wilson(theirs.passed, theirs.total)
    intervals = f"95 % intervals {ours.interval} and {theirs.interval}"
    if low <= high:
        return f"The two rules disagree: {both}; the {intervals} overlap: not a clear win."
    return f"The two rules disagree: {both}; the {intervals} do not overlap: a clear win."
