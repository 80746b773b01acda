"""The workspace's own Evaluator (`python -m Evaluator.cli`): the command a job runs, its
environment and limits, what its output says, and which of its arguments it would misread.

Plain functions and one reader; `evaluation` calls them with what it took from the database.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import urlsplit

from django.conf import settings

from discovery import evaluations
from discovery.prompt_sets import Case
from tuner_site.formatting import duration

from .models import Job
from .process import Limits, OutputTail

Status = Job.Status

# The servers the Evaluator's CLI can talk to (its --backend choices).
EVALUATOR_KINDS = ("ollama", "lmstudio")
DEFAULT_TEMPERATURE = 0.2  # the Evaluator's own default
# The Evaluator reads these itself, and OLLAMA_HOST as a bare host unlike Ollama; the server
# it talks to comes from --host/--port instead, so none of them may leak in.
SCRUBBED_ENV = ("OLLAMA_HOST", "OLLAMA_PORT", "LMSTUDIO_HOST", "LMSTUDIO_PORT")
# The dashboard's own settings and secrets are not the workspace's code's business.
DASHBOARD_ENV = ("SECRET_KEY", "DATABASE_URL")
DASHBOARD_ENV_PREFIXES = ("TUNER_", "DJANGO_")
# The Evaluator's cmdline has this: an orphan a dead worker left is stopped only if it does.
MARKER = b"Evaluator.cli"

RUNNING = re.compile(r"^\s*Running (\d+) evaluations")
CASE = re.compile(r"^\s*([✓✗])\s+(PASS|FAIL)\b")
REQUEST_ERROR = re.compile(r"^\s+Error: ")  # indented under a ✗ FAIL line


@dataclass(frozen=True)
class Arguments:
    """The Evaluator's arguments; files relative to the workspace, which is its folder."""

    kind: str
    url: str
    model: str
    prompt_file: PurePath
    output: PurePath
    markdown: PurePath
    temperature: float = DEFAULT_TEMPERATURE
    tags: tuple[str, ...] = ()
    limit: int | None = None
    seed: int | None = None


def cli_backend(kind: str) -> str:
    """The Evaluator's --backend for a configured server's kind: its LM Studio client is its
    OpenAI-compatible one (/v1/chat/completions), which a vLLM server answers too."""
    return "lmstudio" if kind == "openai" else kind


def missing_parts(root: Path) -> str | None:
    """Why this workspace cannot run its Evaluator, or None when it can."""
    if not (root / "Evaluator" / "cli.py").is_file():
        if root.resolve() == Path(settings.TUNER_DEMO_WORKSPACE).resolve():
            return (
                "The demo ships no Evaluator: to evaluate its server's models, copy the "
                f"training project's `Evaluator/` and `tools/` folders into `{root}` (a new "
                "`make run` keeps them; README.md, “Evaluate from the dashboard”)."
            )
        return (
            f"This workspace ({root}) has no Evaluator/cli.py. The dashboard runs the "
            "workspace's own Evaluator: check out the training project there, with its "
            "Evaluator/ and tools/ folders."
        )
    if not (root / "tools" / "validate_syngen.py").is_file():
        return (
            f"This workspace ({root}) has Evaluator/ but no tools/validate_syngen.py, which the "
            "Evaluator imports to score tool calls: check out the project's tools/ folder too."
        )
    return None


def option_problem(what: str, value: str) -> str | None:
    """A value the Evaluator's argument parser would take for an option."""
    if value.startswith("-"):
        return (
            f"{what} {value!r} starts with “-”, which the Evaluator would read as an option: "
            "it cannot be evaluated from the dashboard."
        )
    return None


def tags_problem(tags: Iterable[str]) -> str | None:
    return next((p for t in tags if (p := option_problem("The tag", t))), None)


def prompt_file(path: Path) -> PurePath:
    """A prompt set's file as the Evaluator gets it: relative to the workspace, its folder, so
    nothing in the workspace's own path can be misread."""
    return PurePath("Evaluator", "prompts", path.name)


def file_problem(name: str, relative: PurePath) -> str | None:
    """The Evaluator expands `~` and `$VAR` in file names: such a name would read another file."""
    text = str(relative)
    if "$" in text or text.startswith("~"):
        return (
            f"The prompt set file {relative} has “$” or a leading “~” in its name, which the "
            f"Evaluator expands (to an environment variable or a home folder), so it would "
            f"read another file: rename it without them to evaluate {name!r}."
        )
    return None


def server_problem(url: str) -> str | None:
    """The Evaluator calls http://{host}:{port} itself: a server it would reach elsewhere."""
    parts = urlsplit(url)
    why = None
    if parts.scheme != "http":
        why = f"the Evaluator speaks plain http only, not {parts.scheme}"
    elif parts.username or parts.password:
        why = "the Evaluator cannot send the user name and password in it"
    elif parts.path.strip("/") or parts.query:
        why = "the Evaluator calls the server's root, and would drop its path"
    if why is None:
        return None
    return f"{url} cannot be evaluated from the dashboard: {why}."


def host_port(url: str) -> tuple[str, int]:
    """--host and --port for a URL `server_problem` accepts; an IPv6 host keeps its brackets."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return host, parts.port or 80


def command(python: str, args: Arguments) -> list[str]:
    # --name=value: a value starting with "-" cannot be read as an option.
    host, port = host_port(args.url)
    cmd = [python, "-u", "-m", "Evaluator.cli", f"--backend={args.kind}", f"--model={args.model}"]
    cmd += [f"--prompt-set={args.prompt_file}", f"--host={host}", f"--port={port}"]
    cmd += [f"--temperature={args.temperature!r}"]
    if args.tags:
        cmd += [f"--tags={','.join(args.tags)}"]
    if args.limit is not None:
        cmd += [f"--limit={args.limit}"]
    if args.seed is not None:
        cmd += [f"--seed={args.seed}"]
    return cmd + [f"--output={args.output}", f"--markdown={args.markdown}"]


def environment(base: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in base.items()
        if k not in SCRUBBED_ENV
        and k not in DASHBOARD_ENV
        and not k.startswith(DASHBOARD_ENV_PREFIXES)
    }
    # Live lines through a pipe, ✓/✗ whatever the locale, and no colours or wrapping when
    # `rich` is installed (it wraps at 80 columns off a terminal).
    env |= {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    env["COLUMNS"] = "500"
    return env


def selected(cases: Iterable[Case], tags: Iterable[str], limit: int | None) -> int:
    """How many cases the Evaluator runs: those with every tag, the first `limit` of them."""
    wanted = set(tags)
    count = sum(wanted <= set(c.tags) for c in cases)
    return count if limit is None else min(count, limit)


@dataclass(frozen=True)
class Budget:
    """What one evaluation may use (settings TUNER_EVAL_*); the form shows it."""

    base_seconds: int
    seconds_per_case: int
    memory_mb: int
    result_mb: int

    def seconds(self, cases: int) -> int:
        return self.base_seconds + self.seconds_per_case * cases

    @property
    def limits(self) -> Limits:
        return Limits(memory_bytes=self.memory_mb << 20, file_bytes=self.result_mb << 20)


def budget() -> Budget:
    return Budget(
        base_seconds=settings.TUNER_EVAL_BASE_SECONDS,
        seconds_per_case=settings.TUNER_EVAL_SECONDS_PER_CASE,
        memory_mb=settings.TUNER_EVAL_MEMORY_MB,
        result_mb=settings.TUNER_EVAL_RESULT_MB,
    )


class Progress(OutputTail):
    """Cases done and passed, read from the Evaluator's output."""

    def __init__(self) -> None:
        super().__init__()
        self.total: int | None = None
        self.done = 0
        self.passed = 0
        self.request_errors = 0
        self.first_error: str | None = None

    def parse(self, line: str) -> None:
        if m := RUNNING.match(line):
            self.total = int(m.group(1))
        elif (m := CASE.match(line)) and (self.total is None or self.done < self.total):
            # Past the total it is no case: a server's or a model's text the Evaluator
            # printed (an error, a validator's message) holding a line that looks like one.
            self.done += 1
            self.passed += m.group(2) == "PASS"
        elif REQUEST_ERROR.match(line):  # a case whose request failed
            self.request_errors += 1
            self.first_error = self.first_error or line.strip()

    def fields(self) -> dict[str, object]:
        return {"total": self.total, "done": self.done, "passed": self.passed}


# What the Evaluator's exit codes say (cli_utils.py `determine_exit_code`).
def result_counts(path: Path, root: Path) -> dict[str, int]:
    """Cases and passes as the Evaluator's result file sums them up, which its output only
    reports as it goes; nothing when the summary does not hold together."""
    found = evaluations.read(path, path.stem, root)
    total, passed = found.total, found.passed
    if total is None or passed is None or not 0 <= passed <= total:
        return {}
    return {"total": total, "done": total, "passed": passed}


EXIT_CODES = {0: "every case passed", 2: "some cases failed", 3: "request errors"}


def outcome(exit_code: int, progress: Progress, has_result: bool, plan: Budget) -> tuple[str, str]:
    """The job's status and, when it failed, why in one line (exit codes from cli_utils.py)."""
    if exit_code in (0, 2) and has_result:  # 2: some cases failed, a finished evaluation
        return Status.SUCCEEDED, ""
    if exit_code == 3:
        return Status.FAILED, _line(
            f"{progress.request_errors} of {progress.total} cases got no answer from the server "
            f"(is it up, with the model on it?): {progress.first_error or 'no detail'}"
        )
    if exit_code == -signal.SIGXFSZ or progress.mentions("File too large"):
        return Status.FAILED, (
            f"The Evaluator's result passed the {plan.result_mb:,} MB cap on a file it writes "
            "(TUNER_EVAL_RESULT_MB); the file it left is cut short."
        )
    if progress.mentions("MemoryError"):
        return Status.FAILED, (
            f"The Evaluator passed its memory limit of {plan.memory_mb:,} MB "
            "(TUNER_EVAL_MEMORY_MB) and stopped."
        )
    if exit_code < 0:
        return Status.FAILED, f"The Evaluator was killed by signal {-exit_code}."
    last = progress.last_line() or "no output"
    if "No module named 'requests'" in last:
        last += ". The Evaluator's Python needs `requests`: pip install requests"
    return Status.FAILED, _line(f"The Evaluator exited with code {exit_code}: {last}")


def timed_out(plan: Budget, cases: int, progress: Progress) -> str:
    return (
        f"It passed its time limit of {duration(plan.seconds(cases))} "
        f"({duration(plan.base_seconds)}, and {duration(plan.seconds_per_case)} for each of its "
        f"{cases} cases) with {progress.done} of {cases} cases done, and was stopped."
    )


def _line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
