from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from django import template
from django.utils.encoding import escape_uri_path
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from discovery import config
from discovery.lineage import Evaluated, Model
from discovery.pace import Pace, run_pace
from discovery.runs import RunDetail
from discovery.values import finite
from tuner_site import formatting, links, paging
from tuner_site.charts import Chart
from tuner_site.serializers import dumps

register = template.Library()


register.filter("metric", formatting.metric)
register.filter("duration", formatting.duration)
register.filter("metric_as", formatting.named)  # {{ value|metric_as:"learning_rate" }}
register.filter("with_unit", formatting.with_unit)
register.filter("setting", formatting.setting)  # {{ value|setting:"learning_rate" }}
register.filter("setting_label", config.label)  # "LoRA r" for lora.r
register.filter("visible", formatting.visible)
register.filter("visible_text", formatting.visible_text)
register.filter("run_url", links.run_url)  # {% url %}'s link to a run, reused: lists have many
register.filter("checkpoint_url", links.checkpoint_url)  # {{ d.run|checkpoint_url:name }}


@register.filter
def get(mapping: Mapping[str, Any] | None, key: str) -> Any:
    return (mapping or {}).get(key)


@register.filter
def score_among(d: RunDetail, details: Iterable[Any]) -> str:
    """A run's best score written as every score of its group in its table column is
    (`details`: RunDetails, or compare's lines; formatting.score_formats)."""
    return formatting.score_formats([d, *details])[d.ranking.group](d.best_score)


@register.filter
def written(value: Any, column: formatting.Column) -> str:
    """A number as its table column's format (`formatting.column`) writes it."""
    return column(value)


@register.filter
def pace(d: RunDetail) -> Pace:
    """A running run's elapsed time, rate and time left (discovery/pace.py)."""
    return run_pace(d)


@register.filter
def percent(value: Any) -> str:
    """A share as a whole percentage; empty for anything that is not a finite number."""
    share = finite(value)
    return "" if share is None or not math.isfinite(share * 100) else f"{share * 100:.0f}%"


@register.filter
def sweep_progress(sweep: Mapping[str, Any]) -> str:
    """How far a sweep (`sweep_json`) got, counting as done only the checkpoints evaluated:
    "1 of 6 checkpoints done, 5 cancelled", not the 6 of 6 that ended."""
    rows = sweep["checkpoints"]
    done = sum(r["status"] == "done" for r in rows)
    text = f"{done} of {len(rows)} checkpoint{'' if len(rows) == 1 else 's'} done"
    for status in ("failed", "cancelled"):
        if count := sum(r["status"] == status for r in rows):
            text += f", {count} {status}"
    return text


@register.simple_tag(takes_context=True)
def query(context: dict[str, Any], **changes: Any) -> str:
    """This page's canonical query (the view's `here_params`, else the request's) with some
    parameters changed; None or '' removes one (tuner_site/links.py)."""
    current = context.get("here_params")
    if current is None:
        current = dict(context["request"].GET.lists())
    return links.changed(current, **changes)


@register.simple_tag
def page_url(name: str, *args: Any, **params: Any) -> str:
    """`{% url %}` with a query: `{% page_url 'tuner-run-list' trainer=t %}` (links.page_url)."""
    return links.page_url(name, *args, **params)


@register.simple_tag
def results_compare_url(*names: str) -> str:
    """Evaluation compare of these results, in this order."""
    return links.page_url("tuner-evaluation-compare", e=list(names))


@register.simple_tag(takes_context=True)
def twin_url(context: dict[str, Any]) -> str:
    """The JSON twin of the page being shown: `/api` before its path, its whole query string."""
    request = context["request"]
    script = request.path.removesuffix(request.path_info)  # the sub-path it is served under
    query = request.META.get("QUERY_STRING", "")
    return escape_uri_path(f"{script}/api{request.path_info}") + (f"?{query}" if query else "")


# Where a name may wrap: after the separators of repo ids, GGUF tags and metric names.
_NAME_BREAKS = re.compile(r"([/:_-])")


@register.filter
def breakable(name: str | None) -> SafeString:
    """A name that may wrap after its `/`, `:`, `-` and `_` when its column is short of room,
    whole rather than cut: `hf.co/professorsynapse/nexus-tools-kto-GGUF:Q4_K_M` over two
    lines, its differing end in view; `eval_rewards/margins` rather than a table wider than
    the screen. The text copies as it is (`<wbr>` adds no character)."""
    text = escape(formatting.visible(name))
    # A GGUF tag (`:Q4_K_M`) is one word: no break inside it.
    head, colon, tag = text.rpartition(":")
    if not colon or len(tag) > 16:
        head, colon, tag = text, "", ""
    return mark_safe(_NAME_BREAKS.sub(r"\1<wbr>", head + colon) + tag)


@register.filter
def codespans(text: str | None) -> SafeString:
    """Escape a message and show its `backticked` parts as code."""
    parts = escape(text or "").split("`")
    return mark_safe("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


@register.filter
def timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


@register.filter
def absolute(value: float) -> float:
    return abs(value)


@register.filter
def previous(model: Model, evaluated: Evaluated) -> Evaluated | None:
    """The evaluation before this one on the same prompt set, to compare with."""
    return model.previous(evaluated)


@register.filter
def chart_config(chart: Chart, source: str) -> str:
    """The chart's drawing rules and data URL for static/js/dashboard.js, as JSON."""
    return dumps(chart.config(source)).decode()


@register.filter
def local_time(value: float | None) -> datetime | None:
    """A Unix time as this machine's naive local time, the clock run start times are read in."""
    return None if value is None else datetime.fromtimestamp(value)


@register.filter
def sub(value: int, other: int) -> int:
    return int(value) - int(other)


@register.filter
def models_on_page(models: Sequence[Any], number: int) -> Sequence[Any]:
    """Page `number` of a server's models, as the JSON pages them."""
    return paging.share_of(models, number, paging.MODELS_PER_PAGE)


@register.filter
def model_pages(models: Sequence[Any]) -> int:
    return paging.page_count(len(models), paging.MODELS_PER_PAGE)
