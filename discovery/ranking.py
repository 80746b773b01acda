"""Choosing the best checkpoint of a run, and saying which rule chose it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .checkpoints import Checkpoint, checkpoint_basename
from .metrics import direction

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


def margin_over_kl(m: Mapping[str, float]) -> float | None:
    """KTO's score (the seed's): reward margin per unit of KL, where KL is positive."""
    margin, kl = m.get("rewards/margins"), m.get("kl")
    if margin is None or kl is None or not (math.isfinite(margin) and math.isfinite(kl)):
        return None
    if kl <= 0:
        return None
    value = margin / kl
    return value if math.isfinite(value) else None


def type_rule(run_type: str, checkpoints: Sequence[Checkpoint]) -> tuple[str, str, Score]:
    """(rule, order, score) for a trainer type when no trainer choice or request applies."""
    t = run_type.lower()
    if t == "kto":
        return "margin/kl", "max", margin_over_kl
    if t in {"dpo", "orpo"}:
        return "rewards/margins", "max", _metric("rewards/margins")
    if t == "grpo":
        return "reward", "max", _metric("reward")
    if t == "mlx" and any(_metric("val_loss")(c.metrics) is not None for c in checkpoints):
        return "val_loss", "min", _metric("val_loss")  # the MLX trainer's own best rule
    if any(_metric("eval_loss")(c.metrics) is not None for c in checkpoints):
        return "eval_loss", "min", _metric("eval_loss")
    return "loss", "min", _metric("loss")


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


def rank(
    run_type: str,
    checkpoints: Sequence[Checkpoint],
    trainer_best: str | None = None,
    request: RankRequest | None = None,
) -> Ranking:
    """Rank as requested, else by the trainer's own choice, else by the type's rule."""
    notes: list[str] = []
    if request is not None:
        metric, order = request.metric, request.order or direction(request.metric)
        scores = tuple(_metric(metric)(c.metrics) for c in checkpoints)
        best = pick_best(checkpoints, scores, order)
        notes = [_no_best(metric, order, len(checkpoints))] if best is None and checkpoints else []
        return Ranking("requested", metric, order, scores, best, tuple(notes))

    rule, rule_order, score = type_rule(run_type, checkpoints)
    scores = tuple(score(c.metrics) for c in checkpoints)
    if trainer_best:
        name = checkpoint_basename(trainer_best)
        if any(c.name == name and not c.is_final for c in checkpoints):
            return Ranking(
                "trainer",
                rule,
                rule_order,
                scores,
                name,
                (f"trainer_state.json names {name} as best_model_checkpoint.",),
            )
        notes.append(
            f"trainer_state.json names {name} as best, but that folder is gone "
            "(save_total_limit rotates checkpoints away); ranked by "
            f"{rule} instead."
        )
    best = pick_best(checkpoints, scores, rule_order)
    if best is None and checkpoints:
        notes.append(_no_best(rule, rule_order, len(checkpoints)))
    return Ranking(rule, rule, rule_order, scores, best, tuple(notes))


def _no_best(rule: str, order: str, count: int) -> str:
    """Why no checkpoint is marked best, as a sentence."""
    needed = "rewards/margins with a kl above 0" if rule == "margin/kl" else f"a finite {rule}"
    wins = "highest" if order == "max" else "lowest"
    who = (
        "Its one checkpoint does not have" if count == 1 else f"None of its {count} checkpoints has"
    )
    return (
        f"{who} {needed} logged at or before its step, so none can be ranked by {rule} "
        f"({wins} wins)."
    )
