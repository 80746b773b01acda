"""One measurement in a fresh process; prints JSON. Called by bench/run.py."""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def discover_all(root: Path) -> int:
    from discovery.runs import Workspace, detail, list_runs, read_ahead

    runs = list_runs(Workspace.at(root))
    read_ahead(runs)  # as the commands do; a server (`first`) reads windows instead
    for r in runs:
        detail(r)
    return len(runs)


WARM_PASSES = 7


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _django_client(root: Path, store_s: str):
    os.environ.update(
        TUNER_WORKSPACE=str(root),
        TUNER_INDEX_DIR=store_s,
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="testserver",
        OLLAMA_HOST="",
        LMSTUDIO_HOST="",
        SECRET_KEY="bench-only",
        TUNER_DATA_DIR=str(Path(store_s) / "data"),
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuner_site.settings")
    import django
    from django.core.management import call_command
    from django.test import Client

    django.setup()
    # As a deployment would, before the server starts: it refuses to start without its static
    # files, and a run's page reads its sweeps' results from the database.
    call_command("migrate", "--noinput", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    import tuner_site.wsgi  # noqa: F401  set up as a server is

    return Client()


def main() -> None:
    mode, root_s, store_s = sys.argv[1], sys.argv[2], sys.argv[3]
    root = Path(root_s).resolve()
    from discovery.logindex import indexer

    indexer.configure(Path(store_s) if store_s else None)
    out: dict[str, object] = {}
    if mode == "first":
        # As a server: a first answer from windows of each log, the full reads in a second
        # process behind it.
        indexer.background = True
        out["first"] = timed(discover_all, root)
        started = time.perf_counter()
        indexer.wait()
        out["checked"] = out["first"] + time.perf_counter() - started
    elif mode == "cold":
        out["cold"] = timed(discover_all, root)
        # Seven: a pass the collector's full sweep falls into (about 45 ms on a thousand runs,
        # wherever the allocations of the pass before left it) is one, not the median.
        out["warm"] = statistics.median(timed(discover_all, root) for _ in range(WARM_PASSES))
        indexer.flush()  # what a server does once idle, so the restart figure can use it
    elif mode == "restart":
        out["restart"] = timed(discover_all, root)
    elif mode == "append":
        discover_all(root)
        log = Path(sys.argv[4])
        last = json.loads(log.read_bytes().rstrip().rsplit(b"\n", 1)[-1])["step"]
        with log.open("a") as f:
            for s in range(last + 1, last + 101):
                f.write(json.dumps({"step": s, "loss": 0.5, "learning_rate": 1e-5}) + "\n")
        out["append"] = timed(discover_all, root)
        # Seven: a pass the collector's full sweep falls into (about 45 ms on a thousand runs,
        # wherever the allocations of the pass before left it) is one, not the median.
        out["warm"] = statistics.median(timed(discover_all, root) for _ in range(WARM_PASSES))
    elif mode == "views":
        client = _django_client(root, store_s)
        run_url = json.loads(client.get("/api/runs/?status=completed").content)["runs"][0]["url"]
        for name, url in (
            ("/runs/", "/runs/"),
            ("/api/runs/", "/api/runs/"),
            ("run page", run_url),
            # Issue 24's pages: two configuration columns, and every run a point on /explore/.
            ("/runs/ + 2 settings", "/runs/?col=lora.r&col=learning_rate"),
            ("/explore/", "/explore/?x=lora.r&y=best_score"),
        ):
            client.get(url)  # warm
            times = []
            for _ in range(int(sys.argv[4])):
                t = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - t)
                assert response.status_code == 200, (url, response.status_code)
            times.sort()
            out[name] = {"p50": times[len(times) // 2], "p95": times[int(len(times) * 0.95) - 1]}
            if name == "run page":
                # What a server answering the run lists and a run's page holds (issue 25);
                # /explore/ after it reads every run's configuration and score.
                out["rss_lists_mb"] = peak_rss_mb()
    elif mode == "first-page":
        # A running server's first request for a workspace it has never seen: Django and its
        # templates are warm (a request that reads no log), the walk and the logs are not.
        client = _django_client(root, store_s)
        from django.template.loader import get_template

        from discovery.runs import clear_memo

        get_template("runs/list.html")
        assert client.get("/runs/?status=none").status_code == 400
        clear_memo()
        url = sys.argv[4]
        t = time.perf_counter()
        response = client.get(url)
        out["first-page"] = time.perf_counter() - t
        assert response.status_code == 200, (url, response.status_code)
        assert b"reading log" not in response.content
    out["rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
