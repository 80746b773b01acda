"""A run's curves are drawn once per change of what decides them, not on every request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discovery.logs import log_files
from tuner_site.views import runs as run_views

from .conftest import KTO_RUN as KTO
from .conftest import run_dir

pytestmark = pytest.mark.django_db

PAGE = f"/runs/rtx3090_kto/{KTO}/"


@pytest.fixture
def drawn(monkeypatch, three_runs: Path) -> list[str]:
    """Each drawing of a run's metric charts, by the ranking it was drawn for."""
    calls: list[str] = []
    real = run_views._metric_charts

    def counted(d, history):
        calls.append(d.ranking.metric)
        return real(d, history)

    monkeypatch.setattr(run_views, "_metric_charts", counted)
    return calls


def test_a_finished_runs_charts_are_drawn_once(client, drawn):
    first = client.get(PAGE).content.decode()
    second = client.get(PAGE).content.decode()
    assert len(drawn) == 1
    assert first.count('class="chart') == second.count('class="chart') > 0
    # Another rule is another drawing (a requested metric can get a chart of its own).
    assert client.get(f"{PAGE}?rank=loss&order=min").status_code == 200
    assert drawn == [drawn[0], "loss"]


def test_a_new_line_in_a_log_draws_them_again(client, drawn, three_runs):
    client.get(PAGE)
    log = log_files(run_dir(three_runs, "kto", KTO), three_runs.resolve())[-1]
    last = json.loads(log.read_text().splitlines()[-1])
    with log.open("a") as f:
        f.write(json.dumps({**last, "step": last["step"] + 1, "loss": 9.5}) + "\n")
    client.get(PAGE)
    assert len(drawn) == 2
