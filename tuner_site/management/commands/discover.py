from __future__ import annotations

import contextlib
import fcntl
import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat

from discovery.checkpoints import Checkpoint, disk_sizes
from discovery.evaluations import list_evaluations
from discovery.hashing import hasher
from discovery.lineage import Lineage
from discovery.logindex import indexer
from discovery.runs import (
    Run,
    RunSummary,
    Workspace,
    detail,
    get_run,
    list_runs,
    read_ahead,
    run_dir_problems,
    summary,
    unread_bytes,
    unready,
)
from tuner_site import checks, serializers, workspace
from tuner_site.database import problem
from tuner_site.formatting import metric, visible
from tuner_site.prompt_notes import listed
from tuner_site.serializers import dumps

# A GGUF file still being written is not waited for longer than this.
HASH_WAIT_S = 600.0
# Never-read logs up to this size are read in full before `discover runs` answers (about a
# quarter of a second); beyond it, it answers from windows of each and reads them afterwards.
EXACT_READ_BYTES = 32 * 2**20
CHECK_LOCK = "check.lock"


def check_in_background() -> None:
    """`discover index --background` in its own session: it outlives this command (as git's
    automatic gc does), so the next command reads the index it writes instead of the logs."""
    subprocess.Popen(
        [sys.executable, "-m", "django", "discover", "index", "--background"],
        cwd=settings.BASE_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextlib.contextmanager
def one_check() -> Iterator[bool]:
    """Whether this process is the only background read of the index folder (a lock there
    held meanwhile): two commands in a row start one read, not two."""
    folder = indexer.store
    if folder is None:
        yield True
        return
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / CHECK_LOCK, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True


def table(headers: list[str], rows: list[list[str]]) -> str:
    rows = [[visible(c) for c in r] for r in rows]  # no name reorders or hides the terminal's text
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _at(c: Checkpoint, names: tuple[str, ...]) -> str:
    """ " @375" when these values were logged before the checkpoint's step, as the page marks
    an inherited value."""
    steps = [c.metric_steps[n] for n in names if n in c.metric_steps]
    return f" @{metric(max(steps))}" if steps else ""


class Command(BaseCommand):
    help = "List what the dashboard discovers in the workspace, as a table or as the API's JSON."
    # The settings' checks, not Django's own of the code (URLs, models, templates: a sixth of
    # a second call's start-up, and `discover --help` pays none of it).
    requires_system_checks = [checks.TAG]

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="what", required=True, parser_class=CommandParser)
        runs = sub.add_parser("runs", help="training runs, newest first")
        runs.add_argument("--type", help="only this trainer type (sft, kto, …)")
        runs.add_argument("--limit", type=int, help="at most this many runs")
        runs.add_argument("--json", action="store_true", help="print the API's JSON")
        ckpts = sub.add_parser("checkpoints", help="checkpoints of one run, best marked")
        ckpts.add_argument("run", help="<trainer>/<run>, e.g. rtx3090_sft/20251128_113853")
        ckpts.add_argument("--json", action="store_true", help="print the API's JSON")
        index = sub.add_parser(
            "index", help="read every run's logs now, so the first page is instant"
        )
        index.add_argument(
            "--background",
            action="store_true",
            help="do nothing if another such read is running (commands start one this way)",
        )
        evals = sub.add_parser("evaluations", help="evaluation results in Evaluator/results/")
        evals.add_argument("--json", action="store_true", help="print the API's JSON")
        sets = sub.add_parser("prompt-sets", help="prompt sets in Evaluator/prompts/")
        sets.add_argument("--json", action="store_true", help="print the API's JSON")
        servers = sub.add_parser("backends", help="inference servers and their models")
        servers.add_argument("--backend", help="only this backend (ollama, lmstudio, or a name)")
        servers.add_argument("--json", action="store_true", help="print the API's JSON")
        models = sub.add_parser(
            "models", help="every model published from a run, served or evaluated, one row each"
        )
        models.add_argument("--backend", help="only models this backend serves")
        models.add_argument("--json", action="store_true", help="print the API's JSON")
        chain = sub.add_parser(
            "lineage", help="what runs published, where it is served and how it scored"
        )
        chain.add_argument("run", nargs="?", help="<trainer>/<run>; every run when left out")
        chain.add_argument("--json", action="store_true", help="print the API's JSON")

    def handle(self, *args: Any, what: str, **options: Any) -> None:
        if what == "backends":
            self.handle_backends(**options)
            return
        try:
            ws = workspace.current()
        except workspace.WorkspaceMissing as exc:
            raise CommandError(
                f"The workspace {exc} is missing or unreadable: set TUNER_WORKSPACE."
            ) from None
        # A command answers once and exits: the collector's passes over the thousands of
        # details it restores were 40 % of their restore, and they hold no cycles (reference
        # counting frees them). The index pass reads every log in full and keeps collecting.
        collecting = gc.isenabled() and what != "index"
        if collecting:
            gc.disable()
        try:
            getattr(self, f"handle_{what.replace('-', '_')}")(ws, **options)
        except DatabaseError as exc:
            if (found := problem(exc)) is None:
                raise
            raise CommandError(found.message) from None
        finally:
            if collecting:
                gc.enable()
        indexer.flush()  # the next command reads what this one learned

    def handle_backends(self, backend: str | None, json: bool, **_: Any) -> None:
        found = workspace.backend_statuses()
        if backend is not None:
            found = [s for s in found if s.backend.name == backend]
            if not found:
                names = ", ".join(b.name for b in workspace.backends()) or "none"
                raise CommandError(f"No backend {backend!r}; configured: {names}.")
        if json:
            self.emit({"backends": [serializers.backend_json(s) for s in found]})
            return
        for s in found:
            state = (
                f"available · {s.version or s.api} · {s.latency_ms:.0f} ms"
                if s.available
                else "unavailable"
            )
            self.stdout.write(f"{s.backend.name} ({s.backend.kind}, {s.backend.url}): {state}")
            if not s.available:
                self.stdout.write(f"  {s.error}")
                continue
            rows = [
                [
                    m.id,
                    "loaded" if m.loaded else ("?" if m.loaded is None else "-"),
                    filesizeformat(m.size) if m.size else "—",
                    m.quantization or "—",
                    m.parameter_size or "—",
                    str(m.context_length or "—"),
                ]
                for m in s.models
            ]
            headers = ["model", "state", "size", "quant", "params", "context"]
            self.stdout.write(table(headers, rows) if rows else "  no models")
            self.stdout.write("")

    def lineage(self) -> Lineage:
        """The lineage once every GGUF file's sha256 is known: a command may wait for it."""
        lineage = workspace.lineage()
        pending = sum(d is None for d in lineage.catalog.digests.values())
        if pending:
            self.stderr.write(f"Hashing {pending} GGUF file(s); done once, then remembered…")
            hasher.wait_idle(HASH_WAIT_S)
            lineage = workspace.lineage()
        return lineage

    def handle_models(self, ws: Workspace, backend: str | None, json: bool, **_: Any) -> None:
        if backend is not None and backend not in {b.name for b in workspace.backends()}:
            names = ", ".join(b.name for b in workspace.backends()) or "none"
            raise CommandError(f"No backend {backend!r}; configured: {names}.")
        lineage = self.lineage()
        models = [
            m
            for m in lineage.models
            if backend is None or any(s.backend.name == backend for s in m.served)
        ]
        if json:
            digests = lineage.catalog.digests
            self.emit({"models": [serializers.model_row_json(m, digests) for m in models]})
            return
        rows = [
            [
                m.title,
                (m.run.id + (f" · {m.checkpoint}" if m.checkpoint else "")) if m.run else "—",
                m.link or "—",
                ", ".join(
                    f"{s.backend.name}:{s.name}" + (" (loaded)" if s.loaded else "")
                    for s in m.served
                )
                or "—",
                ", ".join(
                    f"{e.evaluation.prompt_set or e.evaluation.name} "
                    f"{metric((e.evaluation.pass_rate or 0) * 100)}%"
                    for e in m.latest()
                    if e.evaluation.pass_rate is not None
                )
                or "—",
            ]
            for m in models
        ]
        headers = ["model", "from run", "link", "served", "latest pass rate"]
        self.stdout.write(table(headers, rows))
        self.stdout.write(f"\n{len(models)} model(s)")

    def handle_lineage(self, ws: Workspace, run: str | None, json: bool, **_: Any) -> None:
        lineage = self.lineage()
        if run is not None:
            trainer, _sep, name = run.strip("/").partition("/")
            found = get_run(ws, trainer, name)
            if found is None:
                raise CommandError(
                    f"No run {run!r}: give <trainer>/<run> as `discover runs` lists them."
                )
            runs = [found]
        else:
            # Every run with something to show: an upload folder, or a model linked to it.
            runs = [
                r for r in lineage.catalog.runs if lineage.catalog.of_run(r) or lineage.for_run(r)
            ]
        if json:
            chains = [serializers.run_lineage_json(r, lineage) for r in runs]
            self.emit(chains[0] if run is not None else {"runs": chains})
            return
        digests = lineage.catalog.digests
        for r in runs:
            self.stdout.write(f"{r.id} ({r.status})")
            published = lineage.catalog.of_run(r)
            for p in published:
                what = f"published as {p.repo}" if p.repo else f"upload folder {p.name}/"
                labels = f" ({', '.join(p.labels)})" if p.labels else ""
                self.stdout.write(f"  {what}{labels} from {p.checkpoint or 'a checkpoint'}")
                if p.error:
                    self.stdout.write(f"    ! {p.error}")
                for g in p.gguf:
                    size = (
                        filesizeformat(g.size or 0).replace("\xa0", " ") if g.present else "missing"
                    )
                    sha = digests.get(g.path) if g.path else None
                    state = (sha[:12] + "…") if sha else ("hashing…" if g.present else "")
                    line = f"    gguf/{g.name}  {size}  {state}".replace("\xa0", " ")
                    self.stdout.write(line.rstrip())
            if not published:
                self.stdout.write("  not published")
            for m in lineage.for_run(r):
                self.stdout.write(f"  model {m.title} [{m.link or 'not linked'}]")
                for s in m.served:
                    state = "loaded" if s.loaded else "listed"
                    kind = s.link.kind if s.link else "not linked"
                    self.stdout.write(
                        f"    served by {s.backend.name} as {s.name} ({state}, {kind})"
                    )
                for e in m.evaluations:
                    ev = e.evaluation
                    rate = (
                        f"{metric((ev.pass_rate or 0) * 100)}%" if ev.pass_rate is not None else "—"
                    )
                    self.stdout.write(f"    evaluated {ev.name} on {ev.prompt_set or '?'}: {rate}")
            self.stdout.write("")
        if not runs:
            self.stdout.write("No run has published, served or evaluated models yet.")

    def emit(self, data: Any) -> None:
        sys.stdout.buffer.write(dumps(data, indent=True) + b"\n")

    def handle_runs(
        self, ws: Workspace, type: str | None, limit: int | None, json: bool, **_: Any
    ) -> None:
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        runs = list_runs(ws, type)
        summaries, unchecked = self.summaries(runs[:limit])
        note = (
            f"{unchecked} log(s) never read before were answered from windows of each, as "
            "the dashboard's first page answers them; they are being read in full in the "
            "background (skipped-line counts among what that checks), and the next command "
            "answers from that read."
            if unchecked
            else ""
        )
        if json:
            self.emit(
                # As the API: `count` is every match, `runs` what is shown.
                {"count": len(runs), "runs": [serializers.run_summary_json(s) for s in summaries]}
            )
            if note:
                self.stderr.write(note)
            return
        rows = [
            [
                s.run.trainer.id,
                s.run.name,
                s.run.status,
                s.base_model or "—",
                str(len(s.run.checkpoint_steps)) + (" + final" if s.run.has_final_model else ""),
                metric(s.step),
                s.best_name or "—",
                f"{metric(s.best_score)} ({s.label})" if s.best_name is not None else "—",
            ]
            for s in summaries
        ]
        headers = ["trainer", "run", "status", "base model", "ckpts", "last step", "best", "score"]
        self.stdout.write(table(headers, rows))
        shown = f"{len(summaries)} of {len(runs)}" if len(summaries) < len(runs) else str(len(runs))
        extra = f" and {len(ws.run_dirs)} run folder(s)" if ws.run_dirs else ""
        self.stdout.write(f"\n{shown} run(s) in {ws.root}{extra}")
        if note:
            self.stdout.write(note)
        for why in run_dir_problems(ws):
            self.stdout.write(f"note: {why}")

    def summaries(self, runs: list[Run]) -> tuple[list[RunSummary], int]:
        """Each run's summary, and how many logs were answered from windows. Exact when the
        logs never read are few; else as a server answers (windows of each log, kilobytes),
        with the full read handed to a `discover index` that outlives this command."""
        # Runs an earlier command kept (a second call's every run) need none of their logs.
        pending = unready(runs)
        if indexer.store is None or unread_bytes(pending) <= EXACT_READ_BYTES:
            read_ahead(pending)
            return [summary(r) for r in runs], 0
        with indexer.first_answers() as unchecked:
            summaries = [summary(r) for r in runs]
        if unchecked:
            check_in_background()
        return summaries, len(unchecked)

    def handle_index(self, ws: Workspace, background: bool = False, **_: Any) -> None:
        if background:
            with one_check() as alone:
                if alone:
                    self.handle_index(ws)
            return
        started = time.monotonic()
        runs = list_runs(ws)
        read_ahead(runs)
        total, skipped, width = len(runs), 0, 30
        for i, run in enumerate(runs, start=1):
            skipped += detail(run).history.skipped
            if i == total or i % 10 == 0:
                filled = width * i // max(total, 1)
                bar = "#" * filled + "-" * (width - filled)
                self.stdout.write(f"\r[{bar}] {i}/{total} runs", ending="")
                self.stdout.flush()
        indexer.flush()
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"\nIndexed {total} run(s) in {elapsed:.1f} s into {indexer.store or 'memory only'}"
            + (f"; {skipped} log line(s) could not be read" if skipped else "")
        )

    def handle_evaluations(self, ws: Workspace, json: bool, **_: Any) -> None:
        found = list_evaluations(ws.root)
        if json:
            self.emit(serializers.evaluation_list_json(found, workspace.lineage()))
            return
        rows = [
            [
                e.name,
                e.model or "—",
                e.prompt_set or "—",
                f"{e.passed}/{e.total} ({metric((e.pass_rate or 0) * 100)}%)"
                if e.pass_rate is not None
                else (e.error or "—"),
                e.generated_at.strftime("%Y-%m-%d %H:%M") if e.generated_at else "—",
            ]
            for e in found
        ]
        self.stdout.write(table(["result", "model", "prompt set", "passed", "when"], rows))

    def handle_prompt_sets(self, ws: Workspace, json: bool, **_: Any) -> None:
        items = listed(ws.root)
        if json:
            self.emit({"prompt_sets": [serializers.prompt_set_json(x) for x in items]})
            return
        rows = [
            [
                x.prompt_set.name,
                str(x.prompt_set.count) if x.prompt_set.count is not None else "error",
                x.description
                if not x.prompt_set.error
                else f"{x.description} ({x.prompt_set.error})",
            ]
            for x in items
        ]
        self.stdout.write(table(["name", "cases", "description"], rows))

    def handle_checkpoints(self, ws: Workspace, run: str, json: bool, **_: Any) -> None:
        trainer, _sep, name = run.strip("/").partition("/")
        found = get_run(ws, trainer, name)
        if found is None:
            raise CommandError(
                f"No run {run!r}: give <trainer>/<run> as `discover runs` lists them."
            )
        # Ranked as its page and JSON are: by a sweep's pass rates where they can rank. Imported
        # here: the jobs code it reads them with would slow every other command's start.
        from tuner_site.eval_ranking import ranked

        run_ranked = ranked(found)
        d = run_ranked.d
        sizes = disk_sizes(d.checkpoints, found.trainer.root)
        if json:
            self.emit(
                serializers.run_detail_json(
                    d,
                    sizes,
                    workspace.lineage(),
                    None,
                    run_ranked.evaluated,
                    run_ranked.prompt_sets,
                )
            )
            return
        r = d.ranking
        rows = [
            [
                ("* " if c.name == r.best else "  ")
                + c.name
                + (" (earlier run)" if c.earlier_run else ""),
                metric(c.step),
                metric(c.metrics_step),
                metric(s) + _at(c, r.inputs if s is not None else ()),
                metric(c.metrics.get("loss")) + _at(c, ("loss",)),
                filesizeformat(sizes[c.name]).replace("\xa0", " "),
            ]
            for c, s in zip(d.checkpoints, r.scores, strict=True)
        ]
        headers = ["checkpoint", "step", "metrics@", f"score ({r.metric})", "loss", "size"]
        self.stdout.write(table(headers, rows) if rows else "No checkpoint in this run's folder.")
        best = f"{r.best} by rule {r.rule} ({r.how})" if r.best else "none"
        self.stdout.write(f"\n{found.id} · {found.status} · best: {best}")
        for note in (d.status_reason, *r.notes, r.unscored_note):
            if note:
                self.stdout.write(f"note: {note}")
        if d.history.skipped:
            self.stdout.write(
                f"note: {d.history.skipped} log line(s) could not be read and were skipped"
            )
