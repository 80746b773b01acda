"""Prompt sets in Evaluator/prompts/: every .json and .jsonl file, parsed leniently."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from .paths import file_cache, is_inside, is_safe_name, loads_lenient

log = logging.getLogger(__name__)

# The seed's two known sets, in its display order, with its descriptions.
KNOWN_PROMPT_SETS = {
    "tool_prompts": "Tool-calling prompts: does the model pick the right tools and context?",
    "behavior_prompts": "Behavior prompts: does the model act as expected, without anti-patterns?",
}
SUFFIXES = (".json", ".jsonl")


@dataclass(frozen=True)
class Case:
    id: str
    question: str
    tags: tuple[str, ...]
    expected_tools: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Parsed:
    cases: tuple[Case, ...] | None
    error: str | None


@dataclass(frozen=True)
class PromptSet:
    name: str
    path: Path
    size: int
    modified: float
    cases: tuple[Case, ...] | None
    error: str | None

    @property
    def count(self) -> int | None:
        return None if self.cases is None else len(self.cases)

    @property
    def filename(self) -> str:
        return self.path.name

    def top_tags(self, n: int = 5) -> list[tuple[str, int]]:
        counts = Counter(t for c in self.cases or () for t in c.tags)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def to_case(item: Any, index: int) -> Case | None:
    """A case as the Evaluator reads it: `question` or `prompt`, id defaulting to case_0001."""
    default_id = f"case_{index + 1:04d}"
    if isinstance(item, str):
        return Case(default_id, item, (), ())
    if not isinstance(item, dict):
        return None
    question = item.get("question", item.get("prompt"))
    if not isinstance(question, str):
        return None
    raw_id = item.get("id")
    extra = {
        k: v
        for k, v in item.items()
        if k not in {"id", "question", "prompt", "tags", "expected_tools"}
    }
    return Case(
        id=str(raw_id) if isinstance(raw_id, str | int) and raw_id != "" else default_id,
        question=question,
        tags=_strings(item.get("tags")),
        expected_tools=_strings(item.get("expected_tools")),
        extra=extra,
    )


def _cases(items: list[Any]) -> Parsed:
    cases = []
    for i, item in enumerate(items):
        case = to_case(item, i)
        if case is None:
            return Parsed(None, f"case {i + 1} has no question (or prompt) text")
        cases.append(case)
    return Parsed(tuple(cases), None)


def parse_json(data: bytes) -> Parsed:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return Parsed(None, f"not valid JSON: {exc}")
    items = count_source(value)
    if items is None:
        return Parsed(None, 'expected a list of cases, {"prompts": [...]} or {"cases": [...]}')
    return _cases(items)


def parse_jsonl(data: bytes) -> Parsed:
    items = []
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        value = loads_lenient(line)
        if not isinstance(value, dict):
            return Parsed(None, f"line {n} is not a JSON object")
        items.append(value)
    return _cases(items)


def count_source(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("prompts", "cases"):
            if isinstance(data.get(key), list):
                return data[key]
    return None


def _parse_and_warn(path: Path, data: bytes) -> Parsed:
    parsed = parse_jsonl(data) if path.suffix == ".jsonl" else parse_json(data)
    if parsed.error:
        log.warning("prompt set %s: %s", path, parsed.error)
    return parsed


def read_prompt_set(path: Path, name: str, root: Path) -> PromptSet | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    parsed = file_cache.get(path, root, "prompt_set", partial(_parse_and_warn, path))
    if parsed is None:
        parsed = Parsed(None, "could not be read")
    return PromptSet(name, path, st.st_size, st.st_mtime, parsed.cases, parsed.error)


def prompts_dir(root: Path) -> Path:
    return root / "Evaluator" / "prompts"


def _files(root: Path) -> dict[str, Path]:
    """Set name → file; a name is the file's stem unless two files share it."""
    folder = prompts_dir(root)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return {}
    found: dict[str, Path] = {}
    for e in entries:
        if not e.name.endswith(SUFFIXES) or e.name.startswith("."):
            continue
        try:
            if not e.is_file() or not is_inside(e.path, root):
                continue
        except OSError:
            continue
        stem = e.name.rsplit(".", 1)[0]
        name = e.name if stem in found else stem
        if is_safe_name(name):  # a name no URL can open is not listed
            found[name] = Path(e.path)
    return found


def default_description(name: str) -> str:
    if name in KNOWN_PROMPT_SETS:
        return KNOWN_PROMPT_SETS[name]
    m = re.fullmatch(r"(.*?)_archived_(\d{4})(\d{2})(\d{2})", name)
    if m:
        return f"{_words(m.group(1))}, archived {m[2]}-{m[3]}-{m[4]}"
    return _words(name)


def _words(name: str) -> str:
    words = name.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def order_key(name: str) -> tuple[int, str]:
    known = list(KNOWN_PROMPT_SETS)
    return (known.index(name) if name in known else len(known), name)


def list_prompt_sets(root: Path) -> list[PromptSet]:
    """Every prompt-set file, the seed's known sets first; broken files are listed with an error."""
    sets = [read_prompt_set(p, name, root) for name, p in _files(root).items()]
    return sorted((s for s in sets if s is not None), key=lambda s: order_key(s.name))


def get_prompt_set(root: Path, name: str) -> PromptSet | None:
    """By name among discovered files only, so no URL can reach another path."""
    path = _files(root).get(name)
    return read_prompt_set(path, name, root) if path else None
