"""Reading JSONL metric logs: bad lines, NaN, merging per step, resumed runs, growing files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from discovery.logindex import indexer, read_history
from discovery.logs import log_files, parse_line
from sampledata import runs as wb

from .conftest import run_dir


def history_of(run: Path, root: Path):
    return read_history(run, root)


def test_it_skips_and_counts_blank_half_written_non_utf8_non_object_and_stepless_lines(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = run / "logs" / "training_20251101_100100.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(
        b'{"step": 5, "loss": 1.0}\n'
        b"\n"
        b'{"step": 10, "loss": 0.9\n'  # half-written
        b'\xff\xfe{"step": 15}\n'  # not UTF-8
        b"[1, 2, 3]\n"  # not an object
        b'{"loss": 0.8}\n'  # no step
        b'{"step": "20", "loss": 0.8}\n'  # step not an integer
        b'{"step": 20.0, "loss": 0.8}\n'  # step not an integer either
        b'{"step": 25, "loss": 0.7}\n'
    )
    h = history_of(run, workspace)
    assert h.steps == (5, 25)
    assert h.skipped == 6
    assert h.merged[25]["loss"] == 0.7


def test_it_keeps_nan_and_infinity_as_floats(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(
        run,
        ['{"step": 5, "loss": NaN, "grad_norm": Infinity}', '{"step": 10, "loss": -Infinity}'],
        "20251101_100100",
    )
    h = history_of(run, workspace)
    assert math.isnan(h.merged[5]["loss"])
    assert h.merged[5]["grad_norm"] == math.inf
    assert h.merged[10]["loss"] == -math.inf
    assert h.skipped == 0


def test_it_merges_training_eval_and_summary_lines_at_one_step(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(
        run,
        [
            {"step": 100, "loss": 0.5, "learning_rate": 1e-5},
            {"step": 100, "eval_loss": 0.6},
            {"step": 100, "train_runtime": 1234.0, "train_loss": 0.7, "epoch": 2.0},
        ],
        "20251101_100100",
    )
    entry = history_of(run, workspace).merged[100]
    assert entry == {
        "loss": 0.5,
        "learning_rate": 1e-5,
        "eval_loss": 0.6,
        "train_runtime": 1234.0,
        "train_loss": 0.7,
        "epoch": 2.0,
    }


def test_it_reads_every_log_oldest_first_and_skips_the_latest_link(workspace):
    run = run_dir(workspace, "kto", "20251101_100000")
    old = wb.write_log(
        run, [{"step": 5, "loss": 1.0}, {"step": 10, "loss": 0.9}], "20251101_100100"
    )
    # The resumed run's log repeats step 10 with its own values; it must win.
    new = wb.write_log(
        run, [{"step": 10, "loss": 0.5}, {"step": 15, "loss": 0.4}], "20251102_090000"
    )
    wb.link_latest(run, old)  # points at the older file: reading it again would double count
    assert log_files(run, workspace) == [old, new]
    h = history_of(run, workspace)
    assert h.steps == (5, 10, 15)
    assert h.merged[10]["loss"] == 0.5


def test_it_orders_logs_by_the_stamp_in_their_names_not_by_mtime(workspace):
    run = run_dir(workspace, "kto", "20251101_100000")
    newer = wb.write_log(run, [{"step": 10, "loss": 0.2}], "20251105_000000")
    older = wb.write_log(run, [{"step": 10, "loss": 0.9}], "20251101_000000")
    os.utime(newer, (1, 1))  # mtime says otherwise
    assert log_files(run, workspace) == [older, newer]
    assert history_of(run, workspace).merged[10]["loss"] == 0.2


def test_it_ignores_a_log_that_links_outside_the_workspace(workspace, tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text(json.dumps({"step": 1, "loss": 42.0}) + "\n")
    run = run_dir(workspace, "sft", "20251101_100000")
    (run / "logs").mkdir()
    (run / "logs" / "training_20251101_000000.jsonl").symlink_to(outside)
    assert log_files(run, workspace) == []
    assert history_of(run, workspace).steps == ()


def test_it_reads_only_the_appended_bytes_of_a_grown_log(workspace, monkeypatch):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = wb.write_log(run, [{"step": s, "loss": 1.0 / s} for s in range(1, 101)], "20251101_1")
    history_of(run, workspace)
    parsed = []
    import discovery.logindex as logindex

    real = logindex.parse_line
    monkeypatch.setattr(logindex, "parse_line", lambda raw: parsed.append(raw) or real(raw))
    wb.write_log(run, [{"step": 101, "loss": 0.001}, {"step": 102, "loss": 0.0005}], "20251101_1")
    h = history_of(run, workspace)
    assert len(parsed) == 2
    assert h.steps[-1] == 102 and len(h.steps) == 102
    assert log.stat().st_size > 0


def test_it_waits_for_a_half_written_last_line_to_finish(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = wb.write_log(run, [{"step": 5, "loss": 1.0}], "20251101_100100")
    with log.open("a") as f:
        f.write('{"step": 10, "lo')
    h = history_of(run, workspace)
    assert h.steps == (5,)
    assert h.skipped == 1  # reported while it is broken
    with log.open("a") as f:
        f.write('ss": 0.5}\n')
    h = history_of(run, workspace)
    assert h.steps == (5, 10)
    assert h.skipped == 0


def test_it_rereads_a_log_that_was_truncated_or_replaced(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = wb.write_log(run, [{"step": s, "loss": 1.0} for s in (5, 10, 15)], "20251101_100100")
    assert history_of(run, workspace).steps == (5, 10, 15)
    log.write_text(json.dumps({"step": 5, "loss": 0.3}) + "\n")  # truncated in place
    assert history_of(run, workspace).steps == (5,)
    assert history_of(run, workspace).merged[5]["loss"] == 0.3
    replacement = log.with_suffix(".tmp")
    replacement.write_text(
        "".join(json.dumps({"step": s, "loss": 0.1}) + "\n" for s in (7, 8, 9, 10))
    )
    os.replace(replacement, log)  # a new inode at the same path
    assert history_of(run, workspace).steps == (7, 8, 9, 10)


def test_it_notices_a_log_rewritten_in_place_at_a_larger_size(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = wb.write_log(run, [{"step": 5, "loss": 1.0}], "20251101_100100")
    history_of(run, workspace)
    log.write_text(
        json.dumps({"step": 6, "loss": 2.0}) + "\n" + json.dumps({"step": 7, "loss": 3.0}) + "\n"
    )
    assert history_of(run, workspace).steps == (6, 7)


def test_it_survives_a_log_that_disappears(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    log = wb.write_log(run, [{"step": 5, "loss": 1.0}], "20251101_100100")
    assert indexer.index(log, workspace) is not None
    log.unlink()
    assert indexer.index(log, workspace) is None
    assert history_of(run, workspace).steps == ()


def test_parse_line_takes_numbers_and_leaves_strings_and_booleans_out():
    assert parse_line(b'{"step": 3, "loss": 1, "timestamp": "x", "flag": true}') == (
        3,
        {"loss": 1.0},
    )
    assert parse_line(b'{"step": true}') is None
    assert parse_line(b"[" * 100_000) is None
