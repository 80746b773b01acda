"""The first rule tier, `eval:<prompt set>`: the highest pass rate where at least two
checkpoints have results on one prompt set, which prompt set decides, and the sentence that
sets it against the training-metric best."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.checkpoints import Checkpoint
from discovery.logs import Point
from discovery.metrics import unit
from discovery.ranking import (
    PassRate,
    RankError,
    Ranking,
    by_evaluation,
    prompt_set_of,
    rank,
    rankable_sets,
    verdict,
    with_evaluations,
)


def ckpts(*losses: float, final: float | None = None) -> list[Checkpoint]:
    """checkpoint-100, -200, … with these eval_loss values; a final_model after them."""
    found = [
        Checkpoint(f"checkpoint-{100 * i}", 100 * i, False, Path("r"), _at(loss, 100 * i))
        for i, loss in enumerate(losses, start=1)
    ]
    if final is not None:
        step = 100 * len(losses)
        found.append(Checkpoint("final_model", step, True, Path("r"), _at(final, step)))
    return found


def _at(loss: float, step: int) -> Point:
    return Point({"eval_loss": loss}, {"eval_loss": step})


CKPTS = ckpts(0.9, 0.6, 0.5, 0.7)  # checkpoint-300: the lowest eval_loss
TRAINING = rank("sft", CKPTS)


def results(prompt_set: str, stamp: str = "run_1", **passes: tuple[int, int]):
    """`checkpoint_200=(4, 4)` → {"checkpoint-200": [PassRate(prompt_set, 4, 4, stamp)]}."""
    return {
        name.replace("checkpoint_", "checkpoint-"): [PassRate(prompt_set, p, t, stamp)]
        for name, (p, t) in passes.items()
    }


def merged(*parts: dict[str, list[PassRate]]) -> dict[str, list[PassRate]]:
    out: dict[str, list[PassRate]] = {}
    for part in parts:
        for name, found in part.items():
            out.setdefault(name, []).extend(found)
    return out


def test_the_highest_pass_rate_wins_over_the_lowest_eval_loss():
    assert TRAINING.best == "checkpoint-300"
    found = results("levels", checkpoint_200=(4, 4), checkpoint_300=(2, 4))
    r = by_evaluation(CKPTS, found, TRAINING)
    assert (r.rule, r.metric, r.order, r.best) == (
        "eval:levels",
        "eval:levels",
        "max",
        "checkpoint-200",
    )
    assert r.scores == (None, 1.0, 0.5, None)
    assert r.training_best == "checkpoint-300"
    assert r.group == ("eval:levels", "max")
    assert r.unscored_note == "2 of 4 checkpoints have no result on levels, so they have no score."
    assert prompt_set_of(r.rule) == "levels" and prompt_set_of("eval_loss") is None
    assert unit(r.metric) == "%"  # the score column and chart read pass rates as percentages


def test_ties_go_to_the_earlier_step_whatever_the_totals():
    found = results("levels", checkpoint_100=(4, 8), checkpoint_200=(2, 4), checkpoint_400=(1, 2))
    assert by_evaluation(CKPTS, found, TRAINING).best == "checkpoint-100"
    with_final = ckpts(0.9, 0.6, final=0.5)
    found = results("levels", checkpoint_200=(3, 4), final_model=(3, 4))
    assert by_evaluation(with_final, found, rank("sft", with_final)).best == "checkpoint-200"


def test_one_checkpoint_with_results_leaves_the_training_rule():
    found = results("levels", checkpoint_200=(4, 4), checkpoint_900=(0, 4))  # 900: gone
    r = by_evaluation(CKPTS, found, TRAINING)
    assert (r.rule, r.best, r.training_best, r.verdict) == (
        "eval_loss",
        "checkpoint-300",
        "checkpoint-300",
        None,
    )
    with pytest.raises(RankError, match="this run's: none yet. Got 'eval:levels'"):
        by_evaluation(CKPTS, found, TRAINING, "levels")
    # A result without cases counts for nothing.
    assert rankable_sets(CKPTS, results("x", checkpoint_100=(0, 0), checkpoint_200=(1, 1))) == ()


def test_the_default_prompt_set_has_the_most_checkpoints_then_the_newest_result():
    two = results("levels", "run_3", checkpoint_100=(1, 4), checkpoint_200=(2, 4))
    three = results(
        "tools", "run_1", checkpoint_100=(1, 4), checkpoint_200=(1, 4), checkpoint_300=(4, 4)
    )
    assert rankable_sets(CKPTS, merged(two, three)) == ("tools", "levels")
    r = by_evaluation(CKPTS, merged(two, three), TRAINING)
    assert r.rule == "eval:tools"
    assert r.how.endswith("the prompt set the most checkpoints have results on (3)")
    newer = results("agents", "run_9", checkpoint_300=(1, 4), checkpoint_400=(1, 4))
    assert rankable_sets(CKPTS, merged(two, newer)) == ("agents", "levels")
    r = by_evaluation(CKPTS, merged(two, newer), TRAINING)
    assert r.how.endswith(
        "of the prompt sets 2 checkpoints have results on, the one evaluated last"
    )
    # Asked for by name, the set ranks, and the sentence does not say why it was chosen.
    asked = by_evaluation(CKPTS, merged(two, newer), TRAINING, "levels")
    assert (asked.rule, asked.best) == ("eval:levels", "checkpoint-200")
    assert asked.how == "ranked by the pass rate on levels, highest wins (ties: the earlier step)"


def test_the_verdict_overlap_clear_win_agreement_and_missing_result():
    overlap = by_evaluation(
        CKPTS, results("l", checkpoint_200=(4, 4), checkpoint_300=(2, 4)), TRAINING
    )
    assert overlap.verdict == (
        "The two rules disagree: checkpoint-200 passes 4/4 on l, checkpoint-300 (lowest "
        "eval_loss) 2/4; the 95 % intervals 51–100 % and 15–85 % overlap: not a clear win."
    )
    clear = by_evaluation(
        CKPTS, results("l", checkpoint_200=(40, 40), checkpoint_300=(10, 40)), TRAINING
    )
    assert clear.verdict is not None and clear.verdict.endswith("do not overlap: a clear win.")
    agree = by_evaluation(
        CKPTS, results("l", checkpoint_100=(1, 4), checkpoint_300=(3, 4)), TRAINING
    )
    assert agree.verdict == (
        "The two rules agree: checkpoint-300 passes 3/4 on l and is also the lowest eval_loss."
    )
    unseen = by_evaluation(
        CKPTS, results("l", checkpoint_100=(1, 4), checkpoint_200=(3, 4)), TRAINING
    )
    assert unseen.verdict == (
        "The two rules disagree: checkpoint-200 passes 3/4 on l; checkpoint-300 (lowest "
        "eval_loss) has no result on it, so they cannot be compared: evaluate it too."
    )


def test_the_verdict_names_the_trainers_choice_and_a_missing_training_best():
    trainer = Ranking("trainer", "eval_f1", "max", (None,) * 4, "checkpoint-300")
    found = results("l", checkpoint_200=(4, 4), checkpoint_300=(2, 4))
    assert "checkpoint-300 (the trainer's choice, by eval_f1) 2/4" in (
        verdict(CKPTS, found, "l", "checkpoint-200", trainer) or ""
    )
    none = Ranking("eval_loss", "eval_loss", "min", (None,) * 4, None)
    assert verdict(CKPTS, found, "l", "checkpoint-200", none) == (
        "checkpoint-200 passes 4/4 on l; no checkpoint is best by a training metric to set it "
        "against."
    )
    same = results("l", checkpoint_200=(2, 4), checkpoint_300=(2, 4))
    assert "the same pass rate, so not a win" in (
        verdict(CKPTS, same, "l", "checkpoint-200", TRAINING) or ""
    )


def test_a_training_rule_chosen_by_name_keeps_the_verdict():
    found = results("l", checkpoint_200=(4, 4), checkpoint_300=(2, 4))
    r = with_evaluations(TRAINING, CKPTS, found)
    assert (r.rule, r.best, r.training_best) == ("eval_loss", "checkpoint-300", "checkpoint-300")
    assert r.verdict is not None and r.verdict.startswith("The two rules disagree: checkpoint-200")
    assert with_evaluations(TRAINING, CKPTS, {}).verdict is None
