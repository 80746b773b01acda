"""From run to served model to evaluation, against real loopback servers speaking each API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from discovery.backends import Backend, probe
from discovery.lineage import catalog, model_id, repo_candidates
from discovery.ollama import blobs_of
from discovery.runs import Workspace
from sampledata import upload

from . import fake_servers as fs
from .lineage_fixtures import (
    HUB_KTO,
    KTO_MODEL,
    KTO_NEW_ID,
    KTO_OLD_ID,
    KTO_REPO,
    LOCAL_SFT,
    SFT_ID,
    SFT_MODEL,
    SFT_REPO,
    Chain,
    hash_all,
    llamacpp,
    lmstudio,
    make_chain,
    ollama,
    sha256,
    vllm,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(use_workspace: Path) -> Chain:
    return make_chain(use_workspace)


@pytest.fixture
def servers(settings, chain: Chain) -> Iterator[dict[str, fs.FakeServer]]:
    hash_all(chain.root)
    started = {
        "ollama": ollama(chain),
        "lmstudio": lmstudio(),
        "vllm": vllm(chain),
        "llamacpp": llamacpp(chain),
    }
    settings.OLLAMA_HOST = started["ollama"].host
    settings.LMSTUDIO_HOST = started["lmstudio"].host
    settings.TUNER_OPENAI_BACKENDS = (
        f"vllm={started['vllm'].host},llamacpp={started['llamacpp'].host}"
    )
    yield started
    for server in started.values():
        server.stop()


def get_json(client, url: str):
    response = client.get(url)
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def models_by_id(client) -> dict[str, dict]:
    return {m["id"]: m for m in get_json(client, "/api/models/")["models"]}


def served(row: dict, backend: str) -> list[dict]:
    return [s for s in row["served"] if s["backend"] == backend]


def test_an_ollama_model_made_from_a_runs_gguf_links_exactly_by_blob_digest(client, servers):
    row = models_by_id(client)[SFT_MODEL]
    assert {"id", "url", "repo", "run", "checkpoint", "link", "served", "evaluations"} <= set(row)
    assert row["url"] == f"/models/{SFT_MODEL}/" and row["repo"] == SFT_REPO
    assert (row["run"], row["checkpoint"], row["link"]) == (SFT_ID, "final_model", "exact")
    [local] = served(row, "ollama")
    assert local["name"] == LOCAL_SFT and local["loaded"] is True and local["link"] == "exact"
    assert local["size_vram"] == 7_000_000_000
    assert "nexus-tools-sft-Q8_0.gguf" in local["how"] and local["run"] == SFT_ID


def test_a_vllm_adapter_links_exactly_by_its_root_path(client, servers, chain):
    models = models_by_id(client)
    # A checkpoint served straight from its folder: a model of its own, linked to that run.
    [row] = [m for m in models.values() if any(s["name"] == "kto-ckpt75" for s in m["served"])]
    assert row["id"].startswith("local--") and row["repo"] is None
    assert (row["run"], row["checkpoint"], row["link"]) == (KTO_OLD_ID, "checkpoint-75", "exact")
    assert row["checkpoint_url"] == f"/runs/{KTO_OLD_ID}/checkpoint-75/"
    # The merged upload of the SFT run, served by vLLM: joined to that repo's row.
    [merged] = served(models[SFT_MODEL], "vllm")
    assert merged["name"] == "nexus-sft-merged" and merged["link"] == "exact"
    # llama.cpp names the file it loaded, which lies in the same upload folder.
    [cpp] = served(models[SFT_MODEL], "llamacpp")
    assert cpp["link"] == "exact" and cpp["run"] == SFT_ID


def test_an_hf_co_gguf_name_links_by_name_to_the_newest_upload_of_that_repo(client, servers):
    row = models_by_id(client)[KTO_MODEL]
    [hub] = served(row, "ollama")
    assert hub["name"] == HUB_KTO and hub["link"] == "by name" and hub["loaded"] is False
    assert hub["run"] == KTO_NEW_ID and KTO_REPO in hub["how"]
    # LM Studio lists it as <publisher>/<key>.
    [lms] = served(row, "lmstudio")
    assert lms["name"] == "nexus-tools-kto-GGUF" and lms["link"] == "by name"
    assert (row["run"], row["link"]) == (KTO_NEW_ID, "by name")


def test_two_runs_publishing_one_repo_are_both_shown_newest_first(client, servers):
    row = models_by_id(client)[KTO_MODEL]
    assert [(s["run"], s["checkpoint"]) for s in row["sources"]] == [
        (KTO_NEW_ID, "final_model"),
        (KTO_OLD_ID, "checkpoint-50"),
    ]
    detail = get_json(client, f"/api/models/{KTO_MODEL}/")
    assert [p["run"] for p in detail["publications"]] == [KTO_NEW_ID, KTO_OLD_ID]
    assert detail["publications"][1]["labels"] == ["LoRA", "GGUF Q4_K_M, Q8_0"]
    # Each evaluation goes to the upload the hub held when it ran.
    evaluations = {e["name"]: e["run"] for e in row["evaluations"]}
    assert evaluations == {"eval_kto_new": KTO_NEW_ID, "eval_kto_old": KTO_OLD_ID}
    html = client.get(f"/models/{KTO_MODEL}/").content.decode()
    assert html.index(KTO_NEW_ID) < html.index(KTO_OLD_ID)


def test_an_evaluation_older_than_the_served_file_links_to_the_upload_of_its_time(
    client, servers, chain
):
    # The hub name now serves exactly the newer run's file...
    newer = chain.kto_new / "nexus-tools-kto" / "gguf" / "nexus-tools-kto-Q4_K_M.gguf"
    servers["ollama"].show[HUB_KTO] = fs.modelfile(HUB_KTO, sha256(newer))
    row = models_by_id(client)[KTO_MODEL]
    assert served(row, "ollama")[0]["link"] == "exact"
    links = {e["name"]: (e["run"], e["link"]) for e in row["evaluations"]}
    # ...which did not exist yet when the older result was made.
    assert links == {"eval_kto_new": (KTO_NEW_ID, "exact"), "eval_kto_old": (KTO_OLD_ID, "by name")}


def test_a_model_that_links_to_nothing_is_listed_without_a_run(client, servers):
    models = models_by_id(client)
    [gemma] = [m for m in models.values() if m["title"] == "gemma3:latest"]
    assert (gemma["run"], gemma["checkpoint"], gemma["link"], gemma["repo"]) == (
        None,
        None,
        None,
        None,
    )
    assert served(gemma, "ollama")[0]["link"] is None
    # The result that names it without a tag joins it (Ollama's `gemma3` is `gemma3:latest`).
    assert [e["name"] for e in gemma["evaluations"]] == ["eval_base"]
    [base] = [m for m in models.values() if m["title"] == "mistralai/Mistral-7B-v0.3"]
    assert base["link"] is None and base["run"] is None


def test_evaluations_are_linked_through_the_served_model_to_the_run(client, servers):
    found = {e["name"]: e for e in get_json(client, "/api/evaluations/")["evaluations"]}
    sft = found["eval_sft"]
    assert (sft["run"], sft["checkpoint"], sft["link"]) == (SFT_ID, "final_model", "exact")
    assert sft["model_url"] == f"/models/{SFT_MODEL}/"
    assert sft["served"] == [{"backend": "ollama", "name": LOCAL_SFT, "loaded": True}]
    assert found["eval_base"]["run"] is None and found["eval_base"]["link"] is None
    only_old = get_json(client, f"/api/evaluations/?run={KTO_OLD_ID}")["evaluations"]
    assert [e["name"] for e in only_old] == ["eval_kto_old"]
    html = client.get("/evaluations/eval_sft/").content.decode()
    assert f'href="/runs/{SFT_ID}/"' in html and f'href="/runs/{SFT_ID}/final_model/"' in html
    assert "exact" in html and f'href="/models/{SFT_MODEL}/"' in html


def test_an_unknown_run_filter_is_a_clear_400(client, chain):
    response = client.get("/evaluations/?run=nope/nope")
    assert response.status_code == 400 and b"run must be" in response.content


def test_the_run_page_shows_published_served_and_evaluated(client, servers, chain):
    html = client.get(f"/runs/{SFT_ID}/").content.decode()
    panel = html[html.index('id="run-lineage"') :]
    assert "Published as" in panel and SFT_REPO in panel
    assert "merged 16-bit, GGUF Q4_K_M, Q8_0" in panel
    assert "https://huggingface.co/professorsynapse/nexus-tools-sft" in panel
    assert "nexus-tools-sft-Q8_0.gguf" in panel and "4.0\xa0KB" in panel
    assert sha256(chain.sft_gguf)[:12] in panel  # hashed, so no "hashing…"
    assert f'href="/models/{SFT_MODEL}/"' in panel and "loaded" in panel
    data = get_json(client, f"/api/runs/{SFT_ID}/")
    assert data["published"][0]["repo"] == SFT_REPO
    assert data["published"][0]["gguf"][2]["sha256"] == sha256(chain.sft_gguf)
    assert [m["id"] for m in data["models"]] == [SFT_MODEL]
    assert get_json(client, f"/api/runs/{SFT_ID}/lineage/")["published"] == data["published"]


def test_an_older_runs_page_shows_only_what_came_from_it(client, servers):
    data = get_json(client, f"/api/runs/{KTO_OLD_ID}/lineage/")
    models = {m["id"]: m for m in data["models"]}
    kto = models[KTO_MODEL]
    assert (kto["run"], kto["checkpoint"]) == (KTO_OLD_ID, "checkpoint-50")
    assert [e["name"] for e in kto["evaluations"]] == ["eval_kto_old"]
    assert kto["served"] == []  # the hub name stands for the newer upload now
    assert any(m["checkpoint"] == "checkpoint-75" for m in models.values())


def test_backends_rows_link_to_their_run(client, servers, chain):
    html = client.get("/backends/").content.decode().replace("<wbr>", "")  # break points in names
    ollama_panel = html[html.index('data-backend="ollama"') : html.index('data-backend="lmstudio"')]
    row = ollama_panel[ollama_panel.index(LOCAL_SFT) :]
    row = row[: row.index("</tr>")]
    assert f'href="/runs/{SFT_ID}/"' in row and "exact" in row
    data = get_json(client, "/api/backends/")
    models = {m["id"]: m for b in data["backends"] for m in b["models"]}
    assert models[LOCAL_SFT]["lineage"]["run"] == SFT_ID
    assert models[LOCAL_SFT]["lineage"]["model_id"] == SFT_MODEL
    assert models[LOCAL_SFT]["blobs"] == [sha256(chain.sft_gguf)]
    assert models["gemma3:latest"]["lineage"]["link"] is None


def test_ollama_show_is_asked_once_per_digest_and_again_when_it_changes(client, servers):
    server = servers["ollama"]
    for _ in range(3):
        client.get("/api/backends/")
    assert sorted(server.shown) == sorted([LOCAL_SFT, HUB_KTO, "gemma3:latest"])
    tags = server.routes["/api/tags"]["models"]
    tags[0] = {**tags[0], "digest": "f0" * 32}  # `ollama create` made it again
    client.get("/api/backends/")
    assert sorted(server.shown) == sorted([LOCAL_SFT, LOCAL_SFT, HUB_KTO, "gemma3:latest"])


def test_a_slow_api_show_does_not_slow_the_servers_page(client, settings, servers):
    # Wide margins so a loaded machine cannot fail it: /api/show would take 30 s, the whole
    # budget is 4 s, and show has half of it (2 s); given the whole budget it would take 4 s.
    settings.TUNER_BACKEND_TIMEOUT = 4.0
    server = servers["ollama"]
    server.show_seconds = 30.0
    started = time.monotonic()
    data = get_json(client, "/api/backends/")
    assert time.monotonic() - started < 3.6
    status = next(b for b in data["backends"] if b["name"] == "ollama")
    assert status["available"] is True and len(status["models"]) == 3
    # /api/show had half the budget: the answer came well before the timeout.
    assert status["latency_ms"] < 3000
    assert all(m["blobs"] is None for m in status["models"])  # asked on a later refresh
    assert len(server.shown) == 1
    server.show_seconds = 0.0
    server.show_release.set()
    data = get_json(client, "/api/backends/")
    status = next(b for b in data["backends"] if b["name"] == "ollama")
    assert all(m["blobs"] is not None for m in status["models"])


def test_a_broken_manifest_is_listed_with_its_error_and_nothing_else_is_lost(
    client, servers, chain
):
    manifest = chain.sft / "nexus-tools-sft" / "upload_manifest.json"
    manifest.write_text('{"model_name": "professorsynapse/nexus-tools-sft", "formats_cr')
    data = get_json(client, f"/api/runs/{SFT_ID}/lineage/")
    [pub] = data["published"]
    assert pub["repo"] is None and "not a JSON object" in pub["error"]
    assert [g["name"] for g in pub["gguf"]] == [
        "nexus-tools-sft.gguf",
        "nexus-tools-sft-Q4_K_M.gguf",
        "nexus-tools-sft-Q8_0.gguf",
    ]
    assert [f["name"] for f in pub["folders"]] == ["merged-16bit/"]
    # Its GGUF file still links the Ollama model exactly, now to the run and its final model.
    [row] = data["models"]
    assert row["repo"] is None and row["link"] == "exact" and row["checkpoint"] == "final_model"
    assert served(row, "ollama")[0]["name"] == LOCAL_SFT
    # The other runs' uploads are untouched.
    assert KTO_MODEL in models_by_id(client)
    assert "not a JSON object" in client.get(f"/runs/{SFT_ID}/").content.decode()


def test_a_real_upstream_result_links_by_name_to_a_run_publishing_that_repo(
    client, chain, tmp_path
):
    from .conftest import upstream_file

    real = upstream_file("Evaluator", "results", "full_coverage.json")
    (chain.root / "Evaluator" / "results" / "full_coverage.json").write_bytes(real.read_bytes())
    upload.write_upload(chain.sft / "final_model", "professorsynapse/nexus-tools-v0.0.1")
    found = {e["name"]: e for e in get_json(client, "/api/evaluations/")["evaluations"]}
    real_result = found["full_coverage"]
    assert real_result["link"] == "by name" and real_result["run"] == SFT_ID
    assert real_result["model_id"] == "professorsynapse--nexus-tools-v0.0.1"


def test_with_no_server_the_chain_is_published_and_evaluated(client, chain):
    models = models_by_id(client)
    assert set(models) >= {SFT_MODEL, KTO_MODEL}
    assert models[KTO_MODEL]["served"] == [] and models[KTO_MODEL]["link"] == "by name"
    assert models[SFT_MODEL]["link"] == "exact"  # published, and its result names no server
    html = client.get("/models/").content.decode().replace("<wbr>", "")
    assert SFT_REPO in html and KTO_REPO in html
    assert "eval_kto_new" in html and "eval_kto_old" not in html  # the latest per prompt set
    assert "tool_prompts" in html


def test_an_unknown_model_is_a_404(client, chain):
    assert client.get("/models/nope/").status_code == 404
    assert client.get("/api/models/nope/").status_code == 404
    assert client.get("/models/" + "a" * 300 + "/").status_code == 404


def test_discover_models_and_lineage_print_what_the_api_serves(client, servers, capfdbinary):
    call_command("discover", "models", "--json")
    cli = json.loads(capfdbinary.readouterr().out)
    api = get_json(client, "/api/models/")  # one page here: the command prints every model
    assert cli["models"] == api["models"] and api["count"] == len(cli["models"])
    call_command("discover", "lineage", SFT_ID, "--json")
    cli = json.loads(capfdbinary.readouterr().out)
    assert cli == get_json(client, f"/api/runs/{SFT_ID}/lineage/")
    out = StringIO()
    call_command("discover", "lineage", stdout=out)
    text = out.getvalue()
    assert f"published as {SFT_REPO}" in text and f"served by ollama as {LOCAL_SFT}" in text
    assert KTO_OLD_ID in text and "checkpoint-50" in text
    out = StringIO()
    call_command("discover", "models", "--backend", "lmstudio", stdout=out)
    assert KTO_REPO in out.getvalue() and SFT_REPO not in out.getvalue()


def test_model_ids_and_name_rules():
    assert model_id(("repo", "professorsynapse/nexus-tools-sft")) == SFT_MODEL
    local = model_id(("name", "gemma3:latest"))
    assert local.startswith("local--gemma3-latest-") and local == model_id(
        ("name", "gemma3:latest")
    )
    assert local != model_id(("name", "Gemma3:latest"))
    assert repo_candidates("hf.co/User/Repo-GGUF:Q4_K_M")[-1] == "user/repo"
    real = "huggingface.co/professorsynapse/nexus-tools-v0.0.1-Q8_0-GGUF:latest"
    assert "professorsynapse/nexus-tools-v0.0.1" in repo_candidates(real)
    assert repo_candidates("gemma3:latest") == ()
    assert repo_candidates("a/b/c") == ()
    text = fs.modelfile("x", "ab" * 32, adapter="cd" * 32)
    assert blobs_of(text) == ("ab" * 32, "cd" * 32)  # the commented `# FROM x` is no blob
    assert blobs_of("FROM llama3.2\n") == ()


def test_the_probe_reads_show_root_and_publisher(chain):
    hash_all(chain.root)
    servers = [ollama(chain), vllm(chain), lmstudio()]
    try:
        o, v, lms = (
            probe(Backend(k, kind, s.url))
            for k, kind, s in zip(
                ("o", "v", "l"), ("ollama", "openai", "lmstudio"), servers, strict=True
            )
        )
    finally:
        for s in servers:
            s.stop()
    local = next(m for m in o.models if m.id == LOCAL_SFT)
    assert local.blobs == (sha256(chain.sft_gguf),) and local.digest == "d1" * 32
    adapter = next(m for m in v.models if m.id == "kto-ckpt75")
    assert adapter.root and adapter.root.endswith("checkpoint-75") and adapter.parent
    assert lms.models[0].publisher == "professorsynapse"
    cat = catalog(Workspace.at(chain.root))
    assert not cat.hashing and cat.by_sha[sha256(chain.sft_gguf)][1].quantization == "Q8_0"


def test_compare_shows_rates_side_by_side_and_the_cases_that_changed(client, chain):
    data = get_json(client, "/api/evaluations/compare/?e=eval_kto_old&e=eval_kto_new")
    assert [e["name"] for e in data["evaluations"]] == ["eval_kto_old", "eval_kto_new"]
    assert [e["run"] for e in data["evaluations"]] == [KTO_OLD_ID, KTO_NEW_ID]
    assert [c["pass_rate"] for c in data["overall"]] == [10 / 12, 10 / 12]
    search = next(t for t in data["by_tag"] if t["tag"] == "search")["results"]
    assert search[0]["delta"] is None and search[1]["delta"] == pytest.approx(1 / 6)
    assert [(d["case_id"], d["change"], d["passed"]) for d in data["differing_cases"]] == [
        ("tool_003", "regressed", [True, False]),
        ("tool_002", "fixed", [False, True]),
    ]
    html = client.get("/evaluations/compare/?e=eval_kto_old&e=eval_kto_new").content.decode()
    assert "regressed" in html and "+17%" in html and "−33%" in html


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("e=a&e=b&e=c&e=d&e=eval_sft", "at most 4"),
        ("e=nope", "unknown: 'nope'"),
    ],
)
def test_compare_refuses_what_it_cannot_show(client, chain, query, says):
    response = client.get(f"/api/evaluations/compare/?{query}")
    assert response.status_code == 400 and says in json.loads(response.content)["error"]


def test_compare_with_nothing_chosen_offers_the_results(client, chain):
    html = client.get("/evaluations/compare/").content.decode()
    assert 'name="e"' in html and "eval_kto_new" in html
    page = client.get("/evaluations/eval_kto_new/").content.decode()
    assert "/evaluations/compare/?e=eval_kto_old&amp;e=eval_kto_new" in page


def test_the_demo_shows_the_chain_without_any_server(client, settings, demo_workspace):
    from sampledata.demo import KTO_REPO as DEMO_KTO
    from sampledata.demo import SFT_REPO as DEMO_SFT

    settings.TUNER_WORKSPACE = demo_workspace
    models = models_by_id(client)
    kto = models[DEMO_KTO.replace("/", "--")]
    assert len(kto["sources"]) == 2 and kto["link"] == "by name"
    checkpoint_275 = next(e for e in kto["evaluations"] if e["name"] == "tool_prompts_kto_ckpt275")
    assert checkpoint_275["checkpoint"] == "checkpoint-275"
    assert models[DEMO_SFT.replace("/", "--")]["evaluations"][0]["link"] == "by name"
    unlinked = [m for m in models.values() if m["run"] is None]
    assert [m["title"] for m in unlinked] == ["mistral:7b-instruct"]
