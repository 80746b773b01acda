"""The overview: what trains now, each trainer's newest runs, the servers, prompt sets and
latest evaluations on one page, and its JSON twin."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from discovery.evaluations import list_evaluations
from discovery.runs import RunDetail, Workspace, detail, list_runs
from tuner_site import serializers, workspace
from tuner_site.prompt_notes import listed

from .common import HtmxHttpRequest, json_response


def _overview(ws: Workspace, runs_only: bool) -> dict[str, Any]:
    runs = list_runs(ws)
    # One walk and one detail per run, so a run that just finished leaves "Training now"
    # and shows as completed in its trainer's card in the same answer.
    newest: dict[str, list[RunDetail]] = {}
    counts: Counter[str] = Counter(r.trainer.id for r in runs)
    running = []
    for r in runs:
        group = newest.setdefault(r.trainer.id, [])
        if r.status == "running" or len(group) < 5:
            d = detail(r)
            if r.status == "running":
                running.append(d)
            if len(group) < 5:
                group.append(d)
    context: dict[str, Any] = {
        "running": running,
        # (trainer, its newest runs, how many it has): a card says when it shows fewer.
        "newest": [(t, details, counts[t]) for t, details in sorted(newest.items())],
        "run_count": len(runs),
    }
    if runs_only:
        return context
    return context | {
        "statuses": workspace.backend_statuses(),
        "prompt_sets": listed(ws.root),
        "evaluations": [e for e in list_evaluations(ws.root) if not e.error][:5],
    }


@require_safe
@vary_on_headers("HX-Request", "HX-Target")  # the runs part is a fragment of its own
def overview(request: HtmxHttpRequest) -> HttpResponse:
    # The runs part polls this page; it alone is rendered, without probing any backend.
    if request.htmx and request.htmx.target == "overview-runs":
        return render(request, "overview.html#overview-runs", _overview(workspace.current(), True))
    return render(request, "overview.html", _overview(workspace.current(), False))


@require_safe
def api_overview(request: HttpRequest) -> HttpResponse:
    return json_response(serializers.overview_json(_overview(workspace.current(), False)))
