"""Evaluations from the dashboard: the form that starts one, the jobs, cancel, JSON twins."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from discovery.prompt_sets import get_prompt_set
from tuner_site import serializers, workspace
from tuner_site.forms import FIELDS, EvaluationForm, Offer, current_offer
from tuner_site.jobs.evaluation import create_job
from tuner_site.jobs.evaluator import DEFAULT_TEMPERATURE, missing_parts
from tuner_site.jobs.lifecycle import cancel, fail_lost_jobs, run_again, waiting_since
from tuner_site.jobs.process import OUTPUT_LINES, hide_paths
from tuner_site.models import EvaluationJob

from .common import BadQuery, HtmxHttpRequest, error_response, json_response

JOBS_SHOWN = 100


def _denied(request: HttpRequest) -> tuple[int, str] | None:
    """Why this user may not start or cancel evaluations (status, message), or None."""
    user = request.user
    if not user.is_authenticated:
        return 401, "Sign in as a staff user to start or cancel evaluations."
    if not user.is_staff:
        return 403, (
            f"{user.get_username()} is not a staff user, and only staff start or cancel "
            "evaluations: an admin can tick “Staff status” for you in /admin/."
        )
    return None


def _job_or_404(job_id: int) -> EvaluationJob:
    job = EvaluationJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None:
        raise Http404(f"No evaluation job {job_id}.")
    return job


def _jobs(request: HttpRequest) -> list[EvaluationJob]:
    # A job whose worker died is ended here too, so no page shows it running forever.
    fail_lost_jobs()
    jobs = EvaluationJob.objects.select_related("created_by")[:JOBS_SHOWN]
    return [_shown(request, j) for j in jobs]


def _private(request: HttpRequest) -> bool:
    """Whether this viewer sees usernames and this machine's folders: with login off, staff only."""
    return bool(settings.TUNER_REQUIRE_LOGIN or request.user.is_staff)


def _shown(request: HttpRequest, job: EvaluationJob) -> EvaluationJob:
    """The job as this viewer may see it."""
    if _private(request):
        return job
    shown = copy.copy(job)
    shown.created_by = None
    try:
        root: Path | None = workspace.current().root
    except workspace.WorkspaceMissing:
        root = None
    shown.output = hide_paths(job.output, root)
    shown.error = hide_paths(job.error, root)
    return shown


def _missing_parts(request: HttpRequest, root: Path) -> str | None:
    problem = missing_parts(root)
    return problem if problem is None or _private(request) else hide_paths(problem, root)


def _initial(params: QueryDict, offer: Offer) -> dict[str, Any]:
    """The form prefilled from an "Evaluate" link; it is checked when it is sent."""
    backend = params.get("backend")
    if offer.status(backend or "") is None:
        backend = next((s.backend.name for s in offer.available), None)
    initial: dict[str, Any] = {"temperature": DEFAULT_TEMPERATURE}
    initial |= {k: params[k] for k in FIELDS if params.get(k)}
    return initial | {"backend": backend}


def _form_page(
    request: HtmxHttpRequest, form: EvaluationForm | None, problem: str | None, status: int = 200
) -> HttpResponse:
    offer = form.offer if form else Offer([], [])
    chosen = offer.status(str(form["backend"].value() or "")) if form else None
    context = {
        "form": form,
        "offer": offer,
        "chosen": chosen,
        "problem": problem,
        "denied": _denied(request),
    }
    template = "evaluations/new.html"
    if request.htmx and form is not None:
        template += "#eval-form"
    return render(request, template, context, status=status)


# These pages answer htmx with a fragment of themselves at the same URL: without Vary, the
# back button shows the browser's cached fragment instead of the page.
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
def new_evaluation(request: HtmxHttpRequest) -> HttpResponse:
    posted = request.method == "POST"
    if posted and (denied := _denied(request)):
        return error_response(request, 403, denied[1])
    root = workspace.current().root
    if problem := _missing_parts(request, root):
        return _form_page(request, None, problem, 409 if posted else 200)
    offer = current_offer(root)
    if not posted:
        form = EvaluationForm(initial=_initial(request.GET, offer), offer=offer)
        return _form_page(request, form, None)
    form = EvaluationForm(request.POST, offer=offer)
    if not form.is_valid():
        return _form_page(request, form, None, status=400)
    job = create_job(form.job_fields(), form.chosen_backend(), request.user)
    return redirect("tuner-job-detail", job.pk)


@require_safe
@ensure_csrf_cookie  # scripts read the token from the cookie this sets
def api_new_evaluation(request: HttpRequest) -> HttpResponse:
    root = workspace.current().root
    problem = _missing_parts(request, root)
    denied = _denied(request)
    offer = Offer([], []) if problem else current_offer(root)
    return json_response(
        {
            "evaluator": {"ready": problem is None, "problem": problem},
            "can_start": denied is None and problem is None,
            "why_not": denied[1] if denied else problem,
            **serializers.offer_json(offer),
            "defaults": {"temperature": DEFAULT_TEMPERATURE, "seed": None, "limit": None},
            "jobs_url": reverse("tuner-api-job-list"),
        }
    )


@require_safe
@vary_on_headers("HX-Request")
def job_list(request: HtmxHttpRequest) -> HttpResponse:
    jobs = _jobs(request)
    context = {
        "jobs": jobs,
        "active": any(j.is_active for j in jobs),
        "shown": JOBS_SHOWN,
        "waiting_since": waiting_since(),
    }
    template = "evaluations/jobs.html"
    if request.htmx:
        template += "#jobs"
    return render(request, template, context)


@require_http_methods(["GET", "HEAD", "POST"])
@ensure_csrf_cookie
def api_job_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _api_create(request)
    return json_response({"jobs": [serializers.job_json(j) for j in _jobs(request)]})


def _api_create(request: HttpRequest) -> HttpResponse:
    if denied := _denied(request):
        return error_response(request, *denied)
    root = workspace.current().root
    if problem := missing_parts(root):
        return error_response(request, 409, problem)
    data = _posted(request)
    form = EvaluationForm(data, offer=current_offer(root))
    if not form.is_valid():
        fields = {name: [str(m) for m in errors] for name, errors in form.errors.items()}
        message = " ".join(m for errors in fields.values() for m in errors)
        return json_response({"error": message, "fields": fields}, status=400)
    job = create_job(form.job_fields(), form.chosen_backend(), request.user)
    response = json_response(serializers.job_json(job), status=201)
    response["Location"] = reverse("tuner-api-job-detail", args=[job.pk])
    return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _posted(request: HttpRequest, fields: tuple[str, ...] = FIELDS) -> dict[str, str]:
    """Form fields or a JSON object, as the form's text; unknown fields are refused."""
    accepted = ", ".join(fields)
    if request.content_type == "application/json":
        try:
            raw = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):  # nested past Python's stack is no form either
            raise BadQuery(f"The body is not JSON. Send an object with {accepted}.") from None
        if not isinstance(raw, dict):
            raise BadQuery(f"Send a JSON object with {accepted}.")
        data = {k: _text(v) for k, v in raw.items()}
    elif request.content_type not in FORM_TYPES and request.body:
        # Django reads no field from another type: the form would say every field is missing.
        raise BadQuery(
            f"Send a JSON object (Content-Type: application/json) or form fields with "
            f"{accepted}; not {request.content_type or 'a body without a Content-Type'}."
        )
    else:
        # A field sent more than once (checkboxes) is a list, as in JSON.
        data = {
            k: _text(v if len(v) > 1 else v[0])
            for k, v in request.POST.lists()
            if k != "csrfmiddlewaretoken"
        }
    if unknown := sorted(set(data) - set(fields)):
        raise BadQuery(f"Unknown field {', '.join(unknown)}: the fields are {accepted}.")
    return data


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # tags as a list
        return ",".join(str(v) for v in value)
    return str(value)


@require_safe
@vary_on_headers("HX-Request")
def job_detail(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    fail_lost_jobs()
    job = _shown(request, _job_or_404(job_id))
    template = "evaluations/job.html"
    if request.htmx:
        template += "#job"
    return render(request, template, _job_context(request, job))


def _job_context(request: HttpRequest, job: EvaluationJob) -> dict[str, Any]:
    ahead = None
    if job.status == EvaluationJob.Status.QUEUED:
        jobs = EvaluationJob.objects
        ahead = {
            "running": jobs.running_on(job.backend).first(),
            "queued": jobs.queued_on(job.backend).filter(pk__lt=job.pk).count(),
        }
    has_set = get_prompt_set(workspace.current().root, job.prompt_set) is not None
    return {
        "job": job,
        "ahead": ahead,
        "has_set": has_set,
        "denied": _denied(request),
        "lines": OUTPUT_LINES,
        "waiting_since": waiting_since() if job.is_queued else None,
    }


@require_safe
def api_job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    fail_lost_jobs()
    return json_response(serializers.job_json(_shown(request, _job_or_404(job_id)), output=True))


@require_POST
def job_cancel(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(job_id)
    if denied := _denied(request):
        return error_response(request, 403, denied[1])
    if job.is_active:
        cancel(job)
        job = _job_or_404(job.pk)
    if request.htmx:
        return render(request, "evaluations/job.html#job", _job_context(request, job))
    return redirect("tuner-job-detail", job.pk)


@require_POST
def api_job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(job_id)
    if denied := _denied(request):
        return error_response(request, *denied)
    # 200 only when the cancel got in before the job's verdict: it then ends cancelled.
    accepted = cancel(job)
    job = _job_or_404(job.pk)
    if not accepted:
        return json_response(
            {
                "error": f"Job {job.pk} has already ended ({job.status}): nothing to cancel.",
                "job": serializers.job_json(job),
            },
            status=409,
        )
    return json_response(serializers.job_json(job))


def _run_again(request: HttpRequest, job: EvaluationJob) -> EvaluationJob | HttpResponse:
    """A new job with the same arguments, or the answer saying why not."""
    if denied := _denied(request):
        return error_response(request, *denied)
    if not job.can_run_again:
        return error_response(
            request,
            409,
            f"Job {job.pk} is {job.status}: only a failed or cancelled job is run again.",
        )
    # The server by its name as configured now: its address may have changed since (a
    # restarted server on another port, OLLAMA_HOST edited).
    server = next((b for b in workspace.backends() if b.name == job.backend), None)
    if server is None or server.kind != job.backend_kind:
        return error_response(
            request,
            409,
            f"The server {job.backend!r} job {job.pk} ran on is no longer configured: start a "
            "new evaluation on a server /backends/ lists.",
        )
    return run_again(job, created_by_id=request.user.pk, backend_url=server.url)


@require_POST
def job_run_again(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    again = _run_again(request, _job_or_404(job_id))
    if isinstance(again, HttpResponse):
        return again
    return redirect("tuner-job-detail", again.pk)


@require_POST
def api_job_run_again(request: HttpRequest, job_id: int) -> HttpResponse:
    again = _run_again(request, _job_or_404(job_id))
    if isinstance(again, HttpResponse):
        return again
    response = json_response(serializers.job_json(again), status=201)
    response["Location"] = reverse("tuner-api-job-detail", args=[again.pk])
    return response
