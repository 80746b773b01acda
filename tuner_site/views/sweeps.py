"""Sweeps: evaluate a run's checkpoints on one server and prompt set; their page and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from discovery import serving
from discovery.prompt_sets import get_prompt_set
from discovery.runs import Run, detail, get_run
from tuner_site import workspace
from tuner_site.eval_ranking import ranked
from tuner_site.forms import SWEEP_FIELDS, SweepForm, sweep_offer
from tuner_site.jobs import sweep as sweeps
from tuner_site.jobs.evaluator import DEFAULT_TEMPERATURE, missing_parts
from tuner_site.jobs.lifecycle import fail_lost_jobs
from tuner_site.models import Sweep

from .common import HtmxHttpRequest, error_response, json_response
from .jobs import _denied, _posted

SWEEPS_SHOWN = 100
QUEUED, RUNNING = sweeps.Status.QUEUED, sweeps.Status.RUNNING


def _sweep_or_404(sweep_id: int) -> Sweep:
    found = Sweep.objects.filter(pk=sweep_id).first()
    if found is None:
        raise Http404(f"No sweep {sweep_id}.")
    return found


@require_http_methods(["GET", "HEAD", "POST"])
@ensure_csrf_cookie  # scripts read the token from the cookie this sets
def api_run_sweeps(request: HttpRequest, trainer: str, run: str) -> HttpResponse:
    """The run's sweeps, newest first; POST starts one."""
    ws = workspace.current()
    found = get_run(ws, trainer, run)
    if found is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    if request.method == "POST":
        return _create(request, ws.root, found)
    fail_lost_jobs()
    listed = Sweep.objects.filter(trainer=trainer, run=run)[:SWEEPS_SHOWN]
    return json_response({"sweeps": [sweeps.sweep_json(s) for s in listed]})


def _create(request: HttpRequest, root: Path, found: Run) -> HttpResponse:
    if denied := _denied(request):
        return error_response(request, *denied)
    if problem := missing_parts(root):
        return error_response(request, 409, problem)
    d = ranked(found).d  # the best the run page shows: by a pass rate where one ranks
    form = SweepForm(
        _posted(request, SWEEP_FIELDS),
        offer=sweep_offer(root),
        run_checkpoints=d.checkpoints,
        best=d.ranking.best,
        root=root,
    )
    if not form.is_valid():
        fields = {name: [str(m) for m in errors] for name, errors in form.errors.items()}
        message = " ".join(m for errors in fields.values() for m in errors)
        return json_response({"error": message, "fields": fields}, status=400)
    made = _start(form, found, root, request.user)
    response = json_response(sweeps.sweep_json(made), status=201)
    response["Location"] = reverse("tuner-api-sweep-detail", args=[made.pk])
    return response


@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
def sweep_new(request: HtmxHttpRequest, trainer: str, run: str) -> HttpResponse:
    """The form that starts a sweep over a run's checkpoints (staff); its warnings as the
    chosen server, base and checkpoints change (htmx)."""
    posted = request.method == "POST"
    if posted and (denied := _denied(request)):
        return error_response(request, 403, denied[1])
    ws = workspace.current()
    found = get_run(ws, trainer, run)
    if found is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    d = ranked(found).d  # the best the run page shows: by a pass rate where one ranks
    offer = sweep_offer(ws.root)
    context: dict[str, Any] = {"run": found, "offer": offer, "denied": _denied(request)}
    if problem := missing_parts(ws.root):
        return render(request, "evaluations/sweep_new.html", context | {"problem": problem})
    default = next((s.backend.name for s in offer.available), None)
    data = _posted(request, SWEEP_FIELDS) if posted else None
    initial = {"backend": default, "temperature": DEFAULT_TEMPERATURE}
    form = SweepForm(
        data,
        initial=initial,
        offer=offer,
        run_checkpoints=d.checkpoints,
        best=d.ranking.best,
        root=ws.root,
    )
    if posted and form.is_valid():
        made = _start(form, found, ws.root, request.user)
        return redirect("tuner-sweep-detail", made.pk)
    if not posted:
        # What the chosen base looks like against the adapters, before anything starts.
        chosen = request.GET.getlist("checkpoints") if "checkpoints" in request.GET else None
        asked = request.GET.get("backend") or default or ""
        form.warnings = form.warnings_for(
            asked, request.GET.get("base", ""), {"checkpoints": chosen}
        )
        if request.htmx and request.htmx.target == "sweep-warnings":
            return render(request, "evaluations/sweep_new.html#warnings", {"form": form})
    servable = [n for n, s in form.servable.items() if s.adapter is not None]
    checked = set(
        (data or {}).get("checkpoints", "").split(",")
        if posted
        else serving.default_selection(d.checkpoints, d.ranking.best, servable)
    )
    choices = [
        {
            "name": c.name,
            "checked": c.name in checked,
            "best": c.name == d.ranking.best,
            "reason": form.servable[c.name].reason,
        }
        for c in sorted(d.checkpoints, key=serving.step_order)
    ]
    context |= {"form": form, "choices": choices}
    return render(request, "evaluations/sweep_new.html", context, status=400 if posted else 200)


BADGES = {sweeps.SERVING: "running", sweeps.EVALUATING: "running", sweeps.DONE: "succeeded"}


@require_safe
@vary_on_headers("HX-Request")
def sweep_detail(request: HtmxHttpRequest, sweep_id: int) -> HttpResponse:
    """A sweep's checkpoints as they are served and evaluated, refreshed while it runs."""
    fail_lost_jobs()
    template = "evaluations/sweep.html"
    if request.htmx:
        template += "#sweep"
    return render(request, template, _context(request, _sweep_or_404(sweep_id)))


def _context(request: HttpRequest, found: Sweep) -> dict[str, Any]:
    data = sweeps.sweep_json(found)
    rows = [
        row | {"badge": BADGES.get(row["status"], row["status"])} for row in data["checkpoints"]
    ]
    return {
        "sweep": found,
        "data": data,
        "rows": rows,
        "active": data["status"] in (QUEUED, RUNNING),
        "denied": _denied(request),
        "has_set": get_prompt_set(workspace.current().root, found.prompt_set) is not None,
    }


def run_panel(request: HtmxHttpRequest, trainer: str, run: str) -> HttpResponse:
    """A run page's sweeps panel, as it polls itself while a sweep runs."""
    if get_run(workspace.current(), trainer, run) is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    fail_lost_jobs()
    return render(request, "runs/_sweeps.html", panel_context(request, trainer, run, True))


def panel_context(
    request: HtmxHttpRequest, trainer: str, run: str, polled: bool = False
) -> dict[str, Any]:
    """The run page's sweeps: the running ones checkpoint by checkpoint, else the last."""
    shown, going = sweeps.run_sweeps(trainer, run)
    for data in shown:
        for row in data["checkpoints"]:
            row["badge"] = BADGES.get(row["status"], row["status"])
    page = reverse("tuner-run-detail", args=[trainer, run])
    current = request.htmx.current_url_abs_path if request.htmx else None
    return {
        "sweeps": shown,
        "sweeps_going": going,
        # It ended while the page watched: the page's live part is asked again, so the
        # checkpoint table shows the new results and the ranking they make.
        "sweeps_ended": polled and not going,
        "sweeps_page": current if current and current.split("?")[0] == page else page,
        "sweeps_panel": page,
        "sweeps_denied": _denied(request),
    }


@require_POST
def sweep_cancel(request: HtmxHttpRequest, sweep_id: int) -> HttpResponse:
    found = _sweep_or_404(sweep_id)
    if denied := _denied(request):
        return error_response(request, 403, denied[1])
    sweeps.cancel_sweep(found)
    if request.htmx and request.htmx.target == "run-sweeps":
        context = panel_context(request, found.trainer, found.run, True)
        return render(request, "runs/_sweeps.html", context)
    if request.htmx:
        return render(request, "evaluations/sweep.html#sweep", _context(request, found))
    return redirect("tuner-sweep-detail", found.pk)


def _start(form: SweepForm, found: Run, root: Path, user: Any) -> Sweep:
    """The sweep the checked form asks for: its checkpoints served under the dashboard's names."""
    by_name = {c.name: c for c in detail(found).checkpoints}
    planned = []
    for name in form.cleaned_data["checkpoints"]:  # in step order, the final model last
        adapter = form.servable[name].adapter
        assert adapter is not None  # the form checked
        model = serving.model_name(found.name, by_name[name])
        planned.append(sweeps.Planned(name, adapter, model))
    fields = form.sweep_fields()
    backend = form.chosen_backend()
    return sweeps.create_sweep(
        found.trainer.id, found.name, fields, backend, planned, root, user, form.warnings
    )


@require_safe
def api_sweep_detail(request: HttpRequest, sweep_id: int) -> HttpResponse:
    fail_lost_jobs()
    return json_response(sweeps.sweep_json(_sweep_or_404(sweep_id)))


@require_POST
def api_sweep_cancel(request: HttpRequest, sweep_id: int) -> HttpResponse:
    found = _sweep_or_404(sweep_id)
    if denied := _denied(request):
        return error_response(request, *denied)
    if not sweeps.cancel_sweep(found):
        data = sweeps.sweep_json(found)
        message = f"Sweep {found.pk} has already ended ({data['status']}): nothing to cancel."
        return json_response({"error": message, "sweep": data}, status=409)
    return json_response(sweeps.sweep_json(found))
