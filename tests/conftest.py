from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from discovery import caches
from discovery.hashing import hasher
from discovery.logindex import indexer
from sampledata import demo
from sampledata import runs as wb

REPO = Path(__file__).resolve().parent.parent
# The upstream training project (its Evaluator, real logs, results and prompt sets), checked out
# beside this one; a clone on its own skips the tests that need it, with this reason.
SHARED_UPSTREAM = REPO.parent / "shared" / "upstream"
NO_UPSTREAM = "needs ../shared/upstream beside this checkout (README: Development)"
needs_upstream = pytest.mark.skipif(not SHARED_UPSTREAM.is_dir(), reason=NO_UPSTREAM)


def upstream_file(*parts: str) -> Path:
    """A file of the upstream project; the calling test skips when it is not beside this one."""
    path = SHARED_UPSTREAM.joinpath(*parts)
    if not path.exists():
        pytest.skip(NO_UPSTREAM)
    return path


CHROMIUM = Path("/usr/bin/chromium")


DB_FIXTURES = {"db", "transactional_db", "admin_client", "admin_user", "django_user_model"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `make test-db` selects database tests by this marker: a test that reaches the database
    # through a fixture alone carries it too. One already marked keeps its own marker: a bare
    # one added here would be the closest and turn `django_db(transaction=True)` off.
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("django_db") is None and DB_FIXTURES & fixtures:
            item.add_marker(pytest.mark.django_db)
        # Chromium makes these the slow part of the suite: `-m "not browser"` leaves them out.
        if "browser" in fixtures:
            item.add_marker(pytest.mark.browser)
        # `make test` spreads tests over processes (pytest-xdist, --dist loadgroup): the tests
        # of a module-scoped fixture share one, so it is built once, not once a process.
        defs = getattr(item, "_fixtureinfo", None)
        scopes = {d.scope for ds in (defs.name2fixturedefs.values() if defs else ()) for d in ds}
        if "module" in scopes:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    # Evaluation tests run real worker processes on the test database: SQLite's in-memory
    # one cannot be shared with them, so SQLite tests use a file.
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"]:
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Caches are keyed by path and file identity; clearing keeps tests independent anyway.
    caches.clear_all()
    indexer.configure(None)  # tests that want persistence use their own store
    # Files are hashed as soon as they are seen; tests that want a settle time set their own.
    hasher.configure(None, settle_s=0.0)
    yield


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    # Tests make users; a deliberately slow hasher would cost a second per user on 2 cores.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_real_backends(settings, tmp_path_factory) -> None:
    # Neither this machine's demo workspace nor what runs on its default ports may leak in.
    settings.TUNER_WORKSPACE = tmp_path_factory.getbasetemp() / "no-workspace-configured"
    settings.OLLAMA_HOST = ""
    settings.LMSTUDIO_HOST = ""
    settings.TUNER_OPENAI_BACKENDS = ""
    settings.TUNER_BACKEND_CACHE_SECONDS = 0
    settings.TUNER_RUN_DIRS = []


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace with the upstream top-level folders."""
    root = tmp_path / "ws"
    (root / "Trainers").mkdir(parents=True)
    (root / "Evaluator" / "prompts").mkdir(parents=True)
    return root.resolve()


# Three runs most page tests use: a finished SFT run (with eval_loss), a finished KTO run,
# and a KTO run training right now.
SFT_RUN, KTO_RUN, RUNNING_RUN = "20251101_100000", "20251108_100000", "20251109_100000"


@pytest.fixture
def three_runs(use_workspace: Path) -> Path:
    wb.make_run(
        use_workspace, "sft", started(SFT_RUN), max_steps=100, save_every=25, eval_every=25, seed=1
    )
    wb.make_run(use_workspace, "kto", started(KTO_RUN), max_steps=100, save_every=25, seed=2)
    age(use_workspace / "Trainers", 7200)
    wb.make_run(
        use_workspace,
        "kto",
        started(RUNNING_RUN),
        max_steps=100,
        done=40,
        save_every=20,
        completed=False,
        seed=3,
    )
    return use_workspace


@pytest.fixture
def demo_workspace(tmp_path: Path) -> Path:
    return demo.build_demo((tmp_path / "demo").resolve())


@pytest.fixture
def use_workspace(settings, workspace: Path) -> Path:
    settings.TUNER_WORKSPACE = workspace
    return workspace


def run_dir(root: Path, run_type: str, name: str) -> Path:
    path = wb.output_dir(root, run_type) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def age(path: Path, seconds: float) -> None:
    """Set mtimes of `path` and everything below it to `seconds` ago."""
    t = time.time() - seconds
    for dirpath, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (t, t), follow_symlinks=False)
        os.utime(dirpath, (t, t))


def started(s: str) -> datetime:
    return datetime.strptime(s, "%Y%m%d_%H%M%S")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("TUNER_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package.")
        pytest.skip(
            f"{CHROMIUM} is missing; install Debian's chromium package to run browser tests."
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run
    # inside one unless told it is safe, which it is here (one thread, the test's own).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """Open pages at a chosen size (and other context options); all closed after the test."""
    contexts = []

    def open_(width: int = 1280, height: int = 900, **options):
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        pg = context.new_page()
        pg.set_default_timeout(10_000)
        pg.width = width
        return pg

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page):
    return open_page(1280, 900)


@pytest.fixture
def chat_ollama(settings):
    """A configured Ollama that answers /api/chat once the test lets each case through."""
    import threading

    from .fake_servers import FakeServer

    server = FakeServer("ollama").start()
    server.gate = threading.Semaphore(0)
    settings.OLLAMA_HOST = server.host
    yield server
    server.gate = None
    server.stop()


@pytest.fixture
def eval_workspace(use_workspace: Path) -> Path:
    """The workspace with the real Evaluator and `scored`: five cases, three answered right."""
    from .evaluator_ws import add_evaluator, write_cases

    add_evaluator(use_workspace)
    write_cases(use_workspace, "scored", "RRWRW")
    return use_workspace


@pytest.fixture
def workers(eval_workspace: Path, tmp_path: Path):
    """Start worker processes with `workers()`; each is stopped after the test."""
    from .evaluator_ws import Worker

    started: list[Worker] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Worker:
        worker = Worker(eval_workspace, tmp_path / "worker-data", env)
        started.append(worker.start(*args))
        return worker

    start.started = started  # type: ignore[attr-defined]
    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def job_id() -> int:
    """An evaluation job, so every job route has one to show."""
    from tuner_site.models import EvaluationJob

    job = EvaluationJob.objects.create(
        backend="ollama",
        backend_kind="ollama",
        backend_url="http://127.0.0.1:9",
        model="m:q8",
        prompt_set="tool_prompts",
    )
    return job.pk


@pytest.fixture
def sweep_id(job_id: int) -> int:
    """A sweep holding that job, so every sweep route has one to show."""
    from tuner_site.models import EvaluationJob, Sweep

    sweep = Sweep.objects.create(
        trainer="rtx3090_sft",
        run="20251101_100000",
        backend="ollama",
        backend_kind="ollama",
        backend_url="http://127.0.0.1:9",
        base="m:q8",
        prompt_set="tool_prompts",
    )
    EvaluationJob.objects.filter(pk=job_id).update(sweep=sweep, checkpoint="checkpoint-25")
    return sweep.pk


# The widths the dashboard is checked at: a laptop, a small laptop or tablet, a phone.
VIEWPORTS = {"1280": (1280, 900), "1024": (1024, 768), "390": (390, 844)}


@pytest.fixture(params=list(VIEWPORTS))
def any_page(open_page, request):
    """A page at each of VIEWPORTS in turn; `any_page.width` says which."""
    return open_page(*VIEWPORTS[request.param])


@pytest.fixture(params=["1280", "390"])
def desktop_or_phone_page(open_page, request):
    """A page at 1280 px, then at 390 px: for checks too slow to repeat at every width."""
    return open_page(*VIEWPORTS[request.param])


@pytest.fixture
def busy_demo(settings, tmp_path: Path) -> Path:
    """The demo, served, plus what a busy workstation adds: a long base model name, runs of
    12,000 steps with a dozen checkpoints, one of them stopped part way."""
    root = demo.build_demo((tmp_path / "busy").resolve())
    long_model = "unsloth/Qwen3-VL-4B-Instruct-unsloth-bnb-4bit"
    for day, kwargs in ((12, {}), (11, {"done": 4560, "completed": False})):
        when = (datetime.now() - timedelta(days=day)).replace(microsecond=0)
        run = wb.make_run(
            root,
            "sft",
            when,
            max_steps=12_000,
            log_every=20,
            save_every=1000,
            eval_every=1000,
            base_model=long_model,
            seed=day,
            **kwargs,
        )
        age(run, day * 86400)
    # Names as long as real ones: a prompt set archived under a date, a model pulled by its
    # full hub address.
    evaluator = root / "Evaluator"
    shutil.copy(
        evaluator / "prompts" / "tool_prompts.json",
        evaluator / "prompts" / "behavior_prompts_archived_20251202.json",
    )
    result = json.loads((evaluator / "results" / "tool_prompts_sft.json").read_text())
    result["metadata"]["model"] = (
        "huggingface.co/professorsynapse/nexus-tools-v0.0.1-Q8_0-GGUF:latest"
    )
    wb.write_json(evaluator / "results" / "full_coverage.json", result)
    settings.TUNER_WORKSPACE = root
    return root


@pytest.fixture
def serve() -> Iterator:
    """Start fake inference servers with `serve(kind, variant, mode)`; each stops after the test."""
    from . import fake_servers as fs

    started: list[fs.FakeServer] = []

    def start(kind: str, variant: str = "", mode: str = "ok") -> fs.FakeServer:
        server = fs.FakeServer(kind, variant, mode).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
