"""One lineage from a training run to the models served from it and how they scored: every join
rule between published models (the upload tool's manifests), the models each inference server
has, and evaluation results lives here.

How a served model is linked to a run (its `link`):

- `exact`: the dashboard served it from a checkpoint (a sweep), as the workspace's record says
  (`serving.RECORD`): an Ollama model's manifest digest or adapter blob is one the dashboard
  made from that checkpoint's adapter, a vLLM adapter has the name and folder it was loaded
  with; or the server names a path into the workspace (vLLM's `root`, llama.cpp's model file),
  or one of an Ollama model's FROM/ADAPTER blobs has the sha256 of a run's GGUF file;
- `by name`: the served name, less the hub host (`hf.co/`, `huggingface.co/`), its tag
  (`:Q4_K_M`) and the `-GGUF`/quantisation suffixes the upload tool and the hub add, is a
  published repo id (LM Studio's names count with their publisher, `<publisher>/<key>`); a
  llama.cpp model file named like a run's GGUF file counts too. A repo published by several
  runs is taken to be the newest upload: each upload replaces the hub's files.

An evaluation a sweep made is linked `exact` to the checkpoint it served, by its result's name
in the same record; any other evaluation's `metadata.model` is linked as the served model of
that name is, else by name.
A model's own `link` is the strongest of what is served or evaluated of it (`exact` over `by
name`); a model only published links exactly, as its manifest sits in the run's folder.

Model ids (`/models/<id>/`): a published repo is `user--name` in lower case (hub repo ids hold no
`--`); anything else (a run's checkpoint served from its folder, a bare served or evaluated
name) is `local--<slug>-<8 hex digits of the sha1 of what identifies it>`.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path

from . import caches, serving
from .backends import Backend, BackendStatus
from .checkpoints import CHECKPOINT_NAME, FINAL_MODEL
from .evaluations import Evaluation
from .hashing import hasher
from .modelinfo import ModelInfo
from .paths import is_inside, is_safe_name, realpath
from .publishing import GgufFile, Publication, has_checkpoint, publications
from .runs import Run, Workspace, list_runs

EXACT = "exact"
BY_NAME = "by name"
STRENGTH = {EXACT: 2, BY_NAME: 1}
HUB_HOSTS = ("hf.co/", "huggingface.co/", "www.huggingface.co/")
# What the upload tool, GGUF-my-repo and Ollama's hub pulls add after a repo's name.
_SUFFIX = re.compile(r"[-_.](?:gguf|i?q\d(?:_[a-z0-9]+)*|bf16|f16|f32|fp16)$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_NOT_SLUG = re.compile(r"[^a-z0-9._]+")
# Names and ids a few servers' model lists need, remembered across their answers (each of
# these functions is pure): 30,000 served models are joined again on every refresh.
NAMES_REMEMBERED = 2**16
MAX_PATH = 4096


@dataclass(frozen=True)
class Origin:
    """Where a model came from: a run, its checkpoint when known, and the upload folder."""

    run: Run
    checkpoint: str | None
    publication: Publication | None = None
    gguf: GgufFile | None = None

    @property
    def checkpoint_exists(self) -> bool:
        return has_checkpoint(self.run, self.checkpoint)


@dataclass(frozen=True)
class Link:
    kind: str  # EXACT or BY_NAME
    how: str  # what matched, for people
    origin: Origin


@dataclass(frozen=True)
class Served:
    backend: Backend
    model: ModelInfo
    link: Link | None
    stale: bool = False  # from the server's last answer: it is down now
    hashing: bool = False  # not linked yet, and GGUF files are still being hashed

    @property
    def name(self) -> str:
        return self.model.id

    @property
    def loaded(self) -> bool | None:
        return self.model.loaded

    @property
    def model_id(self) -> str:
        """The id of the model row it joins (`build` puts it there by the same key)."""
        return model_id(_key(self.link, self.name))


@dataclass(frozen=True)
class Evaluated:
    evaluation: Evaluation
    link: Link | None
    served: tuple[Served, ...] = ()  # what serves a model of this name now


@dataclass(frozen=True)
class Model:
    id: str
    repo: str | None
    names: tuple[str, ...]
    publications: tuple[Publication, ...]  # newest upload first
    served: tuple[Served, ...]
    evaluations: tuple[Evaluated, ...]  # newest first
    origin: Origin | None
    link: str | None

    @property
    def title(self) -> str:
        if self.repo:
            return self.repo
        if self.names:
            return self.names[0]
        return self.publications[0].name if self.publications else self.id

    @property
    def run(self) -> Run | None:
        return self.origin.run if self.origin else None

    @property
    def checkpoint(self) -> str | None:
        return self.origin.checkpoint if self.origin else None

    @property
    def origins(self) -> tuple[Origin, ...]:
        """Every run it came from: the linked origin first, then uploads newest first, then
        what served or evaluated models of it link to."""
        found = [self.origin] if self.origin else []
        found += [Origin(p.run, p.checkpoint, p) for p in self.publications]
        links = [*(s.link for s in self.served), *(e.link for e in self.evaluations)]
        found += [link.origin for link in links if link is not None]
        seen: dict[tuple[str, str | None], Origin] = {}
        for s in found:
            seen.setdefault((s.run.id, s.checkpoint), s)
        return tuple(seen.values())

    def of_run(self, run: Run) -> Model:
        """Only what came from `run`: its uploads, and what is served or evaluated of them."""
        served = tuple(s for s in self.served if s.link and s.link.origin.run.id == run.id)
        evaluations = tuple(
            e for e in self.evaluations if e.link and e.link.origin.run.id == run.id
        )
        linked = _strongest([*(s.link for s in served), *(e.link for e in evaluations)])
        pubs = tuple(p for p in self.publications if p.run.id == run.id)
        return replace(
            self,
            publications=pubs,
            served=served,
            evaluations=evaluations,
            origin=next((s for s in self.origins if s.run.id == run.id), None),
            link=linked.kind if linked else (EXACT if pubs else None),
        )

    def latest(self) -> tuple[Evaluated, ...]:
        """The newest evaluation on each prompt set, by prompt set name."""
        newest: dict[str, Evaluated] = {}
        for e in self.evaluations:  # newest first
            newest.setdefault(e.evaluation.prompt_set or "", e)
        return tuple(newest[k] for k in sorted(newest))

    def previous(self, e: Evaluated) -> Evaluated | None:
        """The evaluation before `e` on the same prompt set, to compare it with."""
        same = [x for x in self.evaluations if x.evaluation.prompt_set == e.evaluation.prompt_set]
        names = [x.evaluation.name for x in same]
        i = names.index(e.evaluation.name) if e.evaluation.name in names else -1
        return same[i + 1] if 0 <= i < len(same) - 1 else None


@dataclass(frozen=True)
class Catalog:
    """Every run's upload folders, indexed for joining."""

    root: Path
    runs: tuple[Run, ...]
    publications: tuple[Publication, ...]  # newest upload first
    digests: dict[Path, str | None]  # each GGUF file's sha256; None while it is being hashed
    by_repo: dict[str, tuple[Publication, ...]] = field(default_factory=dict)
    by_sha: dict[str, tuple[Publication, GgufFile]] = field(default_factory=dict)
    by_file: dict[str, tuple[Publication, GgufFile]] = field(default_factory=dict)
    served_records: tuple[serving.Record, ...] = ()  # what the dashboard served, oldest first
    served_skipped: int = 0  # lines of the record that are no record
    served_problem: str | None = None  # why the record could not be read

    @property
    def hashing(self) -> bool:
        return any(d is None for d in self.digests.values())

    def of_run(self, run: Run) -> tuple[Publication, ...]:
        return tuple(p for p in self.publications if p.run.id == run.id)

    @cached_property
    def output_dirs(self) -> dict[str, str]:
        """Each trainer's output folder (resolved), to its trainer id."""
        return {str(realpath(t.output_dir)): t.id for t in {r.trainer for r in self.runs}}

    @cached_property
    def runs_by_id(self) -> dict[str, Run]:
        return {r.id: r for r in self.runs}

    @cached_property
    def made(self) -> dict[tuple[str, str], serving.Record]:
        """What the dashboard served, by what identifies it on a server: ("digest", an Ollama
        manifest digest), ("blob", an adapter blob it made), ("lora", vLLM name and folder),
        ("result", the evaluation made on it). The newest record wins."""
        found: dict[tuple[str, str], serving.Record] = {}
        for r in self.trusted_records:
            keys = [("blob", b) for b in r.blobs]
            if r.digest:
                keys.append(("digest", r.digest))
            if r.kind == "vllm" and r.path:
                keys.append(("lora", f"{r.model}\x00{r.path}"))
            if r.result:
                keys.append(("result", r.result))
            found.update(dict.fromkeys(keys, r))
        return found

    @cached_property
    def trusted_records(self) -> tuple[serving.Record, ...]:
        """The records a link may go by: a run of this workspace, a checkpoint's plain name
        and (vLLM) a folder in that run's. Anything else is a forged or stale line: it would
        link `exact` what the workspace does not hold."""
        folders: dict[str, str] = {}
        trusted = []
        for r in self.served_records:
            run = self.runs_by_id.get(r.run)
            if run is None or not is_safe_name(r.checkpoint):
                continue
            if r.path is not None:
                if run.id not in folders:
                    folders[run.id] = str(realpath(run.path))
                if not _path_in(r.path, Path(folders[run.id])):
                    continue
            trusted.append(r)
        return tuple(trusted)

    @cached_property
    def served_note(self) -> str | None:
        """What the pages say of the record when they could not go by all of it."""
        if self.served_problem:
            return f"{self.served_problem}: what sweeps served is linked as any other model."
        skipped = self.served_skipped + len(self.served_records) - len(self.trusted_records)
        if not skipped:
            return None
        lines = f"{skipped:,} line{'' if skipped == 1 else 's'}"
        return (
            f"{lines} of {serving.RECORD} skipped: not a record, or naming a run, checkpoint "
            "or folder this workspace does not hold."
        )

    @cached_property
    def hf_runs(self) -> dict[tuple[str, str], Run]:
        """Hugging Face runs by trainer id and folder name."""
        return {(r.trainer.id, r.name): r for r in self.runs if r.trainer.layout == "hf"}


@dataclass(frozen=True)
class Lineage:
    catalog: Catalog
    served: tuple[Served, ...]
    models: tuple[Model, ...]

    def get(self, model_id: str) -> Model | None:
        return next((m for m in self.models if m.id == model_id), None)

    def for_run(self, run: Run) -> tuple[Model, ...]:
        """The models that came from `run`, each narrowed to what came from it."""
        return tuple(
            m.of_run(run) for m in self.models if any(s.run.id == run.id for s in m.origins)
        )

    def of_evaluation(self, name: str) -> tuple[Model, Evaluated] | None:
        return self.evaluations().get(name)

    def evaluations(self) -> dict[str, tuple[Model, Evaluated]]:
        """Each evaluation result's model row, by result name."""
        return {e.evaluation.name: (m, e) for m in self.models for e in m.evaluations}

    def runs_evaluated(self) -> dict[str, set[str]]:
        """Evaluation names by the id of the run they are linked to."""
        found: dict[str, set[str]] = {}
        for _, e in self.evaluations().values():
            if e.link is not None:
                found.setdefault(e.link.origin.run.id, set()).add(e.evaluation.name)
        return found


def _when(p: Publication) -> float:
    """When an upload happened; the run's start when its manifest does not say."""
    t = _timestamp(p.uploaded_at)
    return t if t != float("-inf") else _timestamp(p.run.started_at)


def catalog(ws: Workspace, runs: Iterable[Run] | None = None) -> Catalog:
    """Every run's upload folders; each GGUF file's sha256 as far as it is known yet."""
    run_list = tuple(list_runs(ws) if runs is None else runs)
    pubs = sorted((p for r in run_list for p in publications(r)), key=_when, reverse=True)
    digests: dict[Path, str | None] = {}
    by_repo: dict[str, list[Publication]] = {}
    by_sha: dict[str, tuple[Publication, GgufFile]] = {}
    by_file: dict[str, tuple[Publication, GgufFile]] = {}
    for p in pubs:  # newest first: the first claim on a repo, a digest or a file name wins
        if p.repo:
            by_repo.setdefault(p.repo.lower(), []).append(p)
        for g in p.gguf:
            if g.path is None:
                continue
            digest = hasher.digest(g.path, ws.root)
            digests[g.path] = digest
            if digest is not None:
                by_sha.setdefault(digest, (p, g))
            by_file.setdefault(g.name.lower(), (p, g))
    record = serving.read_record(ws.root)
    return Catalog(
        root=ws.root,
        runs=run_list,
        publications=tuple(pubs),
        digests=digests,
        by_repo={k: tuple(v) for k, v in by_repo.items()},
        by_sha=by_sha,
        by_file=by_file,
        served_records=record.records,
        served_skipped=record.skipped,
        served_problem=record.problem,
    )


_cached: tuple[Path, float, Catalog] | None = None
_cache_lock = threading.Lock()


def recent_catalog(ws: Workspace, max_age: float) -> Catalog:
    """The catalog, reused for `max_age` seconds: servers' answers are cached as long, and a
    page that polls them need not walk every run each time."""
    global _cached
    if max_age <= 0:
        return catalog(ws)
    with _cache_lock:
        hit = _cached
    if hit is not None and hit[0] == ws.root and time.monotonic() - hit[1] < max_age:
        return hit[2]
    found = catalog(ws)
    with _cache_lock:
        _cached = (ws.root, time.monotonic(), found)
    return found


def clear_cache() -> None:
    global _cached, _built
    with _cache_lock:
        _cached = None
        _built = None
    repo_candidates.cache_clear()
    model_id.cache_clear()


caches.register(__name__, clear_cache, "_cached", "_built", "repo_candidates", "model_id")


@lru_cache(maxsize=NAMES_REMEMBERED)
def repo_candidates(name: str) -> tuple[str, ...]:
    """Repo ids a served or evaluated name may stand for, longest first, in lower case."""
    n = _SCHEME.sub("", name.strip().lower())
    for host in HUB_HOSTS:
        if n.startswith(host):
            n = n[len(host) :]
            break
    head, sep, tag = n.rpartition(":")
    if sep and "/" not in tag:
        n = head
    parts = [p for p in n.split("/") if p]
    if len(parts) == 3 and parts[2].endswith(".gguf"):
        parts = parts[:2]  # LM Studio's older ids: `<publisher>/<repo>/<file>.gguf`
    if len(parts) != 2:
        return ()
    user, repo = parts
    found = [f"{user}/{repo}"]
    while (m := _SUFFIX.search(repo)) and m.start() > 0:
        repo = repo[: m.start()]
        found.append(f"{user}/{repo}")
    return tuple(found)


def _names(model: ModelInfo) -> list[str]:
    names = [model.id]
    if model.publisher and "/" not in model.id:
        names.append(f"{model.publisher}/{model.id}")
    return names


def by_name(names: Iterable[str], cat: Catalog, at: float | None = None) -> Link | None:
    """The upload a name stands for: the newest, or the newest before `at` (an evaluation's
    time: the hub held that upload's files then)."""
    for name in names:
        for candidate in repo_candidates(name):
            pubs = cat.by_repo.get(candidate)
            if pubs:
                p = pubs[0]
                if at is not None and at != float("-inf"):
                    p = next((x for x in pubs if _when(x) <= at), pubs[-1])
                how = f"the name holds the published repo id {p.repo}"
                return Link(BY_NAME, how, Origin(p.run, p.checkpoint, p))
    return None


def _by_blob(model: ModelInfo, cat: Catalog) -> Link | None:
    for blob in model.blobs or ():
        hit = cat.by_sha.get(blob)
        if hit is not None:
            p, g = hit
            how = f"its blob sha256:{blob[:12]}… is {g.name}"
            return Link(EXACT, how, Origin(p.run, p.checkpoint, p, g))
    return None


def _run_at(real: Path, cat: Catalog) -> tuple[Run, Path] | None:
    """The run whose folder holds `real` (a resolved path), and `real` below that folder."""
    for folder in (real, *real.parents):
        trainer = cat.output_dirs.get(str(folder.parent))
        if trainer is not None:
            run = cat.hf_runs.get((trainer, folder.name))
            return (run, real.relative_to(folder)) if run else None
    return None


def _path_in(path: str | None, folder: Path) -> bool:
    """A path a server or a record names, absolute and (links resolved) inside `folder`."""
    return bool(
        path
        and len(path) <= MAX_PATH
        and "\x00" not in path
        and os.path.isabs(path)
        and is_inside(path, folder)
    )


def by_path(path: str | None, cat: Catalog) -> Link | None:
    """A path the server loaded from, when it lies in a run's folder."""
    if path is None or not _path_in(path, cat.root):
        return None
    real = realpath(path)
    found = _run_at(real, cat)
    if found is None:
        return None
    run, rel = found
    parts = rel.parts
    checkpoint = None
    if parts[:1] == (FINAL_MODEL,):
        checkpoint = FINAL_MODEL
    elif len(parts) > 1 and parts[0] == "checkpoints" and CHECKPOINT_NAME.fullmatch(parts[1]):
        checkpoint = parts[1]
    pub, gguf = None, None
    for p in cat.of_run(run):
        folder = realpath(p.folder)
        if real == folder or folder in real.parents:
            pub, checkpoint = p, p.checkpoint
            gguf = next((g for g in p.gguf if g.path and realpath(g.path) == real), None)
            break
    return Link(EXACT, f"it was loaded from {path}", Origin(run, checkpoint, pub, gguf))


def _by_file(path: str | None, cat: Catalog) -> Link | None:
    name = re.split(r"[\\/]", path or "")[-1].lower()
    hit = cat.by_file.get(name) if name.endswith(".gguf") else None
    if hit is None:
        return None
    p, g = hit
    return Link(BY_NAME, f"its file is named like {g.name}", Origin(p.run, p.checkpoint, p, g))


def _recorded_link(rec: serving.Record | None, cat: Catalog, what: str) -> Link | None:
    run = cat.runs_by_id.get(rec.run) if rec is not None else None
    if rec is None or run is None:
        return None
    digest = rec.weights_digest.removeprefix("sha256:")[:12]
    how = f"{what} {rec.checkpoint}'s adapter (sha256:{digest}…) as {rec.model}"
    return Link(EXACT, how, Origin(run, rec.checkpoint))


def by_record(model: ModelInfo, cat: Catalog) -> Link | None:
    """A model the dashboard served from a checkpoint: the same manifest or adapter blob
    (Ollama), the same name loaded from the same folder (vLLM). A name alone is not enough:
    anyone can make a model of that name from something else."""
    if not cat.made:
        return None
    keys = [("blob", b) for b in model.blobs or ()]
    if model.digest:
        keys.insert(0, ("digest", model.digest.lower().removeprefix("sha256:")))
    if model.root:
        keys.append(("lora", f"{model.id}\x00{model.root}"))
    rec = next((cat.made[k] for k in keys if k in cat.made), None)
    return _recorded_link(rec, cat, "the dashboard served")


def link_served(model: ModelInfo, cat: Catalog) -> Link | None:
    return (
        by_record(model, cat)
        or _by_blob(model, cat)
        or by_path(model.root, cat)
        or by_name(_names(model), cat)
        or _by_file(model.root, cat)
    )


def served_models(
    statuses: Iterable[BackendStatus], cat: Catalog, window: slice | None = None
) -> tuple[Served, ...]:
    """Every model of every server, linked (or the `window` of each server's list, as a page
    shows it); a server that is down counts with its last answer."""
    found = []
    for s in statuses:
        seen, stale = (s, False) if s.available else (s.last_seen, True)
        if seen is None:
            continue
        for m in seen.models if window is None else seen.models[window]:
            link = link_served(m, cat)
            # An Ollama model says what it was made from; while some GGUF is still being
            # hashed, "nothing" may just mean "not yet".
            hashing = link is None and bool(m.blobs) and cat.hashing
            found.append(Served(s.backend, m, link, stale, hashing))
    return tuple(found)


def _ollama_name(name: str) -> str:
    """Ollama names are case-insensitive, and a name without a tag means `:latest`."""
    return name.lower() if ":" in name.rsplit("/", 1)[-1] else f"{name.lower()}:latest"


def _served_name(s: Served) -> tuple[bool, str]:
    """What an evaluated model name must equal to be this served model."""
    ollama = s.backend.kind == "ollama"
    return ollama, _ollama_name(s.name) if ollama else s.name


class _ServedIndex:
    """Served models by the name an evaluation gives, each list in serving order."""

    def __init__(self, served: Iterable[Served]) -> None:
        self._by: dict[tuple[bool, str], list[tuple[int, Served]]] = {}
        for i, s in enumerate(served):
            self._by.setdefault(_served_name(s), []).append((i, s))

    def named(self, name: str) -> list[Served]:
        found = self._by.get((False, name), []) + self._by.get((True, _ollama_name(name)), [])
        return [s for _, s in sorted(found, key=lambda x: x[0])]


def _evaluated(e: Evaluation, index: _ServedIndex, cat: Catalog) -> Evaluated:
    name = e.model or ""
    backend = e.backend
    matches = tuple(s for s in index.named(name) if backend is None or s.backend.kind == backend)
    rec = cat.made.get(("result", e.name))
    if rec is not None and (e.model is None or _ollama_name(e.model) != _ollama_name(rec.model)):
        rec = None  # the result asked another model than the line says: it is not that result's
    swept = _recorded_link(rec, cat, "a sweep evaluated")
    if swept is not None:
        # What serves that name now may be another model made since: only the same one counts.
        same = tuple(s for s in matches if s.link and s.link.origin == swept.origin)
        return Evaluated(e, swept, same)
    at = _timestamp(e.generated_at)

    def existed(link: Link) -> bool:
        # What serves the name now cannot be what was evaluated before it was uploaded.
        p = link.origin.publication
        return p is None or at == float("-inf") or _when(p) <= at

    exact = next(
        (s.link for s in matches if s.link and s.link.kind == EXACT and existed(s.link)), None
    )
    names = [name, *(n for s in matches for n in _names(s.model))]
    link = exact or by_name(names, cat, at)
    return Evaluated(e, link or next((s.link for s in matches if s.link), None), matches)


@lru_cache(maxsize=NAMES_REMEMBERED)
def model_id(key: tuple[str, ...]) -> str:
    """The one rule for model ids: see the module's docstring."""
    if key[0] == "repo":
        return key[1].replace("/", "--")
    digest = hashlib.sha1("\x00".join(key).encode()).hexdigest()[:8]
    slug = _NOT_SLUG.sub("-", "-".join(key[1:]).lower()).strip("-.")[:48]
    return f"local--{slug}-{digest}" if slug else f"local--{digest}"


def _key(link: Link | None, name: str) -> tuple[str, ...]:
    if link is not None:
        p = link.origin.publication
        if p is not None and p.repo:
            return ("repo", p.repo.lower())
        return ("run", link.origin.run.id, link.origin.checkpoint or "")
    return ("name", name)


def _strongest(links: Iterable[Link | None]) -> Link | None:
    best: Link | None = None
    for link in links:
        if link is not None and (best is None or STRENGTH[link.kind] > STRENGTH[best.kind]):
            best = link
    return best


def _eval_time(e: Evaluated) -> float:
    return _timestamp(e.evaluation.generated_at)


@dataclass
class _Row:
    names: list[str] = field(default_factory=list)
    publications: list[Publication] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    evaluations: list[Evaluated] = field(default_factory=list)


@dataclass(frozen=True)
class _Built:
    catalog: Catalog
    served: tuple[object, ...]
    evaluations: tuple[Evaluation, ...]
    lineage: Lineage


def _served_key(statuses: Iterable[BackendStatus]) -> tuple[object, ...]:
    """What of the servers' answers the join reads: their models, and whether each is up."""
    return tuple(
        (s.backend, s.available, s.models, s.last_seen.models if s.last_seen else None)
        for s in statuses
    )


_built: _Built | None = None


def build(
    ws: Workspace,
    statuses: Iterable[BackendStatus],
    evaluations: Iterable[Evaluation],
    max_age: float = 0.0,
) -> Lineage:
    """Every model known anywhere (published, served or evaluated), one row each.

    With `max_age`, the last one is reused while the runs' uploads, the servers' models and
    the evaluations are the same: thousands of served models are joined when something
    changes, not on every page."""
    global _built
    cat = recent_catalog(ws, max_age)
    answers = list(statuses)
    evaluated = tuple(evaluations)
    with _cache_lock:
        hit = _built
    served = _served_key(answers) if max_age > 0 else ()
    if (
        max_age > 0
        and hit is not None
        and (hit.catalog is cat or hit.catalog == cat)
        and hit.served == served
        and hit.evaluations == evaluated
    ):
        return hit.lineage
    found = _build(cat, answers, evaluated)
    if max_age > 0:
        with _cache_lock:
            _built = _Built(cat, served, evaluated, found)
    return found


def _build(
    cat: Catalog, statuses: Iterable[BackendStatus], evaluations: tuple[Evaluation, ...]
) -> Lineage:
    served = served_models(statuses, cat)
    rows: dict[tuple[str, ...], _Row] = {}
    for p in cat.publications:
        key: tuple[str, ...] = (
            ("repo", p.repo.lower()) if p.repo else ("run", p.run.id, p.checkpoint or "")
        )
        rows.setdefault(key, _Row()).publications.append(p)
    for s in served:
        row = rows.setdefault(_key(s.link, s.name), _Row())
        row.served.append(s)
        row.names.append(s.name)
    index = _ServedIndex(served)
    for e in evaluations:
        if e.error or not e.model:
            continue
        ev = _evaluated(e, index, cat)
        # Beside what it is linked to; else beside the unlinked served model of its name.
        if ev.link is None and ev.served:
            key = _key(None, ev.served[0].name)
        else:
            key = _key(ev.link, e.model)
        row = rows.setdefault(key, _Row())
        row.evaluations.append(ev)
        row.names.append(e.model)
    models = [_model(key, row, cat) for key, row in rows.items()]
    models.sort(key=_activity)
    return Lineage(cat, served, tuple(models))


def _model(key: tuple[str, ...], row: _Row, cat: Catalog) -> Model:
    repo = None
    pubs = row.publications
    if key[0] == "repo":
        pubs = list(cat.by_repo.get(key[1], ()))
        repo = pubs[0].repo if pubs else key[1]
    evaluations = sorted(row.evaluations, key=_eval_time, reverse=True)
    linked = _strongest([*(s.link for s in row.served), *(e.link for e in evaluations)])
    # What an exact link says beats the newest upload of a repo; a name alone does not.
    origin = None
    if linked is not None and linked.kind == EXACT:
        origin = linked.origin
    elif pubs:
        origin = Origin(pubs[0].run, pubs[0].checkpoint, pubs[0])
    elif linked is not None:
        origin = linked.origin
    link = linked.kind if linked is not None else (EXACT if pubs else None)
    return Model(
        id=model_id(key),
        repo=repo,
        names=tuple(dict.fromkeys(row.names)),
        publications=tuple(pubs),
        served=tuple(row.served),
        evaluations=tuple(evaluations),
        origin=origin,
        link=link,
    )


def _activity(m: Model) -> tuple[bool, float, str]:
    """Most recent first (an upload, an evaluation, the run's start); the rest by name."""
    times = [_when(p) for p in m.publications] + [_eval_time(e) for e in m.evaluations]
    if m.origin is not None:
        times.append(_timestamp(m.origin.run.started_at))
    known = [t for t in times if t != float("-inf")]
    return (not known, -max(known, default=0.0), m.title.lower())


def _timestamp(when: datetime | None) -> float:
    try:
        return when.timestamp() if when is not None else float("-inf")
    except (OverflowError, OSError, ValueError):
        return float("-inf")
