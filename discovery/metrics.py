"""The metric vocabulary: which way each metric is better, how tables order them, which
curves share a chart, and what a comparison opens on. Ranking, pages and compare use it."""

from __future__ import annotations

from collections.abc import Iterable

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
        "accuracy",
    }
)
# Checkpoint-table columns people read first, in this order; the rest follow by name.
FIRST_COLUMNS = (
    "loss",
    "eval_loss",
    "val_loss",
    "rewards/margins",
    "kl",
    "reward",
    "mean_token_accuracy",
)
# Curves drawn together: (title, metrics).
CHART_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Loss", ("loss", "eval_loss", "val_loss")),
    ("Reward margin", ("rewards/margins", "eval_rewards/margins")),
    ("KL", ("kl",)),
    ("Reward", ("reward",)),
)
# The metric a comparison opens on: the first one every run logged, in this order.
COMPARE_DEFAULTS = ("loss", "eval_loss", "val_loss", "rewards/margins", "reward", "kl")


def direction(metric: str) -> str:
    """ "max" when a larger value of `metric` is better, else "min"."""
    base = metric.removeprefix("eval_")
    if base in HIGHER_IS_BETTER or base == "rewards/margins" or base.startswith("rewards/acc"):
        return "max"
    return "min"


# Timing and bookkeeping a trainer logs beside its metrics: kept in the JSON and on a
# checkpoint's page, but no table column, chart or ranking default.
BOOKKEEPING = frozenset({"interval_time", "epoch", "total_flos", "step_time", "steps"})
BOOKKEEPING_SUFFIXES = ("_runtime", "_per_second")
# One quantity under two names (MLX logs `lr`, Hugging Face `learning_rate`): one series.
ALIASES = {"lr": "learning_rate"}


def is_bookkeeping(metric: str) -> bool:
    return metric in BOOKKEEPING or metric.endswith(BOOKKEEPING_SUFFIXES)


def is_duration(metric: str) -> bool:
    """Seconds, shown as a duration."""
    return metric.endswith("_runtime") or metric in {"interval_time", "step_time"}


def canonical(metric: str) -> str:
    return ALIASES.get(metric, metric)


def column_order(names: Iterable[str]) -> list[str]:
    """Metric columns of a table: the ones people read first in front, the rest by name,
    bookkeeping left out."""
    shown = {k for k in names if not is_bookkeeping(k)}
    return [k for k in FIRST_COLUMNS if k in shown] + sorted(
        k for k in shown if k not in FIRST_COLUMNS
    )


def type_from_metrics(logged: Iterable[str]) -> str:
    """The training method a run's logged metric names point to, where nothing else says."""
    names = set(logged)
    if "kl" in names and "rewards/margins" in names:
        return "kto"
    # TRL's ORPOTrainer logs log_odds_ratio and nll_loss; LLaMA-Factory's ORPO odds_ratio_loss.
    if names & {"log_odds_ratio", "nll_loss", "odds_ratio_loss"}:
        return "orpo"
    if "rewards/margins" in names or "rewards/accuracies" in names:
        return "dpo"
    if "reward" in names:
        return "grpo"
    return "sft"
