from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from .views import (
    backends,
    compare,
    evaluations,
    explore,
    jobs,
    lineage,
    overview,
    prompt_sets,
    runs,
    sweeps,
)

# /runs/… pages and their /api/runs/… JSON twins share the same paths.
run_patterns = [
    path("", runs.run_list, name="tuner-run-list"),
    path("<str:trainer>/<str:run>/", runs.run_detail, name="tuner-run-detail"),
    path("<str:trainer>/<str:run>/sweeps/new/", sweeps.sweep_new, name="tuner-sweep-new"),
    path(
        "<str:trainer>/<str:run>/<str:checkpoint>/",
        runs.checkpoint_detail,
        name="tuner-checkpoint-detail",
    ),
]

api_run_patterns = [
    path("", runs.api_run_list, name="tuner-api-run-list"),
    path("<str:trainer>/<str:run>/", runs.api_run_detail, name="tuner-api-run-detail"),
    path("<str:trainer>/<str:run>/metrics/", runs.api_run_metrics, name="tuner-api-run-metrics"),
    path("<str:trainer>/<str:run>/lineage/", runs.api_run_lineage, name="tuner-api-run-lineage"),
    # Before the checkpoint pattern, which would take "sweeps" for a checkpoint's name.
    path(
        "<str:trainer>/<str:run>/sweeps/",
        sweeps.api_run_sweeps,
        name="tuner-api-run-sweeps",
    ),
    path(
        "<str:trainer>/<str:run>/<str:checkpoint>/",
        runs.api_checkpoint_detail,
        name="tuner-api-checkpoint-detail",
    ),
]

# /evaluations/new/ and /evaluations/jobs/…: start evaluations and follow them; the JSON twins
# take POST too, for scripts. Listed before /evaluations/<name>/, which would match them.
job_patterns = [
    path("new/", jobs.new_evaluation, name="tuner-evaluation-new"),
    path("jobs/", jobs.job_list, name="tuner-job-list"),
    path("jobs/<int:job_id>/", jobs.job_detail, name="tuner-job-detail"),
    path("jobs/<int:job_id>/cancel/", jobs.job_cancel, name="tuner-job-cancel"),
    path("jobs/<int:job_id>/again/", jobs.job_run_again, name="tuner-job-run-again"),
]

api_job_patterns = [
    path("new/", jobs.api_new_evaluation, name="tuner-api-evaluation-new"),
    path("jobs/", jobs.api_job_list, name="tuner-api-job-list"),
    path("jobs/<int:job_id>/", jobs.api_job_detail, name="tuner-api-job-detail"),
    path("jobs/<int:job_id>/cancel/", jobs.api_job_cancel, name="tuner-api-job-cancel"),
    path("jobs/<int:job_id>/again/", jobs.api_job_run_again, name="tuner-api-job-run-again"),
]

urlpatterns = [
    path("", overview.overview, name="tuner-overview"),
    path("api/", overview.api_overview, name="tuner-api-overview"),
    path("runs/", include(run_patterns)),
    path("api/runs/", include(api_run_patterns)),
    path("compare/", compare.compare, name="tuner-compare"),
    path("api/compare/", compare.api_compare, name="tuner-api-compare"),
    path("sweeps/<int:sweep_id>/", sweeps.sweep_detail, name="tuner-sweep-detail"),
    path("sweeps/<int:sweep_id>/cancel/", sweeps.sweep_cancel, name="tuner-sweep-cancel"),
    path("api/sweeps/<int:sweep_id>/", sweeps.api_sweep_detail, name="tuner-api-sweep-detail"),
    path(
        "api/sweeps/<int:sweep_id>/cancel/",
        sweeps.api_sweep_cancel,
        name="tuner-api-sweep-cancel",
    ),
    path("explore/", explore.explore, name="tuner-explore"),
    path("api/explore/", explore.api_explore, name="tuner-api-explore"),
    path("backends/", backends.backend_list, name="tuner-backend-list"),
    path("api/backends/", backends.api_backend_list, name="tuner-api-backend-list"),
    path("prompt-sets/", prompt_sets.prompt_set_list, name="tuner-prompt-set-list"),
    path("prompt-sets/<str:name>/", prompt_sets.prompt_set_detail, name="tuner-prompt-set-detail"),
    path("api/prompt-sets/", prompt_sets.api_prompt_set_list, name="tuner-api-prompt-set-list"),
    path(
        "api/prompt-sets/<str:name>/",
        prompt_sets.api_prompt_set_detail,
        name="tuner-api-prompt-set-detail",
    ),
    path("evaluations/", include(job_patterns)),
    path("api/evaluations/", include(api_job_patterns)),
    path("evaluations/", evaluations.evaluation_list, name="tuner-evaluation-list"),
    # Fixed names before <name>: a result file cannot be called compare.json and be reached.
    path("evaluations/compare/", evaluations.evaluation_compare, name="tuner-evaluation-compare"),
    path("evaluations/<str:name>/", evaluations.evaluation_detail, name="tuner-evaluation-detail"),
    path("api/evaluations/", evaluations.api_evaluation_list, name="tuner-api-evaluation-list"),
    path(
        "api/evaluations/compare/",
        evaluations.api_evaluation_compare,
        name="tuner-api-evaluation-compare",
    ),
    path(
        "api/evaluations/<str:name>/",
        evaluations.api_evaluation_detail,
        name="tuner-api-evaluation-detail",
    ),
    # /models/… every model known anywhere: published from a run, served, or evaluated.
    path("models/", lineage.model_list, name="tuner-model-list"),
    path("models/<str:model>/", lineage.model_detail, name="tuner-model-detail"),
    path("api/models/", lineage.api_model_list, name="tuner-api-model-list"),
    path("api/models/<str:model>/", lineage.api_model_detail, name="tuner-api-model-detail"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "tuner_site.views.errors.bad_request"
handler404 = "tuner_site.views.errors.not_found"
handler500 = "tuner_site.views.errors.server_error"
