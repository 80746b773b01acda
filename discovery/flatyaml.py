"""The flat YAML files trainers write, read without a YAML library.

LLaMA-Factory saves its arguments as `training_args.yaml` with `yaml.safe_dump`: one mapping of
scalars (`learning_rate: 5.0e-05`, `lora_target: all`), the odd block list (`- item` lines under
a key), long plain strings folded onto indented lines. That subset is read here; anything else
(flow collections, anchors, tags, nested mappings) is left out rather than guessed at, and
nothing in the file can make the reader run code or build objects.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from .paths import file_cache

Scalar = str | int | float | bool | None

_KEY = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)\s*:(?:\s+(?P<value>.*))?$")
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
# YAML 1.1's float (`5.0e-05`, `.5`, `1.`), and the `1e-4` people write by hand.
_FLOAT = re.compile(
    r"[-+]?(?:(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
)
_SPECIAL = {
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    ".inf": math.inf,
    "+.inf": math.inf,
    "-.inf": -math.inf,
    ".nan": math.nan,
}
_BOOLS = {
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"), False),
}


def scalar(text: str) -> Scalar:
    """One plain or quoted YAML scalar, typed as PyYAML's safe loader types it."""
    text = text.strip()
    if text[:1] in {"'", '"'}:
        end = _closing_quote(text)
        if end is not None and _strip_comment(text[end + 1 :]).strip() == "":
            body = text[1:end]
            return body.replace("''", "'") if text[0] == "'" else _double_quoted(body)
    text = _strip_comment(text).strip()
    if text == "":
        return None
    if text in _SPECIAL:
        return _SPECIAL[text]
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.fullmatch(text):
        return int(text.replace("_", ""))
    if _FLOAT.fullmatch(text) and any(c.isdigit() for c in text):
        try:
            return float(text.replace("_", ""))
        except ValueError:
            return text
    return text


def _closing_quote(text: str) -> int | None:
    """Where the quoted scalar opening `text` ends (`''` inside single quotes is a quote,
    `\\"` inside double ones)."""
    quote, i = text[0], 1
    while i < len(text):
        c = text[i]
        if quote == '"' and c == "\\":
            i += 2
            continue
        if c == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


def _strip_comment(text: str) -> str:
    """A plain scalar ends at ` #`."""
    if text.startswith("#"):
        return ""
    cut = text.find(" #")
    return text if cut < 0 else text[:cut]


def _double_quoted(body: str) -> str:
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/", "0": "\0"}
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse(text: str) -> dict[str, Any] | None:
    """The top-level mapping of a flat YAML document: each key's scalar, or its block list of
    scalars. None when the document is not such a mapping at all."""
    result: dict[str, Any] = {}
    key: str | None = None
    nested = False  # under a key whose value is a mapping: skipped, not guessed
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#") or stripped in {"---", "..."}:
            continue
        indented = line != stripped
        if stripped.startswith("- ") or stripped == "-":
            if key is None or nested:
                continue
            current = result.get(key)
            if current is None:
                current = result[key] = []
            if isinstance(current, list):
                current.append(scalar(stripped[1:]))
            continue
        if indented:
            if key is None or nested:
                continue
            current = result.get(key)
            if isinstance(current, str) and not _KEY.fullmatch(stripped):
                result[key] = f"{current} {stripped}"  # a folded plain scalar
            elif current is None or isinstance(current, dict):
                nested = True  # a nested mapping: not a flat file's
                result.pop(key, None)
            continue
        m = _KEY.fullmatch(stripped)
        if m is None:
            if not result:
                return None  # not a mapping at all
            key = None
            continue
        key, nested = m["key"], False
        result[key] = scalar(m["value"]) if m["value"] is not None else None
    return result if result or not text.strip() else None


def read(path: Path, root: Path) -> dict[str, Any] | None:
    """A flat YAML file's mapping (see `parse`), or None when missing, unreadable or not one."""

    def load(data: bytes) -> dict[str, Any] | None:
        try:
            return parse(data.decode("utf-8"))
        except UnicodeDecodeError:
            return None

    return file_cache.get(path, root, "flatyaml", load)
