"""The metric vocabulary's table rules: which columns a checkpoint table always shows, and which
it shows before anyone picks."""

from __future__ import annotations

from discovery.metrics import DEFAULT_COLUMN_COUNT, column_order, default_columns, key_columns

# What the demo's KTO runs log at a checkpoint (bookkeeping aside).
KTO = column_order(
    [
        "loss",
        "grad_norm",
        "learning_rate",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
        "kl",
        "epoch",
        "interval_time",
        "train_runtime",
        "train_loss",
    ]
)


def test_key_columns_are_the_scores_inputs_then_loss_and_eval_loss_where_logged():
    assert key_columns(KTO, ("rewards/margins", "kl")) == ["rewards/margins", "kl", "loss"]
    assert key_columns(["loss", "eval_loss", "grad_norm"], ("eval_loss",)) == [
        "eval_loss",
        "loss",
    ]
    assert key_columns(["loss", "grad_norm"], ("grad_norm",)) == ["grad_norm", "loss"]
    assert key_columns([], ("loss",)) == []


def test_a_kto_table_opens_on_its_margins_kl_and_the_rewards_they_are_the_gap_between():
    shown = default_columns("kto", KTO, ("rewards/margins", "kl"))
    assert shown == ["rewards/margins", "kl", "loss", "rewards/chosen", "rewards/rejected"]
    assert "epoch" not in KTO and "train_runtime" not in KTO  # bookkeeping is no column


def test_each_method_opens_on_its_telling_metrics_and_never_more_than_fit():
    sft = default_columns(
        "sft",
        ["loss", "eval_loss", "grad_norm", "learning_rate", "mean_token_accuracy"],
        ("eval_loss",),
    )
    assert sft == ["eval_loss", "loss", "mean_token_accuracy", "grad_norm", "learning_rate"]
    grpo = default_columns(
        "grpo",
        ["loss", "reward", "reward_std", "kl", "completion_length", "grad_norm", "rewards/x/mean"],
        ("reward",),
    )
    assert grpo == ["reward", "loss", "reward_std", "kl", "completion_length"]
    many = [f"m{i}" for i in range(30)] + ["loss", "eval_loss", "rewards/margins"]
    dpo = default_columns("dpo", many + ["rewards/accuracies", "rewards/chosen"], ("x",))
    assert len(dpo) <= DEFAULT_COLUMN_COUNT
    # Key columns are never dropped for the cap.
    asked = ("a", "b", "c", "d", "e", "f", "g")
    assert default_columns("sft", [*asked, "loss"], asked)[:7] == list(asked)


def test_an_unknown_type_opens_like_sft():
    names = ["loss", "mean_token_accuracy", "zeta"]
    assert default_columns("mystery", names, ("loss",)) == ["loss", "mean_token_accuracy"]
