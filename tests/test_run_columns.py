"""The checkpoint table's columns: key ones always, the method's telling ones by default, the rest
picked with `?col=` (repeated), kept across ranking, paging and the live refresh, and a form
that works without JavaScript."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import pytest

from .conftest import KTO_RUN as KTO
from .conftest import RUNNING_RUN as RUNNING

pytestmark = pytest.mark.django_db

RUN = f"/runs/rtx3090_kto/{KTO}/"
LIVE = f"/runs/rtx3090_kto/{RUNNING}/"
KEY = ["rewards/margins", "kl", "loss"]  # margin/kl's inputs, then the loss
DEFAULT = [*KEY, "rewards/chosen", "rewards/rejected"]
EVERY = [
    "rewards/margins",
    "kl",
    "loss",
    "grad_norm",
    "learning_rate",
    "logps/chosen",
    "logps/rejected",
    "rewards/chosen",
    "rewards/rejected",
    "train_loss",
]


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


def text(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def table(page: str) -> str:
    return page[page.index('<table class="checkpoints">') : page.index("</table>")]


def metric_headers(page: str) -> list[str]:
    """The metric columns of the checkpoint table: after Checkpoint, Step, Size and Score."""
    head = table(page)
    head = head[: head.index("</thead>")]
    return [text(th) for th in re.findall(r"<th[^>]*>(.*?)</th>", head)][4:]


def get(client, url: str, **headers: str) -> str:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_by_default_the_key_columns_and_the_methods_telling_ones(client, ws):
    page = get(client, RUN)
    assert metric_headers(page) == DEFAULT
    head = table(page)[: table(page).index("</thead>")]
    assert [text(th) for th in re.findall(r"<th[^>]*>(.*?)</th>", head)][:4] == [
        "Checkpoint",
        "Step",
        "Size",
        "Score (margin/kl)",
    ]
    assert "5 of 10 metrics shown" in text(page)


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("?col=logps/chosen", [*KEY, "logps/chosen"]),
        ("?col=logps/chosen&col=grad_norm", [*KEY, "grad_norm", "logps/chosen"]),
        ("?col=", KEY),  # key columns only
        ("?col=all", EVERY),
        ("?col=kl", KEY),  # a key column is shown once
        # What the form sends without JavaScript: its empty field, then the ticked boxes.
        (
            "?rank=&order=&col=&col=rewards/chosen&col=train_loss",
            [*KEY, "rewards/chosen", "train_loss"],
        ),
        ("?rank=&order=&col=", KEY),  # every box unticked
    ],
)
def test_the_url_picks_the_columns(client, ws, query, shown):
    assert metric_headers(get(client, RUN + query)) == shown


def test_ranking_by_a_metric_makes_it_a_key_column(client, ws):
    assert metric_headers(get(client, RUN + "?rank=grad_norm&col=")) == ["grad_norm", "loss"]
    assert metric_headers(get(client, RUN + "?rank=grad_norm")) == [
        "grad_norm",
        "loss",
        "rewards/margins",
        "kl",
        "rewards/chosen",
        "rewards/rejected",
    ]


@pytest.mark.parametrize("bad", ["nothing", "epoch", "train_runtime"])
def test_a_column_the_table_does_not_have_is_a_400_that_lists_them(client, ws, bad):
    response = client.get(RUN + f"?col=kl&col={bad}")
    assert response.status_code == 400
    message = text(response.content.decode())
    accepted = ["loss", "rewards/margins", "kl", *EVERY[3:]]  # the vocabulary's column order
    assert f"col must be a metric column of this run: {', '.join(accepted)}, or all." in message
    assert repr(bad) in message


def test_the_json_twin_has_every_metric_whatever_the_columns(client, ws):
    data = json.loads(client.get(f"/api{RUN}?col=").content)
    assert "logps/chosen" in data["checkpoints"][1]["metrics"]


def test_the_forms_keep_the_columns_and_the_ranking_for_each_other(client, ws):
    page = get(client, RUN + "?rank=loss&order=max&col=grad_norm")
    rank_form = page[page.index('<form class="rank"') : page.index("</form>")]
    assert '<input type="hidden" name="col" value="grad_norm">' in rank_form
    columns = page[page.index('<form id="columns-form"') :]
    columns = columns[: columns.index("</form>")]
    assert '<input type="hidden" name="rank" value="loss">' in columns
    assert '<input type="hidden" name="order" value="max">' in columns
    # Sent even with every box unticked, so that means key columns only, not the default.
    assert '<input type="hidden" name="col" value="">' in columns
    assert re.search(r'value="grad_norm"[^>]* checked', columns)
    assert not re.search(r'value="logps/chosen"[^>]* checked', columns)
    assert "<noscript><button" in columns
    # The default keeps no col in the rank form: the default it stays.
    default = get(client, RUN)
    rank_form = default[default.index('<form class="rank"') : default.index("</form>")]
    assert 'name="col"' not in rank_form


def test_one_click_links_to_every_column_to_key_ones_only_and_back_to_the_default(client, ws):
    page = get(client, RUN + "?rank=loss")
    assert f'href="{RUN}?rank=loss&amp;col=all"' in page
    assert f'href="{RUN}?rank=loss&amp;col="' in page
    assert "Default</a>" not in page  # already the default
    chosen = get(client, RUN + "?col=grad_norm")
    assert re.search(f'href="{RUN}"[^>]*>Default</a>', chosen)


def test_a_change_pushes_the_columns_url_without_the_forms_empty_fields(client, ws):
    response = client.get(
        RUN + "?rank=&order=&col=&col=logps/chosen",
        headers={"HX-Request": "true", "HX-Trigger": "columns-form", "HX-Target": "run-live"},
    )
    assert response["HX-Push-Url"] == f"{RUN}?col=logps%2Fchosen"
    assert response.content.decode().lstrip().startswith('<div id="run-live"')
    assert "Vary" in response and "HX-Trigger" in response["Vary"]
    none = client.get(RUN + "?col=", headers={"HX-Request": "true", "HX-Trigger": "columns-form"})
    assert none["HX-Push-Url"] == f"{RUN}?col="


def test_the_live_refresh_keeps_the_columns_and_adds_no_history_entry(client, ws):
    page = get(client, LIVE + "?rank=&col=&col=grad_norm")
    assert f'hx-get="{LIVE}?col=grad_norm"' in page  # the canonical URL, polled
    poll = client.get(
        LIVE + "?col=grad_norm",
        headers={"HX-Request": "true", "HX-Trigger": "run-live", "HX-Target": "run-live"},
    )
    assert "HX-Push-Url" not in poll
    assert metric_headers(poll.content.decode()) == [*KEY, "grad_norm"]


def test_the_pager_keeps_the_columns(client, ws, monkeypatch):
    monkeypatch.setattr("tuner_site.views.runs.CHECKPOINTS_PER_PAGE", 2)
    page = get(client, RUN + "?col=grad_norm")
    assert 'href="?col=grad_norm&amp;page=2"' in page
    second = get(client, RUN + "?col=grad_norm&page=2")
    assert metric_headers(second) == [*KEY, "grad_norm"]
    # A change of columns on page 2 stays on page 2.
    assert '<input type="hidden" name="page" value="2">' in second
    assert f'href="{RUN}?col=all&amp;page=2"' in second


def test_every_value_of_a_column_is_written_with_one_precision(client, ws):
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table(get(client, RUN + "?col=all")), re.S)
    cells = [
        [text(td).split(" @")[0] for td in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in rows
        if "<td" in row
    ]
    columns = list(zip(*cells, strict=True))
    assert len(columns) == 4 + len(EVERY)
    for name, values in zip(["score", *EVERY], columns[3:], strict=True):
        numbers = [v for v in values if v not in ("—", "NaN", "∞", "−∞")]
        if name == "learning_rate":  # scientific, every mantissa as long
            assert {len(v.partition("e")[0]) for v in numbers if v != "0"} == {3}, numbers
            continue
        places = {len(v.rstrip("%").partition(".")[2]) for v in numbers}
        assert len(places) == 1, (name, values)
