"""Choosing the best checkpoint of a run, and saying which rule chose it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .checkpoints import Checkpoint, checkpoint_basename

Score = Callable[[Mapping[str, float]], float | None]

# Metrics where a larger value is better; anything else ranks lowest-first by default.
HIGHER_IS_BETTER = frozenset(
    {
        "rewards/margins",
        "rewards/chosen",
        "rewards/accuracies",
        "reward",
        "mean_token_accuracy",
        "margin/kl",
        "log_odds_ratio",
        "log_odds_chosen",
        "epoch",
        "num_tokens",
        "learning_rate",
    }
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


def default_order(metric: str) -> str:
    return "max" if metric in HIGHER_IS_BETTER or metric.startswith("eval_rewards/") else "min"


def _metric(name: str) -> Score:
    def score(m: Mapping[str, float]) -> float | None:
        v = m.get(name)
        return v if v is not None and math.isfinite(v) else None

    return score


def _margin_over_kl(m: Mapping[str, float]) -> float | None:
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
        return "margin/kl", "max", _margin_over_kl
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
    best: tuple[float, int, int] | None = None
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
    metric: str | None = None,
    order: str | None = None,
) -> Ranking:
    """Rank by `metric` when asked, else by the trainer's own choice, else by the type's rule."""
    notes: list[str] = []
    if metric is not None:
        order = order or default_order(metric)
        scores = tuple(_metric(metric)(c.metrics) for c in checkpoints)
        return Ranking("requested", metric, order, scores, pick_best(checkpoints, scores, order))

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
        notes.append(f"No checkpoint has a finite {rule}, so none is marked best.")
    return Ranking(rule, rule, rule_order, scores, best, tuple(notes))
