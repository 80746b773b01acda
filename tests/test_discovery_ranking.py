"""The best checkpoint: each rule in turn, non-finite inputs, ties, and requested metrics."""

from __future__ import annotations

import math
from array import array
from pathlib import Path

import pytest

from discovery.checkpoints import Checkpoint
from discovery.logs import History, Point, Source
from discovery.ranking import RankRequest, rank
from discovery.runs import Workspace, detail, get_run
from sampledata import runs as wb

from .conftest import run_dir


def point(metrics: dict[str, float], step: int) -> Point:
    return Point(metrics, dict.fromkeys(metrics, step))


def ckpts(*metrics: dict[str, float], final: dict[str, float] | None = None) -> list[Checkpoint]:
    result = []
    if final is not None:
        last = 10 * len(metrics)
        result.append(Checkpoint("final_model", last, True, Path("r"), point(final, last)))
    for i, m in enumerate(metrics, start=1):
        result.append(
            Checkpoint(f"checkpoint-{10 * i}", 10 * i, False, Path("r"), point(m, 10 * i))
        )
    return result


def test_sft_takes_the_lowest_loss():
    r = rank("sft", ckpts({"loss": 0.5}, {"loss": 0.3}, {"loss": 0.4}))
    assert (r.rule, r.metric, r.order, r.best) == ("loss", "loss", "min", "checkpoint-20")


def test_sft_prefers_eval_loss_when_any_checkpoint_has_one():
    r = rank(
        "sft",
        ckpts({"loss": 0.1}, {"loss": 0.3, "eval_loss": 0.6}, {"loss": 0.2, "eval_loss": 0.7}),
    )
    assert (r.rule, r.best) == ("eval_loss", "checkpoint-20")
    assert r.scores == (None, 0.6, 0.7)


def test_unknown_types_rank_like_sft():
    assert rank("mystery", ckpts({"loss": 0.5}, {"loss": 0.3})).best == "checkpoint-20"


def test_kto_takes_the_highest_margin_over_kl_among_positive_kl():
    r = rank(
        "kto",
        ckpts(
            {"rewards/margins": 5.0, "kl": 0.0},  # kl clamped at 0: no score
            {"rewards/margins": 0.6, "kl": 0.2},  # 3.0
            {"rewards/margins": 4.0, "kl": 2.0},  # 2.0
            {"rewards/margins": 1.0},  # no kl: no score
        ),
    )
    assert (r.rule, r.order, r.best) == ("margin/kl", "max", "checkpoint-20")
    assert r.scores[0] is None and r.scores[3] is None
    assert r.scores[1] == pytest.approx(3.0)


@pytest.mark.parametrize("run_type", ["dpo", "orpo"])
def test_dpo_and_orpo_take_the_highest_reward_margin(run_type):
    r = rank(run_type, ckpts({"rewards/margins": 1.0}, {"rewards/margins": 2.0}, {"loss": 0.1}))
    assert (r.rule, r.best) == ("rewards/margins", "checkpoint-20")


def test_grpo_takes_the_highest_reward():
    r = rank("grpo", ckpts({"reward": 0.2}, {"reward": 0.9}, {"reward": 0.5}))
    assert (r.rule, r.best) == ("reward", "checkpoint-20")


def test_non_finite_inputs_get_no_score_and_cannot_win():
    r = rank("sft", ckpts({"loss": math.nan}, {"loss": -math.inf}, {"loss": 0.4}))
    assert r.scores[:2] == (None, None)
    assert r.best == "checkpoint-30"
    k = rank(
        "kto", ckpts({"rewards/margins": math.inf, "kl": 1.0}, {"rewards/margins": 1.0, "kl": 1.0})
    )
    assert k.best == "checkpoint-20"


def test_ties_go_to_the_earlier_step_and_to_a_numbered_folder_over_final_model():
    r = rank("sft", ckpts({"loss": 0.3}, {"loss": 0.3}, final={"loss": 0.3}))
    assert r.best == "checkpoint-10"
    r = rank("sft", ckpts({"loss": 0.5}, {"loss": 0.3}, final={"loss": 0.3}))
    assert r.best == "checkpoint-20"


def test_no_scorable_checkpoint_means_no_best_and_says_why():
    r = rank("kto", ckpts({"loss": 0.3, "kl": 0.0}, {"rewards/margins": math.nan}))
    assert r.best is None
    assert r.notes == (
        "None of its 2 checkpoints has eval_rewards/margins with eval_kl above 0 logged at its "
        "own step, rewards/margins with kl above 0 logged together at or before its step or a "
        "finite rewards/margins logged with its latest kl, so none can be ranked by "
        "eval_margin/kl or margin/kl or rewards/margins (highest wins).",
    )


def test_a_requested_metric_and_order_override_the_rule():
    c = ckpts({"loss": 0.5, "grad_norm": 2.0}, {"loss": 0.3, "grad_norm": 1.0})
    assert rank("sft", c, request=RankRequest("grad_norm", "max")).best == "checkpoint-10"
    r = rank("sft", c, request=RankRequest("grad_norm"))
    assert (r.rule, r.order, r.best) == ("requested", "min", "checkpoint-20")
    assert (
        rank(
            "kto",
            ckpts({"rewards/margins": 1.0}, {"rewards/margins": 2.0}),
            request=RankRequest("rewards/margins"),
        ).order
        == "max"
    )


def trainer_run(workspace: Path, best: str | None) -> Path:
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(run, [{"step": s, "loss": 1.0 / s} for s in range(10, 101, 10)], "20251101_100100")
    for step in (30, 60):
        wb.add_checkpoint(run, step)
    wb.add_checkpoint(run, 90, best_model_checkpoint=best)
    return run


def test_the_trainers_own_best_model_checkpoint_wins_when_that_folder_exists(workspace):
    # A training-time path from another machine, as trainer_state.json keeps it.
    run = trainer_run(
        workspace, "C:\\runs\\sft_output\\20251101_100000\\checkpoints\\checkpoint-30"
    )
    d = detail(get_run(Workspace.at(workspace), "rtx3090_sft", run.name))
    assert (d.ranking.rule, d.ranking.best) == ("trainer", "checkpoint-30")


def test_a_deleted_trainer_best_is_reported_and_the_next_rule_applies(workspace):
    run = trainer_run(workspace, "/old/box/checkpoints/checkpoint-20")
    d = detail(get_run(Workspace.at(workspace), "rtx3090_sft", run.name))
    assert (d.ranking.rule, d.ranking.best) == ("loss", "checkpoint-90")
    assert "checkpoint-20" in d.ranking.notes[0] and "gone" in d.ranking.notes[0]


def test_the_newest_checkpoint_state_is_read_even_if_the_newest_folder_is_half_written(workspace):
    run = trainer_run(workspace, "checkpoints/checkpoint-60")
    wb.add_checkpoint(run, 120, state=False)  # being saved: no trainer_state.json yet
    d = detail(get_run(Workspace.at(workspace), "rtx3090_sft", run.name))
    assert (d.ranking.rule, d.ranking.best) == ("trainer", "checkpoint-60")


def test_unscored_checkpoints_are_counted_and_explained_in_one_sentence():
    r = rank("mlx", ckpts({"loss": 1.0}, {"loss": 0.5}, {"loss": 0.4}, {"val_loss": 0.9}))
    assert (r.rule, r.unscored) == ("val_loss", 3)
    assert r.unscored_note == (
        "3 of 4 checkpoints have no val_loss logged at or before their step, so they have no score."
    )
    # Under the trainer's own choice the scores beside it are counted the same way.
    t = rank(
        "mlx",
        ckpts({"loss": 1.0}, {"val_loss": 0.9}),
        trainer_best=("checkpoint-20", "best_checkpoint.npz"),
    )
    assert (t.rule, t.unscored) == ("trainer", 1)
    assert t.unscored_note == (
        "1 of 2 checkpoints has no val_loss logged at or before its step, so it has no score."
    )


def test_a_logged_but_not_finite_input_is_said_to_be_not_finite():
    r = rank("sft", ckpts({"loss": math.nan}, {"loss": 0.4}))
    assert r.unscored == 1 and "has no finite loss" in r.unscored_note


def test_kl_at_zero_and_missing_inputs_are_told_apart():
    flat = rank(
        "kto",
        ckpts(
            {"rewards/margins": 0.1, "kl": 0.0},
            {"rewards/margins": 0.2, "kl": 0.0},
            {"rewards/margins": 2.0, "kl": 1.0},
        ),
    )
    assert flat.unscored == 2
    assert flat.unscored_note == (
        "2 of 3 checkpoints have kl at or below 0 (TRL clamps it at 0), where "
        "rewards/margins ÷ kl has no value, so they have no score."
    )
    mixed = rank(
        "kto",
        ckpts(
            {"rewards/margins": 0.1, "kl": 0.0}, {"loss": 0.3}, {"rewards/margins": 2.0, "kl": 1.0}
        ),
    )
    assert mixed.unscored_note == (
        "2 of 3 checkpoints have no score: 1 has kl at or below 0 (TRL clamps it at 0), where "
        "rewards/margins ÷ kl has no value; 1 has no finite rewards/margins and kl logged "
        "together at or before its step."
    )


def test_checkpoints_the_kl_guard_left_out_are_counted_but_explained_by_its_own_note():
    r = rank(
        "kto",
        ckpts(
            {"rewards/margins": 0.5, "kl": 0.01},  # a tenth of the median KL: left out
            {"rewards/margins": 2.0, "kl": 1.0},
            {"rewards/margins": 3.0, "kl": 1.2},
        ),
    )
    assert r.unscored == 1 and r.unscored_note is None
    assert "below a tenth" in r.notes[0]


def test_all_scored_or_none_scored_needs_no_unscored_sentence():
    assert rank("sft", ckpts({"loss": 0.5}, {"loss": 0.3})).unscored_note is None
    none = rank("sft", ckpts({"grad_norm": 1.0}, {"grad_norm": 2.0}))
    assert none.unscored == 2 and none.unscored_note is None  # the no-best note says it
    assert none.notes and "None of its 2 checkpoints" in none.notes[0]


def test_a_score_names_the_metrics_it_is_computed_from():
    kto = ckpts({"rewards/margins": 2.0, "kl": 1.0})
    assert rank("kto", kto).inputs == ("rewards/margins", "kl")
    evals = ckpts({"eval_rewards/margins": 2.0, "eval_kl": 1.0})
    assert rank("kto", evals).inputs == ("eval_rewards/margins", "eval_kl")
    assert rank("sft", ckpts({"loss": 0.5})).inputs == ("loss",)
    asked = rank("sft", ckpts({"loss": 0.5, "grad_norm": 1.0}), request=RankRequest("grad_norm"))
    assert asked.inputs == ("grad_norm",)


def at(step: int, values: dict[str, float], steps: dict[str, int]) -> Checkpoint:
    """checkpoint-`step` whose values come from the steps named (the rest from its own)."""
    point = Point(values, {k: steps.get(k, step) for k in values})
    return Checkpoint(f"checkpoint-{step}", step, False, Path("r"), point)


def test_an_evaluation_scores_only_the_checkpoint_saved_at_its_step():
    # Evaluated every 375 steps, saved every 500 (the run): checkpoint-500 inherits
    # the best eval margin, logged at 375, and must not win by it.
    c = [
        at(
            500,
            {"eval_rewards/margins": 9.0, "rewards/margins": 1.0},
            {"eval_rewards/margins": 375},
        ),
        at(
            1000,
            {"eval_rewards/margins": 2.0, "rewards/margins": 1.5},
            {"eval_rewards/margins": 750},
        ),
        at(1500, {"eval_rewards/margins": 3.0, "rewards/margins": 2.0}, {}),
        at(1875, {"eval_rewards/margins": 4.0, "rewards/margins": 2.5}, {}),
    ]
    r = rank("dpo", c)
    assert (r.rule, r.best) == ("eval_rewards/margins", "checkpoint-1875")
    assert r.scores == (None, None, 3.0, 4.0)
    assert r.unscored_note == (
        "2 of 4 checkpoints have no eval_rewards/margins logged at their own step, "
        "so they have no score."
    )
    # A requested evaluation metric follows the same rule.
    asked = rank("dpo", c, request=RankRequest("eval_rewards/margins"))
    assert asked.scores == (None, None, 3.0, 4.0)


def test_with_no_evaluation_at_any_checkpoints_step_the_next_rule_applies_and_says_why():
    history = History(
        (
            Source(
                None,
                (
                    (("eval_loss",), array("q", [375, 750, 1125, 1500 - 1])),
                    (("loss",), array("q", range(25, 1501, 25))),
                ),
                {},
            ),
        )
    )
    c = [
        at(500, {"eval_loss": 0.5, "loss": 0.9}, {"eval_loss": 375}),
        at(1000, {"eval_loss": 0.6, "loss": 0.7}, {"eval_loss": 750}),
        at(1500, {"eval_loss": 0.4, "loss": 0.8}, {"eval_loss": 1499}),
    ]
    r = rank("sft", c, history=history)
    assert (r.rule, r.best) == ("loss", "checkpoint-1000")
    assert r.notes == (
        "Ranked by loss, not eval_loss: evaluations ran every 375 steps, checkpoints every "
        "500: none at a checkpoint's step (an evaluation scores only the checkpoint saved at "
        "its step; values from earlier evaluations are shown with their @step).",
    )


def test_a_kto_margin_counts_only_on_the_line_of_its_kl():
    # KTO logs rewards/margins only for batches holding both labels; kl on every line.
    c = [
        at(100, {"rewards/margins": 8.0, "kl": 1.0}, {"rewards/margins": 90}),
        at(200, {"rewards/margins": 2.0, "kl": 1.0}, {}),
    ]
    r = rank("kto", c)
    assert (r.rule, r.best, r.scores) == ("margin/kl", "checkpoint-200", (None, 2.0))
    assert r.unscored_note == (
        "1 of 2 checkpoints has no finite rewards/margins and kl logged together at or before "
        "its step, so it has no score."
    )
