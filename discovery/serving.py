"""Serving a checkpoint's LoRA adapter on an inference server for an evaluation, and taking it
down again: Ollama makes a model from a base it has and the adapter's files uploaded as blobs;
vLLM (started with runtime LoRA loading) loads the checkpoint folder by path.

Which checkpoints can be served this way and why not, the model names the dashboard chooses,
and the check that the base looks like the model the adapter was trained on live here too.
Every request is bounded by its own deadline; files are read only inside the workspace.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import httpx
import orjson

from .checkpoints import Checkpoint, is_model_file
from .http import BackendError, Deadline, client, read_body, within
from .ollama import blobs_of
from .paths import (
    MAX_FILE_BYTES,
    entry_inside,
    file_cache,
    is_inside,
    open_in,
    read_json_object,
)
from .values import as_dict, as_str

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
CHUNK = 1 << 20
# Deadlines: a blob upload gets this long plus a second per UPLOAD_RATE bytes (a slow disk or a
# server on the LAN); Ollama converts the adapter while creating; vLLM loads it onto the GPU.
UPLOAD_S = 30.0
UPLOAD_RATE = 20 * 2**20
CREATE_S = 600.0
LOAD_S = 300.0
REMOVE_S = 30.0
# A question a server answers at once (whether it loads adapters at runtime), asked while a
# person waits on the form: a server that sits on it is said to, well before a proxy's or
# gunicorn's 30 s ends the request.
PROBE_S = 10.0
# Ollama's rule for a model name's last part (types/model/name.go): 1–80 characters of letters,
# digits, `_`, `-` and `.`, the first a letter, digit or `_`.
OLLAMA_NAME_MAX = 80
_NOT_NAME = re.compile(r"[^a-z0-9_.-]+")
VLLM_RUNTIME_HELP = (
    "Start vLLM with `--enable-lora --max-lora-rank <the adapter's r or more>` and the "
    "environment variable `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`, on a machine that sees the "
    "checkpoint folder at the same path."
)


class ServingError(Exception):
    """Serving or removing an adapter failed; the message says why and what to do."""


@dataclass(frozen=True)
class Adapter:
    """A checkpoint's PEFT LoRA adapter: the two files a server needs, inside the workspace."""

    checkpoint: str
    folder: Path  # what vLLM loads (it must see the same path)
    weights: Path
    config: Path
    base_model: str | None  # adapter_config.json's base_model_name_or_path
    rank: int | None


@dataclass(frozen=True)
class Servable:
    """Whether a checkpoint can be served as an adapter, and why not when it cannot."""

    checkpoint: str
    adapter: Adapter | None
    reason: str | None = None


@dataclass(frozen=True)
class Served:
    """What was served under which name: enough to evaluate it, remove it and link it back."""

    kind: str  # "ollama" or "vllm"
    url: str
    model: str  # the name the Evaluator asks for
    checkpoint: str
    weights_digest: str  # "sha256:<hex>" of adapter_model.safetensors
    config_digest: str
    base: str | None  # Ollama: the model it was made from
    # Ollama: what the made model is on the server, as its lists name it: its manifest digest
    # (/api/tags) and its adapter layers (/api/show's ADAPTER lines; Ollama converts the
    # uploaded safetensors, so these are not the uploaded file's digest). vLLM: the folder it
    # was told to load, which /v1/models gives back as the adapter's root.
    digest: str | None = None
    blobs: tuple[str, ...] = ()
    path: str | None = None


def _files(folder: Path, root: Path) -> tuple[set[str], list[str]]:
    """The files in `folder`, and those of them that are links leading outside `root` (a
    server given the folder would read them)."""
    names: set[str] = set()
    leaving: list[str] = []
    try:
        for e in os.scandir(folder):
            if e.is_file():
                names.add(e.name)
                if not entry_inside(e, root):
                    leaving.append(e.name)
    except OSError:
        pass
    return names, sorted(leaving)


# safetensors: an 8-byte little-endian header length, the JSON header, then the tensors.
SAFETENSORS_PREFIX = 8


def _weights_problem(path: Path, root: Path) -> str | None:
    """Why the adapter's weights are not a whole safetensors file (empty, cut short by a save
    that did not finish, not a regular file inside the workspace), or None."""
    f = open_in(path, root)
    if f is None:
        return f"{ADAPTER_WEIGHTS} cannot be read inside the workspace"
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            head = f.read(SAFETENSORS_PREFIX)
        except OSError as exc:
            return f"{ADAPTER_WEIGHTS} cannot be read ({exc.strerror or exc})"
    if size == 0:
        return f"{ADAPTER_WEIGHTS} is empty (0 bytes): the save did not finish"
    header = int.from_bytes(head, "little") if len(head) == SAFETENSORS_PREFIX else None
    if header is None or header > size - SAFETENSORS_PREFIX:
        return (
            f"{ADAPTER_WEIGHTS} is not a whole safetensors file ({size:,} bytes, cut short "
            "or another format)"
        )
    return None


def api_for(backend_kind: str) -> str | None:
    """Which serving API a configured server speaks: Ollama's, or vLLM's on an OpenAI-style
    server (llama.cpp and others answer its load request with a 404, said so then)."""
    return {"ollama": "ollama", "openai": "vllm"}.get(backend_kind)


def servable(ckpt: Checkpoint, root: Path) -> Servable:
    """Whether `ckpt` holds a LoRA adapter a server can load, with the reason when not."""
    return servable_at(ckpt.name, ckpt.path, root, ckpt.kind)


def servable_at(name: str, path: Path, root: Path, kind: str = "folder") -> Servable:
    """The same for a checkpoint known by its name and place (a queued sweep's)."""
    ckpt = Checkpoint(name, None, False, path, kind=kind)
    if ckpt.kind == "file" or path.is_file():
        return Servable(
            name,
            None,
            f"an MLX adapter file ({ckpt.path.name}): Ollama and vLLM load PEFT adapters "
            f"({ADAPTER_WEIGHTS} with {ADAPTER_CONFIG}); mlx_lm.fuse can make a model of it",
        )
    names, leaving = _files(ckpt.path, root)
    if leaving:
        return Servable(
            name,
            None,
            f"{_listing(leaving)} in it {'links' if len(leaving) == 1 else 'link'} outside "
            "the workspace, which a server given this checkpoint would read",
        )
    if ADAPTER_WEIGHTS not in names:
        if os.path.lexists(ckpt.path / ADAPTER_WEIGHTS):
            why = f"{ADAPTER_WEIGHTS} is not a regular file (a FIFO, a folder, a broken link)"
        elif "adapters.safetensors" in names or "adapters.npz" in names:
            why = "mlx-lm's adapter (adapters.safetensors), not a PEFT adapter"
        elif "adapter_model.bin" in names:
            why = (
                f"the adapter is saved as adapter_model.bin; Ollama reads only {ADAPTER_WEIGHTS} "
                "(save it with safe_serialization=True)"
            )
        elif any(is_model_file(n) for n in names):
            why = (
                "a full fine-tune (the whole model's weights, no LoRA adapter): serve it as a model"
            )
        else:
            why = "no saved weights in this checkpoint"
        return Servable(name, None, why)
    config = read_json_object(ckpt.path / ADAPTER_CONFIG, root)
    if config is None:
        return Servable(name, None, f"{ADAPTER_WEIGHTS} without a readable {ADAPTER_CONFIG}")
    peft_type = (as_str(config.get("peft_type")) or "LORA").upper()
    if peft_type != "LORA":
        return Servable(name, None, f"a {peft_type} adapter: servers load LoRA adapters only")
    weights = ckpt.path / ADAPTER_WEIGHTS
    if problem := _weights_problem(weights, root):
        return Servable(name, None, problem)
    rank = config.get("r")
    return Servable(
        name,
        Adapter(
            checkpoint=name,
            folder=ckpt.path,
            weights=weights,
            config=ckpt.path / ADAPTER_CONFIG,
            base_model=as_str(config.get("base_model_name_or_path")),
            rank=rank if type(rank) is int else None,
        ),
    )


def model_name(run: str, ckpt: Checkpoint) -> str:
    """The name a checkpoint is served under, `tuner-<run>-ckpt<step>` (`-final` for the final
    model, whose step is the last checkpoint's), in the characters Ollama accepts; a long run
    name keeps a hash of the whole."""
    if ckpt.is_final or ckpt.step is None:
        suffix = "-final" if ckpt.is_final else f"-{_clean(ckpt.name) or 'model'}"
    else:
        suffix = f"-ckpt{ckpt.step}"
    stem = f"tuner-{_clean(run) or 'run'}"
    if len(stem) + len(suffix) > OLLAMA_NAME_MAX:
        tag = hashlib.sha256(run.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = stem[: OLLAMA_NAME_MAX - len(suffix) - len(tag) - 1].rstrip("-.") + "-" + tag
    return stem + suffix


def ollama_name(name: str) -> str:
    """The name as Ollama lists it: `:latest` when it has no tag."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def default_selection(
    checkpoints: Sequence[Checkpoint], best: str | None, servable: Iterable[str], most: int = 6
) -> list[str]:
    """What a sweep evaluates unless told: the best, the newest and the final model, then
    evenly spaced others up to `most` in all; only servable ones, in step order (final last)."""
    ok = set(servable)
    pool = [c for c in checkpoints if c.name in ok]
    order = {c.name: i for i, c in enumerate(sorted(pool, key=step_order))}
    steps = [c for c in pool if not c.is_final]
    picked = dict.fromkeys(
        n
        for n in (
            best,
            max(steps, key=lambda c: c.step or 0).name if steps else None,
            next((c.name for c in pool if c.is_final), None),
        )
        if n in order
    )
    rest = sorted((c for c in pool if c.name not in picked), key=step_order)
    want = max(most - len(picked), 0)
    if rest and want:
        # Evenly spaced through the others, both ends included when there is room.
        span = len(rest) - 1
        idx = {round(i * span / max(want - 1, 1)) for i in range(min(want, len(rest)))}
        picked.update(dict.fromkeys(rest[i].name for i in sorted(idx)))
    return sorted(picked, key=order.__getitem__)[:most]


def step_order(c: Checkpoint) -> tuple[bool, int]:
    """The order a sweep evaluates checkpoints in: by step, the final model last."""
    return (c.is_final, c.step or 0)


def _listing(names: Sequence[str], most: int = 3) -> str:
    more = len(names) - most
    return ", ".join(names[:most]) + (f" and {more} more" if more > 0 else "")


def _clean(text: str) -> str:
    return _NOT_NAME.sub("-", text.lower()).strip("-.")


# Architecture families as names spell them; an alias names the family it belongs to.
_FAMILIES = {
    "codellama": "llama",
    "tinyllama": "llama",
    "smollm": "llama",
    "vicuna": "llama",
    "llama": "llama",
    "mixtral": "mixtral",
    "mistral": "mistral",
    "ministral": "mistral",
    "codegemma": "gemma",
    "gemma": "gemma",
    "qwen": "qwen",
    "qwq": "qwen",
    "phi": "phi",
    "deepseek": "deepseek",
    "granite": "granite",
    "olmo": "olmo",
    "falcon": "falcon",
    "starcoder": "starcoder",
    "command-r": "cohere",
    "aya": "cohere",
    "internlm": "internlm",
    "yi": "yi",
}
_FAMILY = re.compile(
    r"(?<![a-z])("
    + "|".join(sorted(map(re.escape, _FAMILIES), key=len, reverse=True))
    + r")(?![a-z])"
)
_SNAPSHOT = re.compile(r"[0-9a-f]{40}|snapshots")
# Ollama's `family` is the GGUF file's architecture, which some families share: Mistral 7B and
# Yi convert as "llama", DeepSeek's distills as "llama" or "qwen2".
_ARCHITECTURES = {"mistral": {"llama"}, "yi": {"llama"}, "deepseek": {"llama", "qwen"}}


def _model_part(name: str) -> str:
    """The part of a name or path that names the model: a Hub cache folder's
    `models--<org>--<name>/snapshots/<hash>` is `<name>`, a repo id its repo."""
    for part in reversed([p for p in re.split(r"[\\/]", name) if p]):
        if part.startswith("models--"):
            return part.rsplit("--", 1)[-1]
        if not _SNAPSHOT.fullmatch(part):
            return part
    return name


def family(name: str | None) -> str | None:
    """The architecture family a model name or Hugging Face id spells, when it spells one."""
    if not name:
        return None
    m = _FAMILY.search(_model_part(name.lower()))
    return _FAMILIES[m.group(1)] if m else None


def base_warning(base: str, base_family: str | None, adapter_base: str | None) -> str | None:
    """A warning when the served base looks like another family than the adapter was trained
    on (Ollama names never equal Hugging Face ids, so a name can only look alike, not match)."""
    wanted = family(adapter_base)
    named = family(base)
    have = {f for f in (named, family(base_family)) if f}
    if wanted is None or not have or wanted in have:
        return None
    if named is None and have <= _ARCHITECTURES.get(wanted, set()):
        return None  # only the architecture to go by, and the adapter's family uses it
    return (
        f"{base} looks like a {'/'.join(sorted(have))} model, but the adapter was trained on "
        f"{adapter_base} ({wanted}): its answers will be nonsense unless {base} is that model."
    )


def file_digest(path: Path, root: Path) -> str:
    """`sha256:<hex>` of a file inside `root`, read in chunks."""
    f = _open(path, root)
    h = hashlib.sha256()
    with f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def _open(path: Path, root: Path) -> BinaryIO:
    f = open_in(path, root)
    if f is None:
        raise ServingError(f"{path.name} cannot be read inside the workspace")
    return f


def _error(kind: str, url: str, status: int, body: bytes) -> str:
    """The server's own words for a failed request (Ollama `{"error"}`, vLLM's `message`)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    said = as_str(as_dict(data).get("error")) or as_str(as_dict(data).get("message"))
    said = said or as_str(as_dict(as_dict(data).get("error")).get("message"))
    said = said or as_str(as_dict(data).get("detail"))
    if said is None:
        said = body.decode("utf-8", "replace").strip()[:300] or "no reason given"
    return f"{kind} answered HTTP {status} to {url}: {said}"


def _call(
    http: httpx.Client,
    method: str,
    url: str,
    seconds: float,
    body: Any = None,
    content: Iterator[bytes] | None = None,
) -> tuple[int, bytes]:
    deadline = Deadline(seconds)
    left = deadline.remaining()
    try:
        with (
            within(deadline),
            http.stream(
                method,
                url,
                json=body,
                content=content,
                timeout=httpx.Timeout(left, connect=min(left, 2.0)),
            ) as response,
        ):
            return response.status_code, read_body(response, deadline, url)
    except httpx.TimeoutException:
        raise ServingError(f"{url} did not answer within {seconds:g} s") from None
    except httpx.ConnectError:
        raise ServingError(f"nothing answers at {url}: is the server running?") from None
    except httpx.HTTPError as exc:
        raise ServingError(f"the connection to {url} broke ({type(exc).__name__})") from None
    except BackendError as exc:
        raise ServingError(f"{url}: {exc.kind} {exc.detail}".strip()) from None


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


# Ollama


def ensure_blob(http: httpx.Client, base: str, path: Path, root: Path, digest: str) -> bool:
    """Upload a file as a blob unless the server has it; True when it was uploaded."""
    url = f"{base}/api/blobs/{digest}"
    status, body = _call(http, "HEAD", url, REMOVE_S)
    if status == 200:
        return False
    if status != 404:
        raise ServingError(_error("Ollama", url, status, body))
    f = _open(path, root)
    size = os.fstat(f.fileno()).st_size
    status, body = _call(http, "POST", url, UPLOAD_S + size / UPLOAD_RATE, content=_chunks(f))
    if status not in (200, 201):
        # A 400 here is a digest mismatch: the file changed while it was read.
        raise ServingError(_error("Ollama", url, status, body))
    return True


def create(
    http: httpx.Client,
    base: str,
    name: str,
    from_model: str,
    adapters: dict[str, str],
    stream: bool = True,
) -> None:
    """`POST /api/create` a model from `from_model` and adapter blobs, streamed or not; an
    error, before the stream or in it, is raised with the server's words."""
    url = f"{base}/api/create"
    request = {"model": name, "from": from_model, "adapters": adapters, "stream": stream}
    status, body = _call(http, "POST", url, CREATE_S, body=request)
    if status != 200:
        raise ServingError(_error("Ollama", url, status, body))
    last: str | None = None
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            item = as_dict(orjson.loads(line))
        except orjson.JSONDecodeError:
            raise ServingError(f"Ollama answered {url} with something not JSON") from None
        if (error := as_str(item.get("error"))) is not None:
            raise ServingError(f"Ollama could not create {name} from {from_model}: {error}")
        last = as_str(item.get("status")) or last
    if last != "success":
        raise ServingError(f"Ollama's answer to {url} ended without success (last: {last})")


def delete(http: httpx.Client, base: str, name: str, seconds: float = REMOVE_S) -> bool:
    """`DELETE /api/delete` a model; False when it was not there."""
    url = f"{base}/api/delete"
    status, body = _call(http, "DELETE", url, seconds, body={"model": name})
    if status == 404:
        return False
    if status != 200:
        raise ServingError(_error("Ollama", url, status, body))
    return True


# vLLM


def load_lora(
    http: httpx.Client, base: str, name: str, folder: Path, seconds: float = LOAD_S
) -> None:
    url = f"{base}/v1/load_lora_adapter"
    body = {"lora_name": name, "lora_path": str(folder)}
    status, answer = _call(http, "POST", url, seconds, body=body)
    if status == 200:
        return
    said = _error("vLLM", url, status, answer)
    if status == 404 and _route_missing(answer):
        # FastAPI's own 404: the route is only there with runtime loading on.
        raise ServingError(f"{base} cannot load adapters at runtime. {VLLM_RUNTIME_HELP}")
    if status in (400, 404):
        raise ServingError(f"{said}. {VLLM_RUNTIME_HELP}")
    raise ServingError(said)


def _route_missing(body: bytes) -> bool:
    try:
        return bool(orjson.loads(body) == {"detail": "Not Found"})
    except orjson.JSONDecodeError:
        return True  # not vLLM's JSON at all: another server without the route


def runtime_lora_problem(base: str, timeout: float = PROBE_S) -> str | None:
    """Why this OpenAI-style server cannot load adapters at runtime, asked without changing
    anything: unloading a name never loaded is vLLM's own 404 with runtime loading on, and
    FastAPI's bare 404 (or another server's) without it."""
    url = f"{base}/v1/unload_lora_adapter"
    with client() as http:
        status, body = _call(http, "POST", url, timeout, body={"lora_name": _PROBE_NAME})
    if status == 404 and _route_missing(body):
        return f"{base} cannot load adapters at runtime. {VLLM_RUNTIME_HELP}"
    if status >= 500:
        return _error("The server", url, status, body)
    return None


_PROBE_NAME = "tuner-dashboard-probe-never-loaded"
# A trial load before a sweep starts: vLLM reads the adapter then, so a long wait is a slow disk.
TRIAL_S = 60.0


def load_problem(base: str, adapter: Adapter) -> str | None:
    """Why this vLLM cannot load `adapter` (it does not see the folder, the rank is above its
    --max-lora-rank, ...), found by loading it under a name of its own and unloading it again,
    so a sweep is refused before anything starts rather than failing checkpoint by checkpoint."""
    name = f"tuner-dashboard-trial-{os.urandom(4).hex()}"
    try:
        with client() as http:
            load_lora(http, base, name, adapter.folder.resolve(), TRIAL_S)
            unload_lora(http, base, name)
    except ServingError as exc:
        return str(exc)
    return None


def unload_lora(http: httpx.Client, base: str, name: str, seconds: float = REMOVE_S) -> bool:
    """Unload an adapter; False when it was not loaded."""
    url = f"{base}/v1/unload_lora_adapter"
    status, body = _call(http, "POST", url, seconds, body={"lora_name": name})
    if status == 404:
        return False
    if status != 200:
        raise ServingError(_error("vLLM", url, status, body))
    return True


# Both


def serve(
    kind: str, base_url: str, adapter: Adapter, name: str, root: Path, base: str | None = None
) -> Served:
    """Serve `adapter` under `name`: ready for the Evaluator when this returns."""
    weights = file_digest(adapter.weights, root)
    config = file_digest(adapter.config, root)
    with client() as http:
        if kind == "ollama":
            if not base:
                raise ServingError("Ollama needs the base model the adapter goes on")
            name = ollama_name(name)
            for file, sha in ((adapter.weights, weights), (adapter.config, config)):
                ensure_blob(http, base_url, file, root, sha)
            adapters = {ADAPTER_WEIGHTS: weights, ADAPTER_CONFIG: config}
            create(http, base_url, name, base, adapters)
            digest, blobs = made(http, base_url, name)
            return Served(
                kind, base_url, name, adapter.checkpoint, weights, config, base, digest, blobs
            )
        if kind == "vllm":
            # The name is the dashboard's: one left loaded (kept by an earlier sweep) is
            # replaced, as Ollama's create replaces a model of the same name.
            folder = adapter.folder.resolve()
            unload_lora(http, base_url, name)
            load_lora(http, base_url, name, folder)
            return Served(
                kind, base_url, name, adapter.checkpoint, weights, config, None, path=str(folder)
            )
    raise ServingError(f"a {kind} server cannot be given adapters")


def made(http: httpx.Client, base: str, name: str) -> tuple[str | None, tuple[str, ...]]:
    """What Ollama made of a create: the model's manifest digest and its adapter blobs, as far
    as the server says (the model is served either way; lineage then has less to go on)."""
    digest: str | None = None
    blobs: tuple[str, ...] = ()
    try:
        # `name` too, for servers older than the `model` key (as the probe asks).
        ask = {"model": name, "name": name}
        status, body = _call(http, "POST", f"{base}/api/show", REMOVE_S, body=ask)
        if status == 200:
            blobs = blobs_of(as_str(as_dict(_json(body)).get("modelfile")) or "", True)
        status, body = _call(http, "GET", f"{base}/api/tags", REMOVE_S)
        if status == 200:
            listed = as_dict(_json(body)).get("models")
            for m in listed if isinstance(listed, list) else ():
                m = as_dict(m)
                if ollama_name(as_str(m.get("name")) or as_str(m.get("model")) or "") == name:
                    digest = _bare(as_str(m.get("digest")))
    except ServingError:
        pass
    return digest, blobs


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _bare(digest: str | None) -> str | None:
    """A digest as Ollama's lists give it: lower-case hex, without `sha256:`."""
    return digest.lower().removeprefix("sha256:") if digest else None


def unserve(served: Served, seconds: float = REMOVE_S) -> bool:
    """Remove what `serve` made; False when it was already gone."""
    with client() as http:
        if served.kind == "ollama":
            return delete(http, served.url, served.model, seconds)
        return unload_lora(http, served.url, served.model, seconds)


# What was served from which checkpoint, recorded in the workspace (one JSON object a line) so
# the lineage of `/models/` can say `exact` of a served or removed model and of its results:
# the workspace, unlike the database, is what every dashboard on it reads and what a restart
# or a new database keeps, beside the Evaluator's result files it explains.
RECORD = PurePath(".tuner", "served.jsonl")


@dataclass(frozen=True)
class Record:
    """One checkpoint served under one name on one server (and the result evaluated on it)."""

    run: str  # the run's id, `<trainer>/<run>`
    checkpoint: str
    kind: str  # "ollama" or "vllm"
    server: str
    model: str
    weights_digest: str
    digest: str | None = None  # see Served
    blobs: tuple[str, ...] = ()
    path: str | None = None
    base: str | None = None
    result: str | None = None  # the Evaluator's result file's name, once written
    at: str | None = None


def record(root: Path, run: str, served: Served, result: str | None = None) -> None:
    """Append what `served` is to the workspace's record; OSError when it cannot be written."""
    folder = root / RECORD.parent
    folder.mkdir(exist_ok=True)
    if not is_inside(folder, root.resolve()):
        raise OSError(f"{RECORD.parent} leads outside the workspace")
    line = {
        "run": run,
        "checkpoint": served.checkpoint,
        "kind": served.kind,
        "server": served.url,
        "model": served.model,
        "weights_digest": served.weights_digest,
        "digest": served.digest,
        "blobs": list(served.blobs),
        "path": served.path,
        "base": served.base,
        "result": result,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(root / RECORD, flags, 0o644)
    try:
        # One write of one line: appends from two workers do not interleave.
        os.write(fd, orjson.dumps(line) + b"\n")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Recorded:
    """The workspace's record as read: its records, how many lines were none (garbage, a line
    still being written), and why the file could not be read at all."""

    records: tuple[Record, ...] = ()
    skipped: int = 0
    problem: str | None = None


def recorded(root: Path) -> tuple[Record, ...]:
    """Everything the workspace's record says was served, oldest first; lines that are not
    records are skipped."""
    return read_record(root).records


def read_record(root: Path) -> Recorded:
    """The workspace's record with what was skipped of it, for the pages to say."""
    path = root / RECORD
    found = file_cache.get(path, root, "served", _records)
    return found if found is not None else Recorded(problem=_record_problem(path, root))


def _record_problem(path: Path, root: Path) -> str | None:
    """Why the record could not be read (a FIFO, a link out, too big), or None when absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{RECORD} is a broken link" if os.path.lexists(path) else None
    except OSError as exc:
        return f"{RECORD} cannot be read ({exc.strerror or exc})"
    if not is_inside(path, root):
        return f"{RECORD} leads outside the workspace and is not read"
    if not stat.S_ISREG(st.st_mode):
        return f"{RECORD} is not a regular file"
    if st.st_size > MAX_FILE_BYTES:
        return f"{RECORD} is larger than {MAX_FILE_BYTES // 2**20} MB and is not read"
    return f"{RECORD} cannot be read"


def _records(data: bytes) -> Recorded:
    found = []
    skipped = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        item = as_dict(_json(line))
        run, checkpoint = as_str(item.get("run")), as_str(item.get("checkpoint"))
        kind, server = as_str(item.get("kind")), as_str(item.get("server"))
        model, weights = as_str(item.get("model")), as_str(item.get("weights_digest"))
        if not (run and checkpoint and kind and server and model and weights):
            skipped += 1
            continue
        blobs = item.get("blobs")
        found.append(
            Record(
                run=run,
                checkpoint=checkpoint,
                kind=kind,
                server=server,
                model=model,
                weights_digest=weights,
                digest=_bare(as_str(item.get("digest"))),
                blobs=tuple(
                    b.lower()
                    for b in (blobs if isinstance(blobs, list) else ())
                    if isinstance(b, str)
                ),
                path=as_str(item.get("path")),
                base=as_str(item.get("base")),
                result=as_str(item.get("result")),
                at=as_str(item.get("at")),
            )
        )
    return Recorded(tuple(found), skipped)
