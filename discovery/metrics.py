"""The metric vocabulary: which way each metric is better, how tables order them, which
curves share a chart, and what a comparison opens on. Ranking, pages and compare use it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
# The metric columns a checkpoint table always shows where logged, after what the score is
# computed from: the loss people compare any run by.
KEY_COLUMNS = ("loss", "eval_loss")
# Beyond the key columns, what a checkpoint table shows before anyone picks, per method: the
# metrics that say how its training went, in this order. KTO: the margins and KL its score
# divides, and the chosen and rejected rewards the margin is the gap between (a margin that
# grows only because rejected falls is a different story from one where chosen rises). DPO and
# ORPO: the margin, how often chosen beats rejected, and ORPO's two losses. GRPO: the reward's
# spread, KL and completion length (collapse shows there first). SFT: token accuracy, gradient
# norm (spikes) and the learning rate. MLX: the learning rate and throughput.
TELLING_COLUMNS: dict[str, tuple[str, ...]] = {
    "kto": ("rewards/margins", "kl", "rewards/chosen", "rewards/rejected", "eval_rewards/margins"),
    "dpo": (
        "rewards/margins",
        "eval_rewards/accuracies",
        "rewards/accuracies",
        "rewards/chosen",
        "rewards/rejected",
    ),
    "orpo": ("rewards/accuracies", "log_odds_ratio", "odds_ratio_loss", "nll_loss", "sft_loss"),
    "grpo": ("reward_std", "kl", "completion_length", "completions/mean_length"),
    "sft": ("mean_token_accuracy", "grad_norm", "learning_rate"),
    "mlx": ("val_loss", "lr", "learning_rate", "tokens_per_sec"),
}
# Metric columns a table shows by default, key ones included: what fits 1280 px beside the
# checkpoint, step, size and score.
DEFAULT_COLUMN_COUNT = 6
# Curves drawn together: (title, metrics).
CHART_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Loss", ("loss", "eval_loss", "val_loss")),
    ("Reward margin", ("rewards/margins", "eval_rewards/margins")),
    ("KL", ("kl",)),
    ("Reward", ("reward",)),
)
# The metric a comparison opens on: the first one every run logged, in this order.
COMPARE_DEFAULTS = ("loss", "eval_loss", "val_loss", "rewards/margins", "reward", "kl")


# The score of the rank tier over a prompt set's pass rate (discovery/ranking.py), as its rule
# and metric are named: `eval:<prompt set>`. The prefix is no trainer's metric name.
PASS_RATE_PREFIX = "eval:"


def is_evaluation(metric: str) -> bool:
    """An evaluation of a checkpoint (the trainer's `eval_*`), which scores only the checkpoint
    saved at the step it was logged at; training metrics hold until their next line."""
    return metric.startswith("eval_")


def direction(metric: str) -> str:
    """ "max" when a larger value of `metric` is better, else "min"."""
    base = metric.removeprefix("eval_")
    if base in HIGHER_IS_BETTER or base == "rewards/margins" or base.startswith("rewards/acc"):
        return "max"
    return "min"


# Timing and bookkeeping a trainer logs beside its metrics: kept in the JSON and on a
# checkpoint's page, but no table column, chart or ranking default.
BOOKKEEPING = frozenset(
    {
        "interval_time",
        "epoch",
        "total_flos",
        "step_time",
        "steps",
        # LLaMA-Factory's trainer_log.jsonl: its progress and clock beside the metrics
        "total_steps",
        "percentage",
        "elapsed_time",
        "remaining_time",
        "throughput",
        "total_tokens",
    }
)
BOOKKEEPING_SUFFIXES = ("_runtime", "_per_second")
# One quantity under two names (MLX logs `lr`, Hugging Face `learning_rate`): one series.
ALIASES = {"lr": "learning_rate"}


def is_bookkeeping(metric: str) -> bool:
    return metric in BOOKKEEPING or metric.endswith(BOOKKEEPING_SUFFIXES)


def is_duration(metric: str) -> bool:
    """Seconds, shown as a duration."""
    return metric.endswith("_runtime") or metric in {
        "interval_time",
        "step_time",
        "elapsed_time",
        "remaining_time",
    }


def canonical(metric: str) -> str:
    return ALIASES.get(metric, metric)


# Rates a trainer logs per second, by the end of their names: the unit shown beside them.
RATE_UNITS = (
    ("_samples_per_second", "samples/s"),
    ("_steps_per_second", "steps/s"),
    ("tokens_per_second", "tokens/s"),
    ("tokens_per_sec", "tokens/s"),
    ("_per_second", "/s"),
)


def is_share(metric: str) -> bool:
    """A share of 1 (accuracies, fractions, clip ratios), shown as a percentage."""
    base = metric.removeprefix("eval_")
    return (
        base.endswith(("accuracy", "accuracies"))
        or base.startswith("frac_")
        or "clip_ratio" in base
        or "clipped_ratio" in base
    )


def unit(metric: str) -> str:
    """What a metric's numbers are, for formatting.py: "s" (seconds, shown as a duration), a
    rate ("samples/s", "tokens/s", …), "%" (a share of 1), "lr" (a learning rate, in
    scientific notation as configs write it: 2e-4), or "" (a plain number)."""
    if metric.startswith(PASS_RATE_PREFIX):
        return "%"
    name = canonical(metric)
    if is_duration(name):
        return "s"
    for suffix, rate in RATE_UNITS:
        if name.endswith(suffix):
            return rate
    if is_share(name):
        return "%"
    if name.removeprefix("eval_") == "learning_rate":
        return "lr"
    return ""


def column_order(names: Iterable[str]) -> list[str]:
    """Metric columns of a table: the ones people read first in front, the rest by name,
    bookkeeping left out."""
    shown = {k for k in names if not is_bookkeeping(k)}
    return [k for k in FIRST_COLUMNS if k in shown] + sorted(
        k for k in shown if k not in FIRST_COLUMNS
    )


def key_columns(available: Sequence[str], ranked: Iterable[str]) -> list[str]:
    """The metric columns a checkpoint table always shows, of those it has: what the score is
    computed from (`Ranking.inputs`), then loss and eval_loss."""
    return [m for m in dict.fromkeys([*ranked, *KEY_COLUMNS]) if m in available]


def default_columns(run_type: str, available: Sequence[str], ranked: Iterable[str]) -> list[str]:
    """The key columns, then the method's telling ones up to DEFAULT_COLUMN_COUNT in all."""
    key = key_columns(available, ranked)
    telling = TELLING_COLUMNS.get(run_type.lower(), TELLING_COLUMNS["sft"])
    extra = [m for m in telling if m in available and m not in key]
    return key + extra[: max(DEFAULT_COLUMN_COUNT - len(key), 0)]


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
