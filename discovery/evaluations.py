"""Evaluation results in Evaluator/results/*.json: a model scored against a prompt set."""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .paths import file_cache, is_inside, loads_lenient


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    passed: bool
    latency_s: float | None
    error: str | None
    issues: tuple[str, ...]
    tags: tuple[str, ...]


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
    cases: tuple[CaseResult, ...] = ()
    error: str | None = None


def _num(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


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


def _case(record: Any) -> CaseResult | None:
    if not isinstance(record, dict) or not isinstance(record.get("case_id"), str):
        return None
    validator = _literal(record.get("validator"))
    issues: list[str] = []
    if isinstance(validator, dict):
        for issue in validator.get("issues") or []:
            if isinstance(issue, dict) and isinstance(issue.get("message"), str):
                issues.append(issue["message"])
    error = record.get("error")
    latency = record.get("latency_s")
    try:
        latency = float(latency) if latency is not None else None
    except (TypeError, ValueError):
        latency = None
    tags = _literal(record.get("tags"))
    return CaseResult(
        case_id=record["case_id"],
        passed=_truthy(record.get("passed")),
        latency_s=latency,
        error=error if isinstance(error, str) and error not in {"", "None"} else None,
        issues=tuple(issues),
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
    )


def _broken(name: str, path: Path, error: str) -> Evaluation:
    return Evaluation(name, path, None, None, None, None, None, None, None, error=error)


def parse(data: bytes, name: str, path: Path) -> Evaluation:
    obj = loads_lenient(data)
    if not isinstance(obj, dict) or not isinstance(obj.get("summary"), dict):
        return _broken(name, path, "not an evaluation result (no summary object)")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    summary = obj["summary"]
    generated = meta.get("generated_at")
    try:
        when = datetime.fromisoformat(generated) if isinstance(generated, str) else None
    except ValueError:
        when = None
    by_tag = {
        tag: {k: v for k, v in stats.items() if type(v) in (int, float)}
        for tag, stats in (summary.get("by_tag") or {}).items()
        if isinstance(tag, str) and isinstance(stats, dict)
    }
    reasons = tuple(
        (r[0], r[1])
        for r in summary.get("top_failure_reasons") or []
        if isinstance(r, list) and len(r) == 2 and isinstance(r[0], str) and type(r[1]) is int
    )
    records = obj.get("records") if isinstance(obj.get("records"), list) else []
    return Evaluation(
        name=name,
        path=path,
        model=meta.get("model") if isinstance(meta.get("model"), str) else None,
        prompt_set=_prompt_set(meta.get("prompt_file")),
        generated_at=when,
        total=_int(summary.get("total")),
        passed=_int(summary.get("passed")),
        request_errors=_int(summary.get("request_errors")),
        pass_rate=_num(summary.get("pass_rate")),
        by_tag=by_tag,
        failure_reasons=reasons,
        cases=tuple(c for c in (_case(r) for r in records) if c is not None),
    )


def _files(root: Path) -> dict[str, Path]:
    folder = root / "Evaluator" / "results"
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return {}
    found = {}
    for e in entries:
        if e.name.endswith(".json") and not e.name.startswith("."):
            try:
                if e.is_file() and is_inside(e.path, root):
                    found[e.name[: -len(".json")]] = Path(e.path)
            except OSError:
                continue
    return found


def read(path: Path, name: str) -> Evaluation:
    result = file_cache.get(path, "evaluation", lambda data: parse(data, name, path))
    if result is None:
        return _broken(name, path, "could not be read")
    return result


def list_evaluations(root: Path) -> list[Evaluation]:
    """Newest first; files that are not results are listed with their error."""
    found = [read(p, name) for name, p in _files(root).items()]
    return sorted(found, key=lambda e: (-_timestamp(e.generated_at), e.name))


def _timestamp(when: datetime | None) -> float:
    # Aware times convert as they are; naive ones are the evaluating machine's local time.
    return when.timestamp() if when is not None else float("-inf")


def get_evaluation(root: Path, name: str) -> Evaluation | None:
    path = _files(root).get(name)
    return read(path, name) if path else None
