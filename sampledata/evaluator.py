"""The Evaluator's files: prompt sets in Evaluator/prompts/ and results in Evaluator/results/."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .runs import write_json

DEMO_TAGS = [["search", "memory"], ["create", "folder"], ["search"], ["archive", "memory"]]
DEMO_TOOLS = [["searchContent"], ["createFolder"], ["searchContent", "readFile"], ["archiveNote"]]
# Ids in the form the Evaluator's validator accepts (`session_<13 digits>_<9 of a-z0-9>`).
DEMO_SESSION, DEMO_WORKSPACE = "session_1764000000000_demo00001", "ws_1764000000000_demo00001"


def prompt_case(i: int, prefix: str, tags: list[str], tools: list[str]) -> dict[str, Any]:
    return {
        "id": f"{prefix}_{i:03d}",
        "question": f"Case {i}: use the workspace tools to {tags[0]} the notes in project {i}.",
        "tags": tags,
        "expected_tools": tools,
        "system": (
            f'<session_context>\n- sessionId: "{DEMO_SESSION}"\n- workspaceId: "{DEMO_WORKSPACE}"\n'
            'Include these in the "context" parameter of your tool calls.\n</session_context>'
        ),
        "expected_context": {"session_id": DEMO_SESSION, "workspace_id": DEMO_WORKSPACE},
    }


def write_prompt_sets(root: Path) -> None:
    prompts = root / "Evaluator" / "prompts"
    tags, tools = DEMO_TAGS, DEMO_TOOLS
    write_json(
        prompts / "tool_prompts.json",
        [prompt_case(i, "tool", tags[i % 4], tools[i % 4]) for i in range(12)],
    )
    write_json(
        prompts / "behavior_prompts.json",
        [prompt_case(i, "IH", ["behavior", *tags[i % 4][:1]], tools[i % 4]) for i in range(8)],
    )


def write_evaluation(
    root: Path,
    name: str,
    model: str,
    prompt_set: str,
    results: list[tuple[str, bool, list[str]]],
    generated_at: datetime,
    expected_tools: Mapping[str, list[str]] | None = None,
) -> Path:
    """An Evaluator result file: metadata, summary (with per-tag rates) and one record a case.

    Each failed case's own issue is what the summary counts, as the Evaluator's reporting does.
    """
    by_tag: dict[str, dict[str, float]] = {}
    for _, passed, tags in results:
        for tag in tags:
            stats = by_tag.setdefault(tag, {"total": 0, "passed": 0})
            stats["total"] += 1
            stats["passed"] += int(passed)
    for stats in by_tag.values():
        stats["pass_rate"] = stats["passed"] / stats["total"]
    passed_count = sum(p for _, p, _ in results)
    tools = expected_tools or {}
    reasons = {
        case: f"Expected tools not called: {', '.join(tools.get(case) or [case])}"
        for case, p, _ in results
        if not p
    }
    return write_json(
        root / "Evaluator" / "results" / f"{name}.json",
        {
            "metadata": {
                "model": model,
                "host": "127.0.0.1",
                "port": 11434,
                # As the Evaluator records it on the Windows machine that ran it.
                "prompt_file": "\\".join(
                    ["C:", "Toolset-Training", "Evaluator", "prompts", f"{prompt_set}.json"]
                ),
                "generated_at": generated_at.isoformat(),
            },
            "summary": {
                "total": len(results),
                "passed": passed_count,
                "failed": len(results) - passed_count,
                "request_errors": 0,
                "pass_rate": passed_count / len(results) if results else 0.0,
                "by_tag": by_tag,
                "top_failure_reasons": [list(x) for x in Counter(reasons.values()).most_common(10)],
            },
            "records": [
                {
                    "case_id": case,
                    "tags": tags,
                    "passed": p,
                    "latency_s": 2.5,
                    "error": None,
                    "validator": {
                        "passed": p,
                        "issues": [{"level": "error", "message": reasons[case]}] if not p else [],
                    },
                }
                for case, p, tags in results
            ],
        },
    )
