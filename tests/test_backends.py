"""Inference servers: each documented API and its older variants, failures, cache, pages, JSON."""

from __future__ import annotations

import json
import re
import time
from io import StringIO

import httpx
import pytest
from django.core.management import call_command

from discovery import ModelDiscovery
from discovery.backends import Backend, configured, normalize_url, probe, statuses
from discovery.http import Deadline

from . import fake_servers as fs


def backend(kind: str, server: fs.FakeServer, name: str | None = None) -> Backend:
    return Backend(name or kind, "openai" if kind in {"vllm", "llamacpp"} else kind, server.url)


def models_by_id(status):
    return {m.id: m for m in status.models}


def test_ollama_reports_version_models_and_which_are_loaded(serve):
    s = probe(backend("ollama", serve("ollama")))
    assert s.available and s.error is None and s.version == "0.12.6" and s.latency_ms >= 0
    m = models_by_id(s)
    loaded = m["nexus-tools-sft:q8"]
    assert (
        loaded.loaded is True and loaded.size_vram == 5772392750 and loaded.context_length == 8192
    )
    assert loaded.expires_at == "2025-11-28T12:05:00.000000000Z"
    gemma = m["gemma3:latest"]
    assert gemma.loaded is False and gemma.size == 3338801804
    assert (gemma.family, gemma.parameter_size, gemma.quantization) == ("gemma3", "4.3B", "Q4_K_M")
    assert [x.id for x in s.models][0] == "nexus-tools-sft:q8"  # loaded first


def test_an_old_ollama_without_model_key_or_ps_still_lists_its_models(serve):
    s = probe(backend("ollama", serve("ollama", "old")))
    assert s.available and s.version == "0.1.20"
    assert {m.id for m in s.models} == {"gemma3:latest", "nexus-tools-sft:q8"}
    assert all(m.loaded is None for m in s.models)


def test_an_idle_ollama_has_nothing_loaded(serve):
    s = probe(backend("ollama", serve("ollama", "idle")))
    assert s.available and all(m.loaded is False for m in s.models)


def test_lmstudio_v1_uses_loaded_instances(serve):
    s = probe(backend("lmstudio", serve("lmstudio", "v1")))
    assert s.available and s.api == "lmstudio-v1"
    m = models_by_id(s)
    qwen = m["qwen2.5-7b-instruct"]
    assert qwen.loaded is True and qwen.context_length == 8192 and qwen.quantization == "Q4_K_M"
    assert qwen.size == 4683073504 and qwen.family == "qwen2" and qwen.parameter_size == "7B"
    assert m["mistral-7b-instruct-v0.3"].loaded is False
    assert m["mistral-7b-instruct-v0.3"].format == "mlx"


def test_lmstudio_v0_is_used_when_v1_answers_unexpected_endpoint(serve):
    server = serve("lmstudio", "v0")
    s = probe(backend("lmstudio", server))
    assert s.available and s.api == "lmstudio-v0"
    m = models_by_id(s)
    llama = m["meta-llama-3.1-8b-instruct"]
    assert (
        llama.loaded is True and llama.context_length == 131072 and llama.quantization == "Q4_K_M"
    )
    assert m["text-embedding-nomic-embed-text-v1.5"].loaded is False
    assert m["text-embedding-nomic-embed-text-v1.5"].type == "embeddings"
    assert server.hits == ["/api/v1/models", "/api/v0/models"]


def test_an_old_lmstudio_falls_back_to_ids_only_with_loaded_unknown(serve):
    s = probe(backend("lmstudio", serve("lmstudio", "openai")))
    assert s.available and s.api == "openai"
    assert [(m.id, m.loaded) for m in s.models] == [("qwen2.5-7b-instruct", None)]


def test_vllm_lists_models_and_lora_adapters_as_loaded(serve):
    s = probe(backend("vllm", serve("vllm")))
    m = models_by_id(s)
    assert m["nexus-kto"].parent == "mistralai/Mistral-7B-v0.3"
    assert all(x.loaded for x in s.models) and m["nexus-kto"].context_length == 32768


def test_llamacpp_reads_meta_and_tolerates_null_meta_while_loading(serve):
    m = probe(backend("llamacpp", serve("llamacpp"))).models[0]
    assert (m.context_length, m.size, m.parameter_size) == (131072, 4912898304, "8.0B")
    loading = probe(backend("llamacpp", serve("llamacpp", "loading")))
    assert loading.available and loading.models[0].size is None


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("error", "answered with an error (HTTP 500"),
        ("html", "not JSON. Is another program using that port?"),
        ("shape", "JSON of an unexpected shape"),
        ("slow", "did not answer within 0.5 s"),
    ],
)
@pytest.mark.parametrize("kind", ["ollama", "lmstudio", "vllm"])
def test_every_failure_is_unavailable_with_an_actionable_message(serve, kind, mode, says):
    server = serve(kind, "v1" if kind == "lmstudio" else "", mode)
    started = time.monotonic()
    s = probe(backend(kind, server), timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert s.available is False and s.models == ()
    assert says in s.error


def test_a_refused_connection_says_how_to_start_the_server():
    port = fs.free_port()
    s = probe(Backend("ollama", "ollama", f"http://127.0.0.1:{port}"))
    assert s.error == (
        f"Ollama is not running at 127.0.0.1:{port}. "
        "Start it with `ollama serve`, or set `OLLAMA_HOST`."
    )
    lms = probe(Backend("lmstudio", "lmstudio", f"http://127.0.0.1:{port}"))
    assert "LM Studio is not running" in lms.error and "LMSTUDIO_HOST" in lms.error


def test_backends_are_queried_concurrently(serve):
    slow = [serve("ollama", mode="slow") for _ in range(3)]
    started = time.monotonic()
    result = statuses([backend("ollama", s, f"o{i}") for i, s in enumerate(slow)], 0.5, 0)
    assert time.monotonic() - started < 1.2
    assert [r.available for r in result] == [False] * 3


def test_results_are_cached_for_a_few_seconds(serve):
    server = serve("ollama")
    backends = [backend("ollama", server)]

    def listings() -> int:  # /api/show is asked once per model digest, cached or not
        return len([h for h in server.hits if h != "/api/show"])

    statuses(backends, 1.0, 30)
    hits = listings()
    statuses(backends, 1.0, 30)
    assert listings() == hits
    statuses(backends, 1.0, 0)
    assert listings() == 2 * hits


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("http://10.0.0.5:9999/", "http://10.0.0.5:9999"),
        ("https://ollama.lan", "https://ollama.lan"),
        ("[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_ollama_host_follows_ollamas_own_convention(value, url):
    assert normalize_url(value, 11434) == url


def test_backends_can_be_switched_off_and_openai_ones_named():
    bs = configured("", "127.0.0.1:1234", "vllm=127.0.0.1:8000, llama=http://127.0.0.1:8080")
    assert [(b.name, b.kind, b.url) for b in bs] == [
        ("lmstudio", "lmstudio", "http://127.0.0.1:1234"),
        ("vllm", "openai", "http://127.0.0.1:8000"),
        ("llama", "openai", "http://127.0.0.1:8080"),
    ]
    with pytest.raises(ValueError, match="name=url"):
        configured("", "", "just-a-url")


def test_the_seeds_model_discovery_returns_names_or_an_empty_list(serve, monkeypatch):
    server = serve("ollama")
    monkeypatch.setenv("OLLAMA_HOST", server.host)
    monkeypatch.setenv("LMSTUDIO_HOST", f"127.0.0.1:{fs.free_port()}")
    assert set(ModelDiscovery.discover("ollama")) == {"gemma3:latest", "nexus-tools-sft:q8"}
    assert ModelDiscovery().discover("lmstudio") == []
    assert ModelDiscovery.discover("nonexistent") == []
    assert "LM Studio is not running" in ModelDiscovery.status("lmstudio").error


def test_the_parsers_accept_a_mock_transport_too():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=fs.routes("vllm", "")["/v1/models"])

    from discovery import openai_compat

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        probe_result = openai_compat.fetch(client, "http://vllm", Deadline(1.0))
    assert [m.id for m in probe_result.models] == ["mistralai/Mistral-7B-v0.3", "nexus-kto"]


# Pages, JSON and CLI ------------------------------------------------------------------------


@pytest.fixture
def configured_servers(settings, serve, db, use_workspace):
    ollama, lms = serve("ollama"), serve("lmstudio", "v1")
    down = fs.free_port()
    settings.OLLAMA_HOST = ollama.host
    settings.LMSTUDIO_HOST = lms.host
    settings.TUNER_OPENAI_BACKENDS = f"vllm=127.0.0.1:{down}"
    return ollama, lms, down


def test_the_backends_json_has_the_contract_fields(client, configured_servers):
    data = json.loads(client.get("/api/backends/").content)
    by_name = {b["name"]: b for b in data["backends"]}
    assert set(by_name) == {"ollama", "lmstudio", "vllm"}
    o = by_name["ollama"]
    assert {"name", "kind", "url", "available", "error", "version", "latency_ms", "models"} <= set(
        o
    )
    assert o["available"] is True and o["error"] is None and o["version"] == "0.12.6"
    model = o["models"][0]
    assert {
        "id",
        "loaded",
        "size",
        "quantization",
        "family",
        "parameter_size",
        "context_length",
        "size_vram",
    } <= set(model)
    assert model["loaded"] is True and model["size_vram"] == 5772392750
    v = by_name["vllm"]
    assert v["kind"] == "openai" and v["available"] is False and v["models"] == []
    assert "not reachable" in v["error"] or "not running" in v["error"]


def test_the_backends_page_shows_each_server_loaded_models_first(client, configured_servers):
    html = client.get("/backends/").content.decode().replace("<wbr>", "")  # break points in names
    assert html.index("nexus-tools-sft:q8") < html.index("gemma3:latest")
    assert "version 0.12.6" in html and "5.4\xa0GB" in html and "75% on GPU" in html
    assert "unavailable" in html and "TUNER_OPENAI_BACKENDS" in html


def _normalize(html: str) -> str:
    # Latency differs between two requests; everything else must be identical markup.
    return re.sub(r"answered in \d+ ms", "", html).strip()


def _region(page: str, start_tag: str) -> str:
    """The element that opens with `start_tag`, through its matching end tag.

    Found by nesting, not by the fragment's length: a latency one digit longer in one of the
    two answers ("answered in 99 ms", then "in 104 ms") would shift a length-based cut.
    """
    start = page.index(start_tag)
    name = start_tag[1:].split()[0]
    depth = 0
    for m in re.compile(rf"<(/?){name}\b[^>]*>").finditer(page, start):
        depth += -1 if m[1] else 1
        if depth == 0:
            return page[start : m.end()]
    raise AssertionError(f"{start_tag} is never closed")


@pytest.mark.parametrize(
    ("target", "tag", "page_url"),
    [
        ("backends-panels", '<div id="backends-panels"', "/backends/"),
        ("backends-compact", '<section id="backends-compact"', "/"),
    ],
)
def test_the_refresh_endpoint_renders_the_same_fragment_the_page_includes(
    client, configured_servers, target, tag, page_url
):
    fragment = client.get(
        "/backends/", headers={"HX-Request": "true", "HX-Target": target}
    ).content.decode()
    assert fragment.lstrip().startswith(tag) and "<html" not in fragment
    page = client.get(page_url).content.decode()
    assert _normalize(fragment) == _normalize(_region(page, tag))


def test_a_region_is_cut_by_nesting_so_latencies_of_other_lengths_still_match():
    # The flaky failure's cause: the region was cut at the fragment's length, so "99 ms" in
    # the fragment and "104 ms" in the page shifted the cut by a character.
    fragment = '<div id="p"><div><p>answered in 99 ms</p></div></div>'
    page = f"<main>{fragment.replace('99', '104')}<p>after</p></main>"
    region = _region(page, '<div id="p"')
    assert region == '<div id="p"><div><p>answered in 104 ms</p></div></div>'
    assert _normalize(fragment) == _normalize(region)


def test_a_server_that_goes_down_keeps_its_last_models_in_view_as_last_seen(
    client, configured_servers, monkeypatch
):
    ollama, _, _ = configured_servers
    monkeypatch.setenv("OLLAMA_HOST", ollama.host)
    assert "gemma3:latest" in ModelDiscovery.discover("ollama")
    first = json.loads(client.get("/api/backends/").content)["backends"][0]
    assert first["available"] is True and first["last_seen"] is None
    ollama.mode = "error"
    down = json.loads(client.get("/api/backends/").content)["backends"][0]
    assert down["available"] is False and down["models"] == [] and "HTTP 500" in down["error"]
    seen = down["last_seen"]
    assert seen["version"] == "0.12.6" and seen["at"].endswith("+00:00")
    assert [m["id"] for m in seen["models"]][0] == "nexus-tools-sft:q8"
    assert seen["models"][0]["loaded"] is True
    html = client.get("/backends/").content.decode().replace("<wbr>", "")
    panel = html[html.index('data-backend="ollama"') : html.index('data-backend="lmstudio"')]
    assert "Last answered" in panel and "was loaded" in panel and "gemma3:latest" in panel
    assert "last answered" in client.get("/").content.decode()
    # The seed's call still says "no models" while the server is down.
    assert ModelDiscovery.discover("ollama") == []
    ollama.mode = "ok"
    back = json.loads(client.get("/api/backends/").content)["backends"][0]
    assert back["available"] is True and back["last_seen"] is None


def test_a_server_never_seen_up_has_no_last_seen(client, configured_servers):
    vllm = json.loads(client.get("/api/backends/").content)["backends"][2]
    assert vllm["available"] is False and vllm["last_seen"] is None
    assert "Last answered" not in client.get("/backends/").content.decode()


@pytest.mark.django_db
def test_pages_answer_quickly_when_a_backend_hangs(client, settings, serve, use_workspace):
    hanging = serve("ollama", mode="slow")
    settings.OLLAMA_HOST = hanging.host
    settings.TUNER_BACKEND_TIMEOUT = 1.5
    for url in ("/backends/", "/api/backends/", "/"):
        started = time.monotonic()
        response = client.get(url)
        assert response.status_code == 200
        assert time.monotonic() - started < 3.0


def test_discover_backends_prints_a_table_and_the_apis_json(configured_servers, capfdbinary):
    out = StringIO()
    call_command("discover", "backends", stdout=out)
    text = out.getvalue()
    assert "nexus-tools-sft:q8" in text and "loaded" in text and "unavailable" in text
    call_command("discover", "backends", "--backend", "ollama", "--json")
    data = json.loads(capfdbinary.readouterr().out)
    assert [b["name"] for b in data["backends"]] == ["ollama"]


def test_what_api_show_said_is_remembered_by_digest_for_a_bounded_number_of_models(
    monkeypatch,
):
    from discovery import ollama

    monkeypatch.setattr(ollama, "shown", ollama._Shown(size=2))
    tags = [fs.ollama_model(f"m{i}:latest", f"{i:x}" * 64) for i in range(3)]
    blob = {m["name"]: f"{i + 10:x}" * 64 for i, m in enumerate(tags)}
    show = {name: fs.modelfile(name, b) for name, b in blob.items()}

    def asked(models: list[dict]) -> list[str]:
        """What a server with `models` is asked about, and that each model's blobs are known."""
        routes = {"/api/tags": {"models": models}, "/api/ps": {"models": []}}
        server = fs.FakeServer("ollama", routes=routes, show=show).start()
        try:
            s = probe(Backend("o", "ollama", server.url), 5.0)
        finally:
            server.stop()
        assert [m.blobs for m in s.models] == [(blob[m.id],) for m in s.models]
        return sorted(server.shown)

    assert asked(tags) == ["m0:latest", "m1:latest", "m2:latest"]
    assert len(ollama.shown) == 2  # the least recently seen (m0) was forgotten
    # The same models (the same digests) on another server are not asked about again...
    assert asked(tags[1:]) == []
    # ...but the forgotten one is.
    assert asked(tags[:1]) == ["m0:latest"]
    assert ollama.SHOW_REMEMBERED == 20_000  # the README says so
