"""Evaluation results in Evaluator/results/*.json: a model scored against a prompt set."""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .paths import file_cache, is_inside, is_safe_name, loads_lenient
from .values import as_dict, as_int, as_list, as_str, finite, fraction


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    passed: bool
    latency_s: float | None
    error: str | None
    issues: tuple[str, ...]
    tags: tuple[str, ...]
    question: str | None = None
    response: str | None = None  # the model's text answer, cut at MAX_TEXT
    tools_called: tuple[str, ...] = ()


# A case's prompt and answer as shown: a runaway generation (1,024 tokens of digits) is cut.
MAX_TEXT = 4000


@dataclass(frozen=True)
class Evaluation:
    name: str
    path: Path
    model: str | None
    prompt_set: str | None
    generated_at: datetime | None
    total: int | None
    passed: int | None
    request_errors: int | None
    pass_rate: float | None
    by_tag: dict[str, dict[str, float]] = field(default_factory=dict)
    failure_reasons: tuple[tuple[str, int], ...] = ()
    behavior_failures: tuple[tuple[str, int], ...] = ()
    cases: tuple[CaseResult, ...] = ()
    error: str | None = None
    backend: str | None = None  # "ollama" or "lmstudio"; older results do not say


def _prompt_set(prompt_file: Any) -> str | None:
    """`prompt_file` is a path from the evaluating machine, often Windows: keep its stem."""
    if not isinstance(prompt_file, str) or not prompt_file:
        return None
    base = re.split(r"[\\/]", prompt_file)[-1]
    return base.rsplit(".", 1)[0] or None


def _literal(value: Any) -> Any:
    """Lists and dicts the Evaluator wrote as Python reprs inside strings, read back safely."""
    if isinstance(value, str) and value[:1] in "[{" and len(value) < 20_000:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return value


def _truthy(value: Any) -> bool:
    # The Evaluator writes some records with Python reprs as strings ("True", "False").
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _messages(value: Any, *keys: str) -> list[str]:
    """`message` texts of a list of issue objects (a validator's or a behaviour check's)."""
    found = []
    for issue in as_list(value):
        issue = as_dict(issue)
        text = next((t for k in keys if (t := as_str(issue.get(k)))), None)
        if text and issue.get("passed") is not True:
            found.append(text)
    return found


def _case(record: Any) -> CaseResult | None:
    record = as_dict(record)
    case_id = as_str(record.get("case_id"))
    if case_id is None:
        return None
    validator = as_dict(_literal(record.get("validator")))
    behavior = as_dict(_literal(record.get("behavior")))
    # Why a case failed: its request error, its validator's issues (schema), its behaviour checks.
    issues = _messages(validator.get("issues"), "message")
    issues += [f"behavior: {m}" for m in _messages(behavior.get("issues"), "message", "check")]
    if record.get("schema_passed") is False and not validator.get("issues"):
        issues.append("schema: the response did not validate")
    if record.get("behavior_passed") is False and not behavior.get("issues"):
        issues.append("behavior: the expected behaviour was not shown")
    error = as_str(record.get("error"))
    tags = _literal(record.get("tags"))
    return CaseResult(
        case_id=case_id,
        passed=_truthy(record.get("passed")),
        latency_s=finite(record.get("latency_s")),
        error=error if error != "None" else None,
        issues=tuple(issues),
        tags=tuple(t for t in as_list(tags) if isinstance(t, str)),
        question=_cut(as_str(record.get("question"))),
        response=_cut(as_str(record.get("response_text"))),
        tools_called=_tools_called(_literal(record.get("raw_response"))),
    )


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"… ({len(text) - MAX_TEXT:,} more characters)"


def _tools_called(raw: Any) -> tuple[str, ...]:
    """Names of the tools the model called: Ollama's `message`, or an OpenAI-style choice."""
    raw = as_dict(raw)
    message = as_dict(raw.get("message")) or as_dict(
        as_dict(next(iter(as_list(raw.get("choices"))), None)).get("message")
    )
    names = []
    for call in as_list(message.get("tool_calls")):
        name = as_str(as_dict(as_dict(call).get("function")).get("name"))
        if name:
            names.append(name)
    return tuple(names)


def _broken(name: str, path: Path, error: str) -> Evaluation:
    return Evaluation(name, path, None, None, None, None, None, None, None, error=error)


def _counts(value: Any) -> tuple[tuple[str, int], ...]:
    """`[[reason, count], ...]` as the Evaluator writes its top-10 lists."""
    pairs = []
    for item in as_list(value):
        item = as_list(item)
        if len(item) == 2 and as_str(item[0]) and as_int(item[1]) is not None:
            pairs.append((item[0], item[1]))
    return tuple(pairs)


# A time within a day of the calendar's ends cannot be shown in every time zone.
_EARLIEST, _LATEST = datetime.min + timedelta(days=1), datetime.max - timedelta(days=1)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
        when.timestamp()  # a time no clock can place (year 1 in a zone) is no time
        utc = when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
    except (ValueError, OverflowError, OSError):
        return None
    return when if _EARLIEST <= utc <= _LATEST else None


def _stat(key: str, value: Any) -> float | None:
    return fraction(value) if key == "pass_rate" else finite(value)


def parse(data: bytes, name: str, path: Path) -> Evaluation:
    obj = loads_lenient(data)
    if obj is None:
        return _broken(name, path, "not JSON, or nested deeper than any result is")
    if not isinstance(obj, dict) or not isinstance(obj.get("summary"), dict):
        return _broken(name, path, "not an evaluation result (no summary object)")
    meta = as_dict(obj.get("metadata"))
    summary = as_dict(obj.get("summary"))
    by_tag = {
        tag: {k: f for k, v in stats.items() if (f := _stat(k, v)) is not None}
        for tag, stats in as_dict(summary.get("by_tag")).items()
        if isinstance(tag, str) and isinstance(stats, dict)
    }
    return Evaluation(
        name=name,
        path=path,
        model=as_str(meta.get("model")),
        prompt_set=_prompt_set(meta.get("prompt_file")),
        generated_at=_when(meta.get("generated_at")),
        total=as_int(summary.get("total")),
        passed=as_int(summary.get("passed")),
        request_errors=as_int(summary.get("request_errors")),
        pass_rate=fraction(summary.get("pass_rate")),
        by_tag=by_tag,
        failure_reasons=_counts(summary.get("top_failure_reasons")),
        behavior_failures=_counts(summary.get("top_behavior_failures")),
        cases=tuple(c for c in (_case(r) for r in as_list(obj.get("records"))) if c is not None),
        backend=as_str(meta.get("backend")),
    )


def _files(root: Path) -> dict[str, Path]:
    folder = root / "Evaluator" / "results"
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return {}
    found = {}
    for e in entries:
        name = e.name[: -len(".json")]
        # A name no URL can open is not listed.
        if e.name.endswith(".json") and not e.name.startswith(".") and is_safe_name(name):
            try:
                # An empty file is a name a running evaluation job reserved: not a result yet.
                if e.is_file() and e.stat().st_size and is_inside(e.path, root):
                    found[name] = Path(e.path)
            except OSError:
                continue
    return found


def read(path: Path, name: str, root: Path) -> Evaluation:
    result = file_cache.get(path, root, "evaluation", lambda data: parse(data, name, path))
    if result is None:
        return _broken(name, path, "could not be read")
    return result


def list_evaluations(root: Path) -> list[Evaluation]:
    """Newest first; files that are not results are listed with their error."""
    found = [read(p, name, root) for name, p in _files(root).items()]
    return sorted(found, key=lambda e: (-_timestamp(e.generated_at), e.name))


def _timestamp(when: datetime | None) -> float:
    # Aware times convert as they are; naive ones are the evaluating machine's local time.
    if when is None:
        return float("-inf")
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return float("-inf")


def get_evaluation(root: Path, name: str) -> Evaluation | None:
    path = _files(root).get(name)
    return read(path, name, root) if path else None


MAX_COMPARED = 4


@dataclass(frozen=True)
class CaseDiff:
    case_id: str
    tags: tuple[str, ...]
    outcomes: tuple[bool | None, ...]  # passed, per result; None where the result lacks the case
    change: str  # against the first result: "regressed", "fixed" or "mixed"


@dataclass(frozen=True)
class Cell:
    """One result's rate on a tag (or overall), and how far it is from the first result's."""

    passed: float | None
    total: float | None
    pass_rate: float | None
    delta: float | None = None  # this rate minus the first result's; None in the first column


@dataclass(frozen=True)
class EvaluationComparison:
    evaluations: tuple[Evaluation, ...]
    overall: tuple[Cell, ...]
    tags: tuple[tuple[str, tuple[Cell | None, ...]], ...]  # None: the result lacks the tag
    differing: tuple[CaseDiff, ...]  # cases that pass in one result and fail in another
    partial: int  # cases only some results have


CHANGE_ORDER = {"regressed": 0, "mixed": 1, "fixed": 2}


def _against_first(cells: list[Cell | None]) -> tuple[Cell | None, ...]:
    first = cells[0].pass_rate if cells and cells[0] else None
    return tuple(
        replace(c, delta=c.pass_rate - first)
        if i and c is not None and c.pass_rate is not None and first is not None
        else c
        for i, c in enumerate(cells)
    )


def _tag_cell(stats: dict[str, float] | None) -> Cell | None:
    if stats is None:
        return None
    return Cell(stats.get("passed"), stats.get("total"), stats.get("pass_rate"))


def compare(evaluations: list[Evaluation]) -> EvaluationComparison:
    """Results side by side: overall and per-tag rates, and the cases whose outcome differs,
    regressions (passed in the first result, failed in the last that has the case) first."""
    tags = sorted({t for e in evaluations for t in e.by_tag})
    outcomes: dict[str, list[bool | None]] = {}
    case_tags: dict[str, tuple[str, ...]] = {}
    for i, e in enumerate(evaluations):
        for c in e.cases:
            outcomes.setdefault(c.case_id, [None] * len(evaluations))[i] = c.passed
            case_tags.setdefault(c.case_id, c.tags)
    differing = []
    partial = 0
    for case_id, seen in outcomes.items():
        present = [o for o in seen if o is not None]
        if len(present) < len(seen):
            partial += 1
        if len(set(present)) < 2:
            continue
        change = "mixed"
        if present[0] and not present[-1]:
            change = "regressed"
        elif not present[0] and present[-1]:
            change = "fixed"
        differing.append(CaseDiff(case_id, case_tags[case_id], tuple(seen), change))
    differing.sort(key=lambda d: (CHANGE_ORDER[d.change], d.case_id))
    overall = _against_first(
        [
            Cell(
                float(e.passed) if e.passed is not None else None,
                float(e.total) if e.total is not None else None,
                e.pass_rate,
            )
            for e in evaluations
        ]
    )
    return EvaluationComparison(
        evaluations=tuple(evaluations),
        overall=tuple(c for c in overall if c is not None),
        tags=tuple(
            (t, _against_first([_tag_cell(e.by_tag.get(t)) for e in evaluations])) for t in tags
        ),
        differing=tuple(differing),
        partial=partial,
    )


def wilson(passed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a pass rate, (low, high): honest for few cases and at
    4/4 or 0/4, where the normal approximation's interval shrinks to a point."""
    if total <= 0:
        return 0.0, 1.0
    p = passed / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
