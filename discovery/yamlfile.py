"""YAML files trainers write (LLaMA-Factory's `training_args.yaml`, the MLX trainer's config, a
model card's front matter), read safely: plain data only, never a constructed object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import file_cache
from .values import MAX_DEPTH

# A configuration is a few kilobytes; anything much larger is not one, and the pure-Python
# parser takes seconds over megabytes.
MAX_YAML_BYTES = 1 * 2**20


@dataclass(frozen=True)
class YamlRead:
    """A YAML document's top-level mapping, or why there is none."""

    data: dict[str, Any] | None
    problem: str | None = None


def parse(text: str) -> YamlRead:
    """A YAML document's top-level mapping; safe_load builds plain values only (no tags that
    construct objects), and a document nested past what anyone writes is refused."""
    # Imported at the first YAML file, not with discovery: most runs have none, and the module
    # is 3,000 more objects for every full pass of the garbage collector over a big first answer.
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return YamlRead(None, f"is not valid YAML{where}: {exc.problem or exc}")
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        return YamlRead(None, f"is not valid YAML: {exc}")
    if not isinstance(value, dict):
        return YamlRead(None, "is not a YAML mapping of names to values")
    if _too_deep(value):
        return YamlRead(None, "nests deeper than any configuration does, or contains itself")
    return YamlRead({str(k): v for k, v in value.items()})


def _load(data: bytes) -> YamlRead:
    if len(data) > MAX_YAML_BYTES:
        return YamlRead(None, f"is larger than {MAX_YAML_BYTES // 2**20} MB: not a configuration")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return YamlRead(None, "is not UTF-8 text")
    return parse(text)


def read_yaml(path: Path, root: Path) -> YamlRead | None:
    """The YAML file's mapping (or its problem); None when there is no readable file inside
    `root`. Parsed once per file identity."""
    return file_cache.get(path, root, "yaml", _load)


def read_mapping(path: Path, root: Path) -> dict[str, Any] | None:
    """The YAML file's top-level mapping; None when there is no readable one."""
    found = read_yaml(path, root)
    return found.data if found is not None else None


def front_matter(text: str) -> YamlRead | None:
    """The YAML block between the `---` lines a model card (`README.md`) opens with, or None
    when it has none."""
    if not text.startswith("---"):
        return None
    lines = text.splitlines()
    if lines[0].strip() != "---":
        return None
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return parse("\n".join(lines[1:i]))
    return None


def _too_deep(value: Any) -> bool:
    """Whether the document nests past MAX_DEPTH or contains itself. YAML aliases share one
    object between many places (a "billion laughs" document expands to billions of nodes), so
    each object's height is found once, by its identity."""
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        ident = id(node)
        children = list(node.values() if isinstance(node, dict) else node)
        if done:
            on_path.discard(ident)
            heights[ident] = 1 + max(
                (heights.get(id(c), 0) for c in children if isinstance(c, dict | list)), default=0
            )
            if heights[ident] > MAX_DEPTH:
                return True
            continue
        if ident in on_path:
            return True  # an alias to one of its own parents
        if ident in heights:
            continue
        on_path.add(ident)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list))
    return False
