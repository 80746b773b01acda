"""What the upstream upload tool left next to a run: `upload_manifest.json` and the files it made.

Uploading `<run>/final_model` writes `<run>/<model-name>/`; uploading a checkpoint writes
`<run>/checkpoints/<model-name>/` (and the manifest then says `"training_run": "checkpoints"`).
Either folder holds `upload_manifest.json`, `lora/`, `merged-16bit/`, `merged-4bit/` and
`gguf/<name>[-<QUANT>].gguf`. A folder with GGUF files and no manifest yet (still converting,
or made without uploading) is listed too.
"""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import caches
from .checkpoints import CHECKPOINT_NAME, FINAL_MODEL, list_files
from .paths import SETTLED_S, FileKey, file_key, is_inside, read_json_object, scan
from .runs import Run
from .values import as_dict, as_int, as_list, as_str

MANIFEST = "upload_manifest.json"
# Folders a run has for itself; anything else beside them may be the upload tool's.
RUN_FOLDERS = {"checkpoints", "logs", FINAL_MODEL}
FORMAT_FOLDERS = {"lora": "lora", "merged_16bit": "merged-16bit", "merged_4bit": "merged-4bit"}
FORMAT_LABELS = {"lora": "LoRA", "merged_16bit": "merged 16-bit", "merged_4bit": "merged 4-bit"}
# llama.cpp's quantisation names as the upload tool and the hub put them in file names.
QUANT = re.compile(r"(?i)(?:^|[-_.])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32|FP16)$")
# `Hugging Face` repo ids: `user/name`.
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class GgufFile:
    name: str
    path: Path | None  # None: the manifest names it but it is not on disk
    size: int | None
    quantization: str | None  # None for the unquantised base file

    @property
    def present(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class Folder:
    name: str  # "lora/", "merged-16bit/"
    format: str  # "lora", "merged_16bit", "merged_4bit"
    size: int

    @property
    def label(self) -> str:
        return FORMAT_LABELS[self.format]


@dataclass(frozen=True)
class Publication:
    """One `<model-name>/` folder the upload tool wrote for a run."""

    run: Run
    folder: Path
    checkpoint: str | None  # "final_model", "checkpoint-N", or None when not recorded
    repo: str | None  # the Hugging Face repo id, `user/name`
    uploaded_at: datetime | None
    formats: tuple[str, ...]
    huggingface_url: str | None
    folders: tuple[Folder, ...]
    gguf: tuple[GgufFile, ...]
    manifest: dict[str, Any] | None
    error: str | None = None

    @property
    def checkpoint_exists(self) -> bool:
        return has_checkpoint(self.run, self.checkpoint)

    @property
    def name(self) -> str:
        """The folder's name: the repo's name part, as the upload tool makes it."""
        return self.folder.name

    @property
    def labels(self) -> tuple[str, ...]:
        """What was made, for people: LoRA, merged 16-bit, GGUF Q4_K_M, …"""
        formats = [*self.formats, *(f.format for f in self.folders)]
        labels = [FORMAT_LABELS[f] for f in formats if f in FORMAT_LABELS]
        quants = [g.quantization for g in self.gguf if g.present and g.quantization]
        if quants or "gguf" in self.formats:
            labels.append("GGUF " + ", ".join(quants) if quants else "GGUF")
        return tuple(dict.fromkeys(labels))


def has_checkpoint(run: Run, name: str | None) -> bool:
    """Whether a run still has this checkpoint (`final_model`, `checkpoint-N`) on disk."""
    if name == FINAL_MODEL:
        return run.has_final_model
    m = CHECKPOINT_NAME.fullmatch(name or "")
    return m is not None and int(m.group(1)) in run.checkpoint_steps


def quantization(filename: str) -> str | None:
    """`nexus-Q4_K_M.gguf` → `Q4_K_M`; None for the unquantised `nexus.gguf`."""
    stem = filename[: -len(".gguf")] if filename.lower().endswith(".gguf") else filename
    if stem.lower().endswith("-mmproj"):
        return "mmproj"
    m = QUANT.search(stem)
    return m.group(1).upper() if m else None


def publications(run: Run) -> tuple[Publication, ...]:
    """Every upload folder of a run, newest upload first; none for MLX runs (one shared folder)."""
    if run.trainer.layout == "mlx":
        return ()
    # Most runs have no upload folder: known as such while neither listing changes.
    key, sig = str(run.path), _listing_signature(run.path)
    if sig is not None and _without.get(key) == sig:
        return ()
    root = run.trainer.root
    candidates: list[tuple[Path, str | None]] = [
        (f, FINAL_MODEL)
        # A run in Hugging Face's own layout keeps its checkpoint-N folders here too.
        for f in _folders(
            run.path, root, lambda n: n in RUN_FOLDERS or bool(CHECKPOINT_NAME.fullmatch(n))
        )
    ]
    candidates += [
        (f, None)
        for f in _folders(
            run.path / "checkpoints", root, lambda n: bool(CHECKPOINT_NAME.fullmatch(n))
        )
    ]
    found = [p for f, ckpt in candidates if (p := _publication(run, f, ckpt)) is not None]
    found.sort(key=lambda p: (p.uploaded_at is not None, _ts(p.uploaded_at), p.name), reverse=True)
    if not found and sig is not None and time.time() - _changed_at(sig) > SETTLED_S:
        _without[key] = sig
    return tuple(found)


_without: dict[str, tuple[FileKey, FileKey | None]] = {}


def _listing_signature(run_dir: Path) -> tuple[FileKey, FileKey | None] | None:
    """What adding a folder to the run or to its checkpoints/ changes."""
    top = file_key(run_dir)
    return None if top is None else (top, file_key(run_dir / "checkpoints"))


def _changed_at(sig: tuple[FileKey, FileKey | None]) -> float:
    return max(k[3] for k in sig if k is not None) / 1e9


def clear_listings() -> None:
    _without.clear()


caches.register(__name__, clear_listings, "_without")


def _ts(when: datetime | None) -> float:
    if when is None:
        return 0.0
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return 0.0


def _folders(path: Path, root: Path, skip: Callable[[str], bool]) -> list[Path]:
    named = lambda n: not n.startswith(".") and not skip(n)  # noqa: E731
    return sorted(Path(e.path) for e in scan(path, root, "dir", named).entries)


def _publication(run: Run, folder: Path, checkpoint: str | None) -> Publication | None:
    root = run.trainer.root
    manifest_path = folder / MANIFEST
    has_manifest = _is_file(manifest_path, root)
    gguf_dir = folder / "gguf"
    if not has_manifest and not _is_dir(gguf_dir, root):
        return None  # a folder of something else
    manifest = read_json_object(manifest_path, root, "upload_manifest") if has_manifest else None
    error = None
    if not has_manifest:
        error = f"no {MANIFEST} yet: the upload tool writes it last (or was run without uploading)"
    elif manifest is None:
        error = f"{MANIFEST} is not a JSON object (broken, half-written or unreadable)"
    m = manifest or {}
    repo = as_str(m.get("model_name"))
    if repo is not None and not REPO_ID.fullmatch(repo):
        error, repo = f"model_name {repo!r} is not a Hugging Face repo id (user/name)", None
    formats = tuple(f for f in as_list(m.get("formats_created")) if isinstance(f, str))
    listed = [g for g in as_list(m.get("gguf_quantizations")) if isinstance(g, str)]
    if checkpoint is None:
        checkpoint = _uploaded_checkpoint(run, folder)
    return Publication(
        run=run,
        folder=folder,
        checkpoint=checkpoint,
        repo=repo,
        uploaded_at=_when(m.get("upload_timestamp")),
        formats=formats,
        # The hub's own page for the repo: links inside someone else's file are not followed.
        huggingface_url=f"https://huggingface.co/{repo}" if repo else None,
        folders=_format_folders(folder, root, as_dict(m.get("directory_structure"))),
        gguf=_gguf_files(gguf_dir, root, listed),
        manifest=manifest,
        error=error,
    )


def _uploaded_checkpoint(run: Run, folder: Path) -> str | None:
    """Which checkpoint a `checkpoints/<model-name>/` upload came from, when its LoRA copy says.

    The manifest does not record it; a LoRA upload copies the whole checkpoint folder, whose
    `trainer_state.json` keeps its step.
    """
    state = read_json_object(folder / "lora" / "trainer_state.json", run.trainer.root, "lora_state")
    step = as_int((state or {}).get("global_step"))
    if step is not None and step in run.checkpoint_steps:
        return f"checkpoint-{step}"
    return None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
        when.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return when


def _is_file(path: Path, root: Path) -> bool:
    try:
        return path.is_file() and is_inside(path, root)
    except OSError:
        return False


def _is_dir(path: Path, root: Path) -> bool:
    try:
        return path.is_dir() and is_inside(path, root)
    except OSError:
        return False


def _format_folders(folder: Path, root: Path, structure: dict[str, Any]) -> tuple[Folder, ...]:
    found = []
    for fmt, default in FORMAT_FOLDERS.items():
        name = default
        named = as_str(structure.get(fmt))
        if named and named.strip("/") == default:
            name = named.strip("/")
        path = folder / name
        if _is_dir(path, root):
            found.append(Folder(name + "/", fmt, sum(f.size for f in list_files(path, root))))
    return tuple(found)


def _gguf_files(gguf_dir: Path, root: Path, listed: list[str]) -> tuple[GgufFile, ...]:
    files: dict[str, GgufFile] = {}
    named = lambda n: n.lower().endswith(".gguf") and not n.startswith(".")  # noqa: E731
    for e in scan(gguf_dir, root, None, named).entries:
        try:
            st = e.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):  # never a FIFO or a device: these get read in full
            files[e.name] = GgufFile(e.name, Path(e.path), st.st_size, quantization(e.name))
    for name in listed:
        base = Path(name.replace("\\", "/")).name
        if base and base not in files:
            files[base] = GgufFile(base, None, None, quantization(base))
    # The unquantised base first, then by name (Q4_K_M, Q5_K_M, Q8_0).
    return tuple(sorted(files.values(), key=lambda g: (g.quantization is not None, g.name)))
