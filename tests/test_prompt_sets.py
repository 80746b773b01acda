"""Prompt sets: discovery of every file shape, the seed's API, pages, JSON, admin, CLI."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils.html import escape

from discovery import PromptSetDiscovery
from discovery.prompt_sets import default_description, get_prompt_set, list_prompt_sets
from sampledata import evaluator
from tuner_site.models import PromptSetNote

from .conftest import SHARED_UPSTREAM, needs_upstream

UPSTREAM = SHARED_UPSTREAM


def write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / "Evaluator" / "prompts" / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.fixture
def prompts(workspace: Path) -> Path:
    evaluator.write_prompt_sets(workspace)
    write(workspace, "wrapped.json", json.dumps({"prompts": ["first", "second"], "metadata": {}}))
    write(
        workspace, "regression.json", json.dumps({"cases": [{"id": 7, "prompt": "p", "tags": "x"}]})
    )
    write(
        workspace,
        "lines.jsonl",
        '{"id": "a", "question": "q1", "tags": ["t"]}\n'
        "\n"
        '{"prompt": "q2", "expected_tools": ["x"]}\n',
    )
    write(workspace, "broken.json", '[{"id": "x", "question": "half')
    write(workspace, "wrong_shape.json", '{"questions": []}')
    write(workspace, "bad_case.json", '[{"id": "x"}]')
    write(workspace, "bad_line.jsonl", '{"question": "ok"}\nnot json\n')
    write(workspace, "README.md", "# not a prompt set")
    return workspace


@needs_upstream
def test_it_reads_the_real_upstream_prompt_sets():
    sets = {s.name: s for s in list_prompt_sets(UPSTREAM.resolve())}
    assert (sets["tool_prompts"].count, sets["behavior_prompts"].count) == (44, 51)
    assert sets["behavior_prompts_archived_20251202"].count == 51
    tool = sets["tool_prompts"].cases[0]
    assert tool.id and tool.question and tool.tags and tool.expected_tools
    assert "system" in tool.extra and "expected_context" in tool.extra
    result = PromptSetDiscovery(repo_root=UPSTREAM).discover()
    assert [name for name, _, _ in result][:2] == ["tool_prompts", "behavior_prompts"]


def test_it_finds_every_shape_and_lists_broken_files_with_their_error(prompts):
    sets = {s.name: s for s in list_prompt_sets(prompts)}
    assert "README" not in sets
    assert sets["wrapped"].count == 2 and sets["wrapped"].cases[0].id == "case_0001"
    assert sets["regression"].cases[0].id == "7" and sets["regression"].cases[0].tags == ("x",)
    lines = sets["lines"].cases
    assert [(c.id, c.question) for c in lines] == [("a", "q1"), ("case_0002", "q2")]
    assert lines[1].expected_tools == ("x",)
    for name, says in [
        ("broken", "not valid JSON"),
        ("wrong_shape", "expected a list of cases"),
        ("bad_case", "case 1 has no question"),
        ("bad_line", "line 2 is not a JSON object"),
    ]:
        assert sets[name].count is None and says in sets[name].error


def test_a_broken_prompt_set_is_logged_once_until_it_changes(prompts, caplog):
    caplog.set_level("WARNING", logger="discovery")
    for _ in range(3):
        list_prompt_sets(prompts)
    broken = [r.getMessage() for r in caplog.records if "broken.json" in r.getMessage()]
    assert len(broken) == 1 and "not valid JSON" in broken[0]
    assert not any("wrapped.json" in r.getMessage() for r in caplog.records)


def test_the_seed_api_returns_name_description_count_known_sets_first(prompts):
    result = PromptSetDiscovery(repo_root=prompts).discover()
    assert all(len(item) == 3 for item in result)
    assert [n for n, _, _ in result[:2]] == ["tool_prompts", "behavior_prompts"]
    described = {n: d for n, d, _ in result}
    assert described["regression"] == "Regression"
    custom = PromptSetDiscovery(repo_root=prompts, descriptions={"lines": "Mine"}).discover()
    assert ("lines", "Mine", 2) in custom


def test_count_prompts_list_format():
    assert PromptSetDiscovery._count_prompts(["prompt1", "prompt2", "prompt3"]) == 3


def test_count_prompts_dict_format():
    assert PromptSetDiscovery._count_prompts({"prompts": ["p1", "p2"], "metadata": {}}) == 2
    assert PromptSetDiscovery._count_prompts({"cases": [{}]}) == 1
    assert PromptSetDiscovery._count_prompts({"other": 1}) == 0


def test_names_only_reach_discovered_files(prompts, tmp_path):
    (tmp_path / "secret.json").write_text('["leak"]')
    for name in (
        "../../secret",
        "../prompts/tool_prompts",
        "/etc/passwd",
        "README",
        "tool_prompts.json",
    ):
        assert get_prompt_set(prompts, name) is None
    assert get_prompt_set(prompts, "tool_prompts").count == 12


# Pages, JSON, admin and CLI -----------------------------------------------------------------

pytestmark_db = pytest.mark.django_db


@pytest.fixture
def site(settings, prompts):
    settings.TUNER_WORKSPACE = prompts
    return prompts


@pytestmark_db
def test_the_list_page_shows_name_description_count_tags_size_and_errors(client, site):
    html = client.get("/prompt-sets/").content.decode()
    assert html.index("tool_prompts") < html.index("behavior_prompts") < html.index("regression")
    assert "Tool-calling prompts" in html and ">12<" in html
    assert "?tag=search" in html  # most common tag links to the filtered set
    assert "not valid JSON" in html


@pytestmark_db
def test_the_list_json_has_the_contract_fields(client, site):
    data = json.loads(client.get("/api/prompt-sets/").content)
    by_name = {s["name"]: s for s in data["prompt_sets"]}
    tool = by_name["tool_prompts"]
    assert {"name", "description", "count", "error", "url"} <= set(tool)
    assert (
        tool["count"] == 12
        and tool["error"] is None
        and tool["url"] == "/prompt-sets/tool_prompts/"
    )
    assert by_name["broken"]["count"] is None and "not valid JSON" in by_name["broken"]["error"]


@pytestmark_db
def test_the_set_page_lists_cases_filters_by_tag_and_paginates(client, site):
    html = client.get("/prompt-sets/tool_prompts/").content.decode()
    assert "tool_000" in html and "searchContent" in html
    filtered = client.get("/prompt-sets/tool_prompts/?tag=folder").content.decode()
    assert "tool_001" in filtered and "tool_000" not in filtered
    write(site, "big.json", json.dumps([f"q{i}" for i in range(60)]))
    page3 = client.get("/prompt-sets/big/?page=3").content.decode()
    assert "case_0051" in page3 and "case_0050" not in page3 and "page 3 of 3" in page3
    fragment = client.get("/prompt-sets/tool_prompts/?tag=folder", headers={"HX-Request": "true"})
    assert fragment.content.decode().lstrip().startswith('<section id="cases"')


@pytestmark_db
def test_the_set_json_has_cases(client, site):
    data = json.loads(client.get("/api/prompt-sets/tool_prompts/?tag=folder").content)
    assert data["name"] == "tool_prompts" and data["count"] == 12
    assert {c["id"] for c in data["cases"]} == {"tool_001", "tool_005", "tool_009"}
    assert set(data["cases"][0]) == {"id", "question", "tags", "expected_tools"}


@pytestmark_db
@pytest.mark.parametrize(
    "path", ["nope/", "..%2F..%2Fsecret/", "tool_prompts.json/", "README/", "%2Fetc%2Fpasswd/"]
)
def test_unknown_names_are_404s(client, site, path):
    assert client.get(f"/prompt-sets/{path}").status_code == 404
    response = client.get(f"/api/prompt-sets/{path}")
    assert response.status_code == 404 and "error" in json.loads(response.content)


@pytestmark_db
@pytest.mark.parametrize("query", ["tag=nope", "page=x", "page=9"])
def test_bad_set_parameters_are_400s(client, site, query):
    assert client.get(f"/prompt-sets/tool_prompts/?{query}").status_code == 400


@pytestmark_db
def test_a_staff_user_edits_a_description_in_admin_and_the_pages_show_it(admin_client, site):
    changelist = admin_client.get("/admin/tuner_site/promptsetnote/")
    assert changelist.status_code == 200
    note = PromptSetNote.objects.get(name="tool_prompts")  # rows exist for discovered sets
    response = admin_client.post(
        f"/admin/tuner_site/promptsetnote/{note.pk}/change/",
        {"name": "tool_prompts", "description": "Edited in admin", "display_order": 0},
    )
    assert response.status_code == 302
    assert "Edited in admin" in admin_client.get("/prompt-sets/").content.decode()
    data = json.loads(admin_client.get("/api/prompt-sets/tool_prompts/").content)
    assert data["description"] == "Edited in admin"
    out = StringIO()
    call_command("discover", "prompt-sets", stdout=out)
    assert "Edited in admin" in out.getvalue()


@pytestmark_db
def test_admins_description_box_shows_the_default_and_saving_it_unchanged_stores_nothing(
    admin_client, site
):
    admin_client.get("/admin/tuner_site/promptsetnote/")
    note = PromptSetNote.objects.get(name="tool_prompts")
    url = f"/admin/tuner_site/promptsetnote/{note.pk}/change/"
    default = default_description("tool_prompts")
    form = admin_client.get(url).content.decode()
    assert f">\n{escape(default)}</textarea>" in form  # the text the pages show
    # Sent back as a browser sends a text box (CRLF line endings, a trailing newline).
    sent = {"name": "tool_prompts", "description": default + "\r\n", "display_order": 0}
    assert admin_client.post(url, sent).status_code == 302
    note.refresh_from_db()
    assert note.description == ""  # still the default: a better default later reaches it
    sent["description"] = "Our tool-calling suite"
    admin_client.post(url, sent)
    note.refresh_from_db()
    assert note.description == "Our tool-calling suite"
    edited = admin_client.get(url).content.decode()
    assert ">\nOur tool-calling suite</textarea>" in edited


@pytestmark_db
def test_admins_change_list_shows_and_keeps_defaults_alike(admin_client, site):
    html = admin_client.get("/admin/tuner_site/promptsetnote/").content.decode()
    assert escape(default_description("behavior_prompts")) in html
    notes = list(PromptSetNote.objects.order_by("pk"))
    data = {
        "form-TOTAL_FORMS": str(len(notes)),
        "form-INITIAL_FORMS": str(len(notes)),
        "_save": "Save",
    }
    for i, n in enumerate(notes):
        data |= {
            f"form-{i}-id": str(n.pk),
            f"form-{i}-description": default_description(n.name),
            f"form-{i}-display_order": "0",
        }
    data["form-0-display_order"] = "5"  # one real change, so the row is saved
    response = admin_client.post("/admin/tuner_site/promptsetnote/", data)
    assert response.status_code == 302
    assert set(PromptSetNote.objects.values_list("description", flat=True)) == {""}
    assert PromptSetNote.objects.get(pk=notes[0].pk).display_order == 5


@pytestmark_db
def test_admin_list_editing_changes_order_and_hides_sets(admin_client, site):
    admin_client.get("/admin/tuner_site/promptsetnote/")
    PromptSetNote.objects.filter(name="regression").update(display_order=-1)
    PromptSetNote.objects.filter(name="broken").update(hidden=True)
    names = [
        s["name"] for s in json.loads(admin_client.get("/api/prompt-sets/").content)["prompt_sets"]
    ]
    assert names[0] == "regression" and "broken" not in names


@pytestmark_db
def test_a_row_whose_file_disappeared_shows_as_missing_in_admin(admin_client, site):
    PromptSetNote.objects.create(name="deleted_set", description="gone")
    html = admin_client.get("/admin/tuner_site/promptsetnote/").content.decode()
    assert "deleted_set" in html and "missing" in html
    assert admin_client.get("/prompt-sets/").status_code == 200


@pytestmark_db
def test_an_anonymous_user_is_sent_to_the_login(client, site):
    response = client.get("/admin/tuner_site/promptsetnote/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytestmark_db
def test_discover_prompt_sets_prints_a_table_and_the_apis_json(client, site, capfdbinary):
    out = StringIO()
    call_command("discover", "prompt-sets", stdout=out)
    assert "tool_prompts" in out.getvalue() and "error" in out.getvalue()
    call_command("discover", "prompt-sets", "--json")
    cli = json.loads(capfdbinary.readouterr().out)
    assert cli == json.loads(client.get("/api/prompt-sets/").content)


@pytestmark_db
def test_the_overview_has_a_prompt_set_panel(client, site):
    html = client.get("/").content.decode()
    panel = html[html.index('id="prompt-sets-compact"') :]
    assert "tool_prompts" in panel and "12 cases" in panel
