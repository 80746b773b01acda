"""What the dashboard reads from the Evaluator's output, and how it calls it: no database."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import PurePath

from tuner_site.jobs.evaluator import (
    Arguments,
    Budget,
    Progress,
    command,
    environment,
    missing_parts,
)
from tuner_site.jobs.evaluator import outcome as evaluator_outcome
from tuner_site.jobs.process import LINE_CHARS, OUTPUT_LINES, pid_alive, stop_group

from .evaluator_ws import wait_for

# What the real Evaluator printed for three cases, one failed (see tests/test_evaluation_jobs).
PRINTED = """
Running 3 evaluations...

  ✓ PASS  c1 (0.01s)
  ✗ FAIL  c2 (0.00s)
         - Expected tools not called: vaultManager_createFolder
  ✓ PASS  c3 (-)

Results saved to /ws/Evaluator/results/run_x.json
Evaluated 3 prompt(s): 2 passed, 1 failed.
"""


def fed(text: str) -> Progress:
    progress = Progress()
    progress.read(io.BytesIO(text.encode()))
    return progress


def test_progress_counts_cases_from_the_running_line_and_the_pass_fail_lines():
    progress = fed(PRINTED)
    assert (progress.total, progress.done, progress.passed) == (3, 3, 2)
    snapshot = progress.snapshot()
    assert snapshot["output"].splitlines()[3] == "  ✓ PASS  c1 (0.01s)"


def test_progress_reads_rich_colours_and_a_line_at_a_time():
    progress = Progress()
    assert progress.total is None
    progress.feed("\x1b[1mRunning 2 evaluations...\x1b[0m")
    progress.feed("  \x1b[1;32m✓ PASS\x1b[0m  a \x1b[2m(1.00s)\x1b[0m")
    assert (progress.total, progress.done, progress.passed) == (2, 1, 1)
    progress.feed("  \x1b[1;31m✗ FAIL\x1b[0m  b (-)")
    assert (progress.done, progress.passed) == (2, 1)
    assert "\x1b" not in progress.snapshot()["output"]


def test_a_detail_line_that_mentions_pass_is_not_a_case():
    progress = fed("Running 1 evaluations...\n         - PASS the salt\n  ✓ PASS  a (1s)\n")
    assert (progress.done, progress.passed) == (1, 1)


def test_the_output_kept_is_bounded_in_lines_and_width():
    progress = Progress()
    for i in range(OUTPUT_LINES + 50):
        progress.feed(f"line {i} " + "x" * 2000)
    lines = progress.snapshot()["output"].splitlines()
    assert len(lines) == OUTPUT_LINES
    assert lines[0].startswith("line 50 ") and max(map(len, lines)) == LINE_CHARS


def test_bytes_that_are_not_utf8_do_not_stop_the_reader():
    progress = Progress()
    progress.read(
        io.BytesIO(b"Running 1 evaluations...\n\xff\xfe broken\n  \xe2\x9c\x93 PASS  a (1s)\n")
    )
    assert (progress.total, progress.done, progress.passed) == (1, 1, 1)


PLAN = Budget(base_seconds=600, seconds_per_case=180, memory_mb=4096, result_mb=256)


def outcome(exit_code: int, progress: Progress, has_result: bool) -> tuple[str, str]:
    return evaluator_outcome(exit_code, progress, has_result, PLAN)


def test_outcomes_follow_the_evaluators_exit_codes():
    assert outcome(0, fed(PRINTED), has_result=True) == ("succeeded", "")
    assert outcome(2, fed(PRINTED), has_result=True) == ("succeeded", "")  # some cases failed
    usage = "cli.py: error: argument --limit: invalid int value: 'x'"
    assert outcome(2, fed(f"usage: cli.py\n{usage}\n"), has_result=False) == (
        "failed",
        f"The Evaluator exited with code 2: {usage}",
    )
    errors = fed(
        "Running 2 evaluations...\n  ✗ FAIL  a (-)\n         Error: connection refused\n"
        "  ✗ FAIL  b (-)\n         Error: connection refused\n"
    )
    status, error = outcome(3, errors, has_result=True)
    assert status == "failed"
    assert error == (
        "2 of 2 cases got no answer from the server (is it up, with the model on it?): "
        "Error: connection refused"
    )
    assert outcome(-9, fed(""), has_result=False) == (
        "failed",
        "The Evaluator was killed by signal 9.",
    )
    status, error = outcome(1, fed("No prompts matched the provided filters.\n"), False)
    assert error == "The Evaluator exited with code 1: No prompts matched the provided filters."


def test_the_command_passes_the_configured_server_and_the_forms_arguments():
    args = Arguments(
        kind="lmstudio",
        url="http://[::1]:1234",
        model="qwen2.5-7b-instruct",
        prompt_file=PurePath("Evaluator/prompts/p.json"),
        output=PurePath("Evaluator/results/run_1.json"),
        markdown=PurePath("Evaluator/results/run_1.md"),
        temperature=0.0,
        tags=("create", "folder"),
        limit=3,
        seed=7,
    )
    cmd = command("/usr/bin/python3", args)
    assert cmd[:4] == ["/usr/bin/python3", "-u", "-m", "Evaluator.cli"]
    # --name=value: no value can be taken for an option, whatever it starts with.
    flags = dict(arg.split("=", 1) for arg in cmd[4:])
    assert flags == {
        "--backend": "lmstudio",
        "--model": "qwen2.5-7b-instruct",
        "--prompt-set": "Evaluator/prompts/p.json",  # relative: the workspace is its folder
        "--host": "[::1]",  # the Evaluator writes http://{host}:{port} itself
        "--port": "1234",
        "--temperature": "0.0",
        "--tags": "create,folder",
        "--limit": "3",
        "--seed": "7",
        "--output": "Evaluator/results/run_1.json",
        "--markdown": "Evaluator/results/run_1.md",
    }
    bare = Arguments("ollama", "http://127.0.0.1", "m", PurePath("p"), PurePath("o"), PurePath("m"))
    assert not any(a.startswith(("--tags", "--seed")) for a in command("py", bare))
    assert "--port=80" in command("py", bare)  # http's own port, as the Evaluator needs it


def test_the_evaluator_never_sees_the_servers_from_the_environment():
    env = environment(
        {"PATH": "/bin", "OLLAMA_HOST": "http://127.0.0.1:11434", "OLLAMA_PORT": "x"}
        | {"LMSTUDIO_HOST": "192.168.1.5", "LMSTUDIO_PORT": "1234", "HOME": "home-of-the-user"}
    )
    assert not {k for k in env if k.startswith(("OLLAMA", "LMSTUDIO"))}
    secrets = environment(
        {"SECRET_KEY": "s", "DATABASE_URL": "postgres://u:pw@127.0.0.1/t", "TUNER_RQ_URL": "x"}
        | {"DJANGO_SETTINGS_MODULE": "tuner_site.settings", "LANG": "C.UTF-8"}
    )
    assert set(secrets) - {"PYTHONUNBUFFERED", "PYTHONIOENCODING", "NO_COLOR", "COLUMNS"} == {
        "LANG"
    }  # the dashboard's settings and secrets stay with the dashboard
    assert env["PATH"] == "/bin" and env["HOME"] == "home-of-the-user"
    assert env["PYTHONUNBUFFERED"] == "1" and env["PYTHONIOENCODING"] == "utf-8"


def test_a_workspace_without_the_evaluator_or_its_tools_says_which(tmp_path):
    assert "has no Evaluator/cli.py" in missing_parts(tmp_path)
    (tmp_path / "Evaluator").mkdir()
    (tmp_path / "Evaluator" / "cli.py").write_text("")
    assert "no tools/validate_syngen.py" in missing_parts(tmp_path)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "validate_syngen.py").write_text("")
    assert missing_parts(tmp_path) is None


def test_stopping_a_group_ends_children_that_ignore_sigterm():
    # A child that ignores SIGTERM, with a grandchild: both must go.
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    )
    grandchild = int(proc.stdout.readline())
    stop_group(proc, grace=0.3)
    assert proc.returncode == -9
    wait_for(lambda: not pid_alive(grandchild), "the grandchild to go", timeout=5)
