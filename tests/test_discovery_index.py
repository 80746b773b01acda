"""The log index: parses only the lines it needs, falls back when it must, grows, persists."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path

import pytest

import discovery.logindex as logindex
import discovery.logs as logs
from discovery.logindex import LogIndexer, indexer, read_history, read_summary
from discovery.runs import Workspace, detail, get_run
from sampledata import runs as wb

from .conftest import run_dir, started

# Rows of log indexes; kept run details share the table under their own prefix.
LOG_ROWS = "SELECT count(*) FROM files WHERE key NOT LIKE 'detail%'"


@pytest.fixture
def parsed(monkeypatch) -> list[bytes]:
    """Every line the index hands to the JSON parser."""
    calls: list[bytes] = []
    real = logindex.parse_line

    def counting(raw: bytes):
        calls.append(raw)
        return real(raw)

    monkeypatch.setattr(logindex, "parse_line", counting)
    monkeypatch.setattr(logs, "parse_line", counting)
    return calls


def logged(h) -> list[int]:
    """Every step a history's sources logged."""
    return sorted({s for src in h.sources for _, steps in src.shapes for s in steps})


def at(h, step: int) -> dict[str, float]:
    return h.at(step).values


def trainer_log(run: Path, steps: range, stamp: str = "20251101_100100") -> Path:
    return wb.write_log(run, [{"step": s, "loss": 1 / s, "lr": 1e-4} for s in steps], stamp)


@pytest.fixture
def first_answers():
    """The indexer as a server runs it: a first answer from windows, the full read after."""
    indexer.configure(None, background=True)
    yield indexer
    indexer.wait(30)
    indexer.configure(None)


def test_a_first_answer_parses_only_the_lines_at_wanted_steps(workspace, parsed, first_answers):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = trainer_log(run, range(1, 2001))
    summary = read_summary(run, workspace, [500, 1000, 1503])
    assert summary.last_step == 2000 and summary.approximate
    assert at(summary, 1503)["loss"] == 1 / 1503
    assert at(summary, 500)["loss"] == 1 / 500
    assert len(parsed) <= 6  # the lines at 500, 1000, 1503 and 2000, and the tail's check
    reads: list[int] = []
    real = os.pread
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logindex.os, "pread", lambda fd, n, off: reads.append(n) or real(fd, n, off))
        indexer.clear()
        read_summary(run, workspace, [500, 1000, 1503])
    assert sum(reads) < log.stat().st_size / 4  # kilobytes of a 50 KB log, not all of it


def test_the_summary_agrees_with_a_full_parse(workspace):
    for i, kind in enumerate(("sft", "kto")):
        wb.make_run(workspace, kind, started(f"2025110{i + 1}_100000"), eval_every=50, seed=i)
    for run in (workspace / "Trainers").glob("*/*/*"):
        steps = [int(p.name.split("-")[1]) for p in (run / "checkpoints").iterdir()]
        summary = read_summary(run, workspace, steps + [7, 333])
        full = read_history(run, workspace)
        assert tuple(logged(summary)) == full.steps
        for step in steps + [7, 333]:
            assert at(summary, step) == at(full, step)
            assert summary.at(step).steps == full.at(step).steps


def test_lines_of_one_step_are_merged_in_the_fast_path(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(
        run,
        [
            {"step": 5, "loss": 0.9},
            {"step": 10, "loss": 0.5},
            {"step": 10, "eval_loss": 0.6},
            {"step": 10, "train_runtime": 9.0, "loss": 0.4},
        ],
        "20251101_100100",
    )
    assert at(read_summary(run, workspace, [10]), 10) == {
        "loss": 0.4,
        "eval_loss": 0.6,
        "train_runtime": 9.0,
    }


@pytest.mark.parametrize(
    "odd_line",
    [
        "garbage",
        '{"loss": 1.0, "step": 7}',  # step not first: valid, but not trainer-shaped
        '{"step": 7}',
        "   ",
    ],
)
def test_a_file_with_other_lines_is_parsed_in_full_and_stays_correct(workspace, odd_line):
    run = run_dir(workspace, "sft", "20251101_100000")
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 11)]
    lines.insert(5, odd_line)
    wb.write_log(run, lines, "20251101_100100")
    summary = read_summary(run, workspace, [7])
    full = read_history(run, workspace)
    assert tuple(logged(summary)) == full.steps
    assert summary.skipped == full.skipped
    assert at(summary, 7) == full.merged[7]


def test_a_file_whose_steps_go_back_is_parsed_in_full_and_later_lines_win(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    lines = [{"step": s, "loss": 1.0} for s in (5, 10, 15)] + [{"step": 10, "loss": 0.25}]
    wb.write_log(run, lines, "20251101_100100")
    summary = read_summary(run, workspace, [10])
    assert at(summary, 10)["loss"] == 0.25
    assert logged(summary) == [5, 10, 15]


def test_windows_line_endings_take_the_fast_path(workspace, parsed, first_answers):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = run / "logs" / "training_20251101_100100.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"".join(b'{"step": %d, "loss": 0.5}\r\n' % s for s in range(1, 101)))
    summary = read_summary(run, workspace, [50])
    assert at(summary, 50) == {"loss": 0.5} and summary.skipped == 0
    assert len(parsed) <= 3


def test_nan_and_infinity_survive_the_fast_path(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(run, [{"step": 1, "loss": math.nan}, {"step": 2, "loss": math.inf}], "20251101_1")
    summary = read_summary(run, workspace, [1, 2])
    assert math.isnan(at(summary, 1)["loss"]) and at(summary, 2)["loss"] == math.inf


def test_a_grown_log_is_read_from_its_last_offset(workspace, parsed):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = trainer_log(run, range(1, 1001))
    read_summary(run, workspace, [500])
    parsed.clear()
    with log.open("a") as f:
        for s in range(1001, 1101):
            f.write(json.dumps({"step": s, "loss": 0.001}) + "\n")
    summary = read_summary(run, workspace, [500, 1050])
    assert summary.last_step == 1100 and at(summary, 1050)["loss"] == 0.001
    assert len(parsed) == 100  # the appended lines, once each


def test_an_appended_line_at_the_last_step_merges_with_the_earlier_ones(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = trainer_log(run, range(1, 101))
    read_summary(run, workspace, [50])
    with log.open("a") as f:
        f.write(json.dumps({"step": 100, "train_runtime": 3.0}) + "\n")
    assert at(read_summary(run, workspace, [100]), 100) == {
        "loss": 0.01,
        "lr": 1e-4,
        "train_runtime": 3.0,
    }


def test_a_half_written_last_line_is_counted_then_read_once_complete(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = trainer_log(run, range(1, 11))
    with log.open("a") as f:
        f.write('{"step": 11, "lo')
    summary = read_summary(run, workspace, [10])
    assert summary.last_step == 10 and summary.skipped == 1
    with log.open("a") as f:
        f.write('ss": 0.05}\n')
    summary = read_summary(run, workspace, [10])
    assert summary.last_step == 11 and summary.skipped == 0
    # Each metric's latest value: the completed line's loss, and lr from step 10.
    assert summary.at(11).values == {"loss": 0.05, "lr": 1e-4}
    assert summary.at(11).steps == {"loss": 11, "lr": 10}


def test_a_truncated_or_replaced_log_is_indexed_again(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = trainer_log(run, range(1, 101))
    assert read_summary(run, workspace).last_step == 100
    log.write_text(json.dumps({"step": 3, "loss": 0.3}) + "\n")
    assert read_summary(run, workspace).last_step == 3
    tmp = log.with_suffix(".new")
    tmp.write_text("".join(json.dumps({"step": s, "loss": 0.1}) + "\n" for s in (7, 8, 9)))
    os.replace(tmp, log)
    assert logged(read_summary(run, workspace)) == [7, 8, 9]


def test_a_resumed_runs_newer_log_wins_in_the_summary(workspace):
    run = run_dir(workspace, "kto", "20251101_100000")
    trainer_log(run, range(1, 51), "20251101_100100")
    wb.write_log(run, [{"step": s, "loss": 0.5} for s in range(40, 61)], "20251102_090000")
    summary = read_summary(run, workspace, [45])
    assert at(summary, 45)["loss"] == 0.5 and summary.last_step == 60


def test_indexes_survive_a_restart_without_reading_the_log_again(workspace, tmp_path, monkeypatch):
    run = run_dir(workspace, "sft", "20251101_100000")
    trainer_log(run, range(1, 501))
    store = tmp_path / "index"
    indexer.configure(store)
    before = read_summary(run, workspace, [250])
    indexer.flush()
    assert list(store.glob("*.sqlite3"))

    indexer.configure(store)  # a new process: nothing in memory

    def no_rebuild(*args: object, **kwargs: object):
        raise AssertionError("the log was indexed again")

    monkeypatch.setattr(logindex, "scan", no_rebuild)
    after = read_summary(run, workspace, [250])
    assert at(after, 250) == at(before, 250) and after.last_step == before.last_step


def test_a_corrupt_index_file_is_ignored(workspace, tmp_path):
    run = run_dir(workspace, "sft", "20251101_100000")
    trainer_log(run, range(1, 11))
    store = tmp_path / "index"
    read = LogIndexer(store)
    log = next((run / "logs").glob("training_*.jsonl"))
    read.index(log, workspace)
    read.flush()
    (db,) = store.glob("*.sqlite3")
    db.write_bytes(b"\x00garbage that is no SQLite file" * 100)
    fresh = LogIndexer(store)
    assert fresh.index(log, workspace).last_step == 10
    fresh.flush()  # the foreign file was set aside and a store written in its place
    with sqlite3.connect(db) as conn:
        assert conn.execute(LOG_ROWS).fetchone()[0] == 1


def test_a_step_beyond_64_bits_is_a_skipped_line_not_a_crash(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(
        run,
        ['{"step": 5, "loss": 1.0}', '{"step": 99999999999999999999, "loss": 0.5}'],
        "20251101_100100",
    )
    (run / "checkpoints" / ("checkpoint-" + "9" * 25)).mkdir(parents=True)
    wb.add_checkpoint(run, 5)
    summary = read_summary(run, workspace, [5])
    assert logged(summary) == [5] and summary.skipped == 1
    assert read_history(run, workspace).skipped == 1
    from discovery.checkpoints import checkpoint_steps

    assert checkpoint_steps(run / "checkpoints", workspace) == [5]


def test_malformed_lines_are_logged_once_per_version_of_the_file(workspace, caplog):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = trainer_log(run, range(1, 11))
    with log.open("a") as f:
        f.write('not json\n{"step": 11, "loss": 0.1}\n')
    caplog.set_level("WARNING", logger="discovery")
    for _ in range(3):
        assert read_summary(run, workspace, [10]).skipped == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "discovery.logindex"]
    assert warnings == [f"{log}: skipped 1 malformed line(s)"]
    with log.open("a") as f:
        f.write('{"step": 12, "loss": 0.1}\n{"step": \n')
    assert read_summary(run, workspace, [10]).skipped == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "discovery.logindex"]
    assert warnings[1:] == [f"{log}: skipped 1 malformed appended line(s)"]


def _shapes(workspace: Path) -> dict[str, tuple[Path, list[int]]]:
    """Logs of every shape the index must read right, with the checkpoint steps to ask for."""
    made: dict[str, tuple[Path, list[int]]] = {}
    crlf = run_dir(workspace, "sft", "20251101_100000")
    log = crlf / "logs" / "training_20251101_100100.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"".join(b'{"step": %d, "loss": %d.5}\r\n' % (s, s) for s in range(1, 301)))
    made["crlf"] = (crlf, [50, 100, 150])
    nan = run_dir(workspace, "sft", "20251102_100000")
    lines = [{"step": s, "loss": math.nan if s % 50 == 0 else 1 / s} for s in range(1, 301)]
    lines[99]["grad_norm"] = math.inf
    wb.write_log(nan, lines, "20251102_100100")
    made["nan and infinity"] = (nan, [50, 100, 101, 299])
    torn = run_dir(workspace, "sft", "20251103_100000")
    log = trainer_log(torn, range(1, 301))
    with log.open("a") as f:
        f.write('{"step": 301, "lo')
    made["half-written last line"] = (torn, [100, 300])
    summary = run_dir(workspace, "sft", "20251104_100000")
    wb.write_log(
        summary,
        [{"step": s, "loss": 1 / s} for s in range(5, 301, 5)]
        + [{"step": 300, "eval_loss": 0.7}, {"step": 300, "train_runtime": 9.0, "train_loss": 0.4}],
        "20251104_100100",
    )
    made["summary at a checkpoint step"] = (summary, [150, 300])
    resumed = run_dir(workspace, "kto", "20251105_100000")
    trainer_log(resumed, range(1, 201), "20251105_100100")
    wb.write_log(resumed, [{"step": s, "loss": 0.5} for s in range(150, 401)], "20251106_090000")
    made["resumed logs"] = (resumed, [100, 160, 400])
    for i, kind in enumerate(("sft", "kto")):
        run = wb.make_run(workspace, kind, started(f"2025111{i}_100000"), eval_every=50, seed=i)
        made[f"{kind} with eval lines"] = (run, [50, 100, 150, 200, 250, 300])
    return made


def test_a_first_answer_equals_the_full_read_on_every_shape(workspace):
    made = _shapes(workspace)
    indexer.configure(None, background=True)
    try:
        first = {name: read_summary(run, workspace, steps) for name, (run, steps) in made.items()}
        assert all(h.approximate for h in first.values())
    finally:
        indexer.wait(30)
        indexer.configure(None)
    for name, (run, steps) in made.items():
        full = read_summary(run, workspace, steps)
        assert not full.approximate
        for step in [*steps, full.last_step]:
            a, b = first[name].at(step), full.at(step)
            assert a.values.keys() == b.values.keys(), name
            for k, v in b.values.items():
                assert (math.isnan(v) and math.isnan(a.values[k])) or a.values[k] == v, name
            assert a.steps == b.steps, name
        assert first[name].last_step == full.last_step, name


def test_a_bad_line_in_the_middle_is_found_by_the_background_pass_and_reported(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    lines = [json.dumps({"step": s, "loss": 1 / s}) for s in range(1, 2001)]
    lines[1000] = '{"step": 1001, "loss": '  # torn mid-file: a crash, then a restart
    wb.write_log(run, lines, "20251101_100100")
    wb.add_checkpoint(run, 500)
    ws = Workspace.at(workspace)
    indexer.configure(None, background=True)
    try:
        first = detail(get_run(ws, "rtx3090_sft", run.name))
        assert first.history.approximate and first.history.skipped == 0
        assert indexer.wait(30)
        assert indexer.checking() == 0
        again = detail(get_run(ws, "rtx3090_sft", run.name))
        assert not again.history.approximate and again.history.skipped == 1
        assert again.checkpoints[0].metrics["loss"] == 1 / 500
    finally:
        indexer.configure(None)


def test_a_first_answer_is_never_written_to_the_store_until_its_check_ends(
    workspace, tmp_path, monkeypatch
):
    run = run_dir(workspace, "sft", "20251101_100000")
    trainer_log(run, range(1, 501))
    store = tmp_path / "index"
    indexer.configure(store, background=True)
    checks: list[str] = []
    monkeypatch.setattr(
        indexer._verifier, "queue", lambda key, root, targets=(): checks.append(key)
    )
    read_summary(run, workspace, [100])
    read_summary(run, workspace, [100, 200])  # a new checkpoint: more windows of the same file
    indexer.flush()
    assert checks  # the check was asked for, and has not ended
    (found,) = store.glob("*.sqlite3")
    with sqlite3.connect(found) as conn:
        assert conn.execute(LOG_ROWS).fetchone()[0] == 0
    indexer.configure(None)


def test_a_first_answer_reads_compact_json_lines_from_windows(workspace, parsed, first_answers):
    # json.dumps(separators=(",", ":")) writes `{"step":1,"loss":...}`: a trainer's log too.
    run = run_dir(workspace, "sft", "20251101_100000")
    lines = [
        json.dumps({"step": s, "loss": 1 / s, "lr": 1e-4}, separators=(",", ":"))
        for s in range(1, 2001)
    ]
    wb.write_log(run, lines, "20251101_100100")
    summary = read_summary(run, workspace, [500, 1503])
    assert summary.last_step == 2000 and summary.approximate
    assert at(summary, 1503)["loss"] == 1 / 1503 and at(summary, 500)["loss"] == 1 / 500
    assert len(parsed) <= 6  # the lines at 500, 1503 and 2000, not 2,000 lines
    assert indexer.wait(30)
    full = read_summary(run, workspace, [500, 1503])
    assert not full.approximate and at(full, 1503)["loss"] == 1 / 1503
    assert logged(full) == list(range(1, 2001))


def test_an_unrecognised_log_answers_from_nothing_and_the_background_pass_reads_it(
    workspace, parsed, first_answers
):
    # Its step is not first on the line: no window can be searched, so the request reads
    # nothing more than the tail, and the full read happens behind it.
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(
        run, [json.dumps({"loss": 1 / s, "step": s}) for s in range(1, 2001)], "20251101_100100"
    )
    first = read_summary(run, workspace, [500])
    assert first.approximate and first.last_step is None and not parsed
    assert indexer.wait(30)
    full = read_summary(run, workspace, [500])
    assert not full.approximate and full.last_step == 2000 and at(full, 500)["loss"] == 1 / 500


def test_a_steps_own_lines_found_by_their_prefix_answer_as_the_windows_lines_do(
    tmp_path, monkeypatch
):
    """The probe's shortcut (a checkpoint at a logged step: its lines found by their prefix)
    gives what listing every line of the window gives, on logs with steps of several lines,
    both JSON spacings, foreign and torn lines."""
    import random

    rng = random.Random(3)
    shortcut = logindex._own_group
    answered = []

    def counted(*args):
        found = shortcut(*args)
        answered.append(found is not None)
        return found

    for n in range(12):
        lines, step, logged = [], 0, []
        for _ in range(1500):
            step += rng.choice([5, 5, 5, 10, 35])
            sep = (",", ":") if rng.random() < (0.5 if n % 3 == 0 else 0.0) else (", ", ": ")
            pad = "x" * rng.randint(0, 700)
            lines.append(
                json.dumps({"step": step, "loss": rng.random(), "pad": pad}, separators=sep)
            )
            for _ in range(rng.choice([0, 0, 0, 1, 2])):  # more lines at this step (evaluations)
                lines.append(json.dumps({"step": step, "eval_loss": rng.random()}, separators=sep))
            if rng.random() < 0.03:
                lines.append(rng.choice(["not json " + "y" * 300, f'{{"step": {step}, "loss": ']))
            logged.append(step)
        path = tmp_path / f"{n}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        targets = sorted({*rng.sample(logged, 40), *(rng.randint(0, step) for _ in range(10))})
        answers = []
        for own in (counted, lambda *args: None):
            monkeypatch.setattr(logindex, "_own_group", own)
            with path.open("rb") as f:
                answers.append(logindex.probe(f, path.stat().st_size, targets))
        assert answers[0] == answers[1], n
    assert sum(answered) > 100  # the shortcut answered most logged targets
