"""The demo's inference server: Ollama's API over the GGUF files the demo's runs published.

`make run` starts it beside the demo, on a free loopback port, and points the dashboard at it
(`OLLAMA_HOST`). It answers what the dashboard and the upstream Evaluator ask an Ollama:
`/api/version`, `/api/tags`, `/api/ps`, `/api/show` (a Modelfile whose FROM and ADAPTER lines
name blobs by the sha256 of the demo's own GGUF files, so lineage is `exact`) and `/api/chat`
(tool calls for the demo's prompt sets, right more often for the later models). Its version
says it is the demo's; it runs no model.

It also takes what a sweep gives it: adapter files as blobs (`/api/blobs`, checked against
their digest, then forgotten), models made from a base it has and those blobs (`/api/create`,
streamed or not), which answer as well as their adapter's digest happens to make them, and
`/api/delete`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .evaluator import DEMO_TOOLS

VERSION = "demo (Tuner Dashboard's stand-in for Ollama)"
# Ollama keeps a model loaded this long after its last request, then unloads it.
KEEP_ALIVE = timedelta(minutes=5)
MAX_LOADED = 2  # more than this and the least recently used one is unloaded
CONTEXT_LENGTH = 8192
# A library model pulled for comparison: it comes from no run. Its blob is no file of the demo.
STOCK = "mistral:7b-instruct"
# How often each kind of model answers a demo case right: the later training did better.
SKILL = {"sft": 0.6, "kto": 0.8, "checkpoint": 0.7, "stock": 0.35}
# The model families Ollama reports for the demo's base models, and their sizes.
FAMILIES = (("qwen", "qwen2", "7.6B"), ("llama", "llama", "8.0B"), ("", "llama", "7.2B"))


@dataclass(frozen=True)
class Served:
    """One model as Ollama lists it, with the blobs its Modelfile names (FROM, then ADAPTER)."""

    name: str
    base: str  # FROM: a GGUF model's own file, or the base model under an adapter
    adapter: str | None
    size: int
    quantization: str
    family: str
    parameter_size: str
    modified_at: str
    skill: float

    @property
    def digest(self) -> str:
        """The manifest's sha256, as /api/tags lists it (not a blob's)."""
        layers = [self.base, *([self.adapter] if self.adapter else [])]
        return hashlib.sha256(json.dumps(layers).encode()).hexdigest()


def served_models(root: Path) -> list[Served]:
    """What the demo's server has: each repo's newest upload as Ollama pulls it from the hub
    (`hf.co/<repo>-GGUF:<quant>`), each checkpoint upload as a local model made from a base and
    its adapter, and one library model that no run made."""
    uploads = sorted(_uploads(root), key=lambda u: u["at"], reverse=True)
    models: list[Served] = []
    repos: set[str] = set()
    for up in uploads:
        family, params = _family(up["base_model"])
        common = {"family": family, "parameter_size": params, "modified_at": up["at"]}
        if up["checkpoint"] is not None:
            gguf = up["files"].get(None) or next(iter(up["files"].values()))
            name = f"{up['name']}:checkpoint-{up['checkpoint']}"
            base, adapter = _sha_of_text(up["base_model"]), _sha(gguf)
            size = gguf.stat().st_size
            models.append(
                Served(name, base, adapter, size, "F16", skill=SKILL["checkpoint"], **common)
            )
        elif up["repo"] not in repos:
            repos.add(up["repo"])
            skill = SKILL["kto"] if "kto" in up["repo"] else SKILL["sft"]
            for quant, gguf in up["files"].items():
                if quant is None:
                    continue  # the hub repo's unquantised file is not what people pull
                name, size = f"hf.co/{up['repo']}-GGUF:{quant}", gguf.stat().st_size
                models.append(Served(name, _sha(gguf), None, size, quant, skill=skill, **common))
    pulled = _iso(time.time() - 30 * 86400)
    stock = Served(
        STOCK,
        _sha_of_text(STOCK),
        None,
        4_372_824_384,
        "Q4_0",
        "llama",
        "7.2B",
        pulled,
        SKILL["stock"],
    )
    return [*models, stock]


def _uploads(root: Path) -> list[dict[str, Any]]:
    """What the upload tool left in the demo's runs (sampledata.upload writes it)."""
    found = []
    for manifest in sorted((root / "Trainers").glob("**/upload_manifest.json")):
        data = json.loads(manifest.read_text())
        folder = manifest.parent
        files: dict[str | None, Path] = {}
        name = data["model_name"].split("/")[-1]
        for gguf in sorted((folder / "gguf").glob("*.gguf")):
            quant = gguf.stem.removeprefix(name).removeprefix("-") or None
            files[quant] = gguf
        if not files:
            continue
        checkpoint = None
        if folder.parent.name == "checkpoints":
            state = folder / "lora" / "trainer_state.json"
            checkpoint = json.loads(state.read_text()).get("global_step") if state.is_file() else 0
        adapter = folder / "lora" / "adapter_config.json"
        if not adapter.is_file():
            adapter = folder.parent / "final_model" / "adapter_config.json"
        base = json.loads(adapter.read_text()).get("base_model_name_or_path", "")
        at = datetime.fromisoformat(data["upload_timestamp"]).astimezone().isoformat()
        found.append(
            {
                "repo": data["model_name"],
                "name": name,
                "files": files,
                "at": at,
                "checkpoint": checkpoint,
                "base_model": base,
            }
        )
    return found


def _family(base_model: str) -> tuple[str, str]:
    lowered = base_model.lower()
    return next((f, p) for key, f, p in FAMILIES if key in lowered)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sha_of_text(text: str) -> str:
    return hashlib.sha256(f"demo blob of {text}".encode()).hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat()


def modelfile(model: Served, blobs: str) -> str:
    """What `ollama show --modelfile` prints: FROM and ADAPTER name blobs in the models folder."""
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {model.name}",
        "",
        f"FROM {blobs}/sha256-{model.base}",
    ]
    if model.adapter:
        lines.append(f"ADAPTER {blobs}/sha256-{model.adapter}")
    lines += ['TEMPLATE """[INST] {{ .Prompt }} [/INST]"""', "PARAMETER stop [INST]", ""]
    return "\n".join(lines)


_CASE = re.compile(r"\bCase (\d+):")
_SESSION = re.compile(r"sessionId:\s*\"?([\w-]+)")
_WORKSPACE = re.compile(r"workspaceId:\s*\"?([\w-]+)")
_WORD = re.compile(r"[a-z]+")
_CAMEL = re.compile(r"[A-Z]?[a-z]+")
# Placeholder arguments by the schema's type.
PLACEHOLDER: dict[str, Any] = {"array": [], "object": {}, "boolean": False, "number": 1}


def tool_schemas(root: Path) -> dict[str, Any]:
    """The workspace's tools/tool_schemas.json (there once the training project's tools/ is
    copied in, which may be while the server runs), so the upstream prompt sets get plausible
    calls too."""
    path = root / "tools" / "tool_schemas.json"
    try:
        return _schemas(path, path.stat().st_mtime_ns)
    except OSError:
        return {}


@functools.lru_cache(maxsize=2)
def _schemas(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        schemas = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return schemas if isinstance(schemas, dict) else {}


def chat_message(
    model: Served, messages: list[Any], schemas: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The assistant's reply, the same each time for the same model and question: as often as
    the model's skill says, the tools a demo case expects, or for any other question the tool
    whose name shares most words with it; otherwise an answer in words."""
    texts = [m for m in messages if isinstance(m, dict)]
    user = [str(m.get("content", "")) for m in texts if m.get("role") == "user"]
    question = user[-1] if user else ""
    system = " ".join(str(m.get("content", "")) for m in texts if m.get("role") == "system")
    seed = hashlib.sha256(f"{model.name}\0{question}".encode()).digest()
    case = _CASE.search(question)
    if case is not None:
        n = int(case.group(1))
        tools = [(t, {"path": f"Projects/{n}"}) for t in DEMO_TOOLS[n % len(DEMO_TOOLS)]]
    else:
        tools = _closest_tool(question, schemas or {})
    if not tools or random.Random(seed).random() >= model.skill:
        return {
            "role": "assistant",
            "content": "Which notes do you mean? Tell me the project and I will look there first.",
        }
    session = _SESSION.search(system)
    workspace = _WORKSPACE.search(system)
    context = {
        "sessionId": session.group(1) if session else "session_1764000000000_demo00001",
        "workspaceId": workspace.group(1) if workspace else "default",
        "sessionDescription": "Working on the user's notes",
        "sessionMemory": "The user keeps one folder a project.",
        "toolContext": "Asked to act on the vault's notes.",
        "primaryGoal": question[:80] or "Help with the notes",
        "subgoal": "Call the right tool",
    }
    calls = [{"function": {"name": t, "arguments": {"context": context, **a}}} for t, a in tools]
    return {"role": "assistant", "content": "", "tool_calls": calls}


def _closest_tool(question: str, schemas: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    words = {w.removesuffix("s") for w in _WORD.findall(question.lower())}
    best, score = None, 0
    for name in schemas:
        parts = {w.lower().removesuffix("s") for w in _CAMEL.findall(name)} - {"manager"}
        if len(parts & words) > score:
            best, score = name, len(parts & words)
    if best is None:
        return []
    params = schemas[best].get("parameters") if isinstance(schemas[best], dict) else None
    args = {
        p["name"]: PLACEHOLDER.get(str(p.get("type")), question[:60])
        for p in params or []
        if isinstance(p, dict) and not p.get("optional") and p.get("name") != "context"
    }
    return [(best, args)]


class DemoOllama:
    """The server: `start()` on a free loopback port, `stop()`; `url` and `host` say where."""

    def __init__(self, root: Path, models_folder: Path, reply_seconds: float = 0.3) -> None:
        self.root = root
        self.models = {m.name: m for m in served_models(root)}
        # Where its Modelfiles say the blobs are (Ollama's OLLAMA_MODELS); nothing is kept there.
        self.blobs = str(models_folder / "blobs")
        self.reply_seconds = reply_seconds
        self._lock = threading.Lock()
        self._blobs: set[str] = set()
        # name -> when it unloads; the newest upload's first quant starts loaded.
        first = next(iter(self.models))
        self._loaded: dict[str, datetime] = {first: datetime.now(UTC) + KEEP_ALIVE}
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def loaded(self) -> dict[str, datetime]:
        """The loaded models and when each unloads, least recently used first."""
        now = datetime.now(UTC)
        with self._lock:
            for name, until in list(self._loaded.items()):
                if until <= now:
                    del self._loaded[name]
            return dict(self._loaded)

    def load(self, name: str) -> None:
        with self._lock:
            self._loaded.pop(name, None)
            self._loaded[name] = datetime.now(UTC) + KEEP_ALIVE
            while len(self._loaded) > MAX_LOADED:
                del self._loaded[next(iter(self._loaded))]

    def tag(self, m: Served) -> dict[str, Any]:
        return {
            "name": m.name,
            "model": m.name,
            "modified_at": m.modified_at,
            "size": m.size,
            "digest": m.digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": m.family,
                "families": [m.family],
                "parameter_size": m.parameter_size,
                "quantization_level": m.quantization,
            },
        }

    def ps(self) -> dict[str, Any]:
        models = []
        for name, until in reversed(self.loaded().items()):
            m = self.models.get(name)
            if m is None:
                continue  # deleted meanwhile
            entry = {**self.tag(m), "expires_at": until.astimezone().isoformat()}
            models.append(entry | {"size_vram": m.size, "context_length": CONTEXT_LENGTH})
        return {"models": models}

    def show(self, m: Served) -> dict[str, Any]:
        return {
            "license": "",
            "modelfile": modelfile(m, self.blobs),
            "parameters": "stop                           [INST]",
            "template": "[INST] {{ .Prompt }} [/INST]",
            "details": self.tag(m)["details"],
            "model_info": {"general.architecture": m.family, "general.file_type": 15},
            "capabilities": ["completion", "tools"],
            "modified_at": m.modified_at,
        }

    def chat(self, m: Served, request: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        was_loaded = m.name in self.loaded()
        self.load(m.name)
        time.sleep(self.reply_seconds)
        messages = request.get("messages")
        messages = messages if isinstance(messages, list) else []
        message = chat_message(m, messages, tool_schemas(self.root))
        took = int((time.monotonic() - started) * 1e9)
        return {
            "model": m.name,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": message,
            "done": True,
            "done_reason": "stop",
            "total_duration": took,
            "load_duration": 0 if was_loaded else took // 3,
            "prompt_eval_count": 180,
            "eval_count": 40,
            "eval_duration": took // 2,
        }

    def has_blob(self, digest: str) -> bool:
        with self._lock:
            return digest in self._blobs

    def add_blob(self, digest: str, data: bytes) -> str | None:
        """Keep a blob's digest (its bytes are not needed: nothing runs); the error if the
        bytes are not what the digest says."""
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            return f'digest mismatch, expected "{digest}", got "{got}"'
        with self._lock:
            self._blobs.add(digest)
        return None

    def create(self, request: dict[str, Any]) -> str | None:
        """Make a model from a base it has and adapter blobs it was given; the error if not."""
        name, base = str(request.get("model") or ""), str(request.get("from") or "")
        adapters = request.get("adapters")
        adapters = adapters if isinstance(adapters, dict) else {}
        found = self.models.get(base) or self.models.get(f"{base}:latest")
        if not name or found is None:
            return "pull model manifest: file does not exist"
        missing = [d for d in adapters.values() if not self.has_blob(str(d))]
        if missing:
            return f"open {self.blobs}/{str(missing[0]).replace(':', '-')}: no such file"
        weights = str(adapters.get("adapter_model.safetensors") or "")
        # Ollama converts the adapter to GGUF: a layer of its own, not the uploaded file.
        layer = hashlib.sha256(f"demo adapter converted from {weights}".encode()).hexdigest()
        made = Served(
            name=name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest",
            base=found.base,
            adapter=layer,
            size=found.size + 4096,
            quantization="F16",
            family=found.family,
            parameter_size=found.parameter_size,
            modified_at=_iso(time.time()),
            # Each adapter its own skill: sweeps of the demo find one checkpoint better.
            skill=0.3 + 0.6 * int(layer[:4], 16) / 0xFFFF,
        )
        with self._lock:
            self.models[made.name] = made
        return None

    def delete(self, name: str) -> bool:
        key = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        with self._lock:
            self._loaded.pop(key, None)
            return self.models.pop(key, None) is not None

    def start(self, port: int = 0) -> DemoOllama:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="demo-ollama", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """A request's body, as Content-Length or chunked transfer encoding (an upload streamed
    from a file, as the dashboard sends blobs) sends it."""
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    parts = []
    while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
        parts.append(handler.rfile.read(size))
        handler.rfile.readline()
    handler.rfile.readline()
    return b"".join(parts)


def _handler(demo: DemoOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ollama-demo"

        def do_HEAD(self) -> None:
            if self.path.startswith("/api/blobs/"):
                found = demo.has_blob(self.path.removeprefix("/api/blobs/"))
                return self._text(200 if found else 404, "")
            self._text(200, "") if self.path == "/" else self._text(404, "")

        def do_DELETE(self) -> None:
            request = self._request()
            if self.path != "/api/delete" or request is None:
                return self._text(404, "404 page not found")
            name = str(request.get("model") or request.get("name") or "")
            if not demo.delete(name):
                return self._json(404, {"error": f"model '{name}' not found"})
            self._text(200, "")

        def _raw(self) -> bytes:
            return request_body(self)

        def _request(self) -> dict[str, Any] | None:
            try:
                request = json.loads(self._raw() or b"{}")
            except ValueError:
                return None
            return request if isinstance(request, dict) else None

        def _create(self, request: dict[str, Any]) -> None:
            error = demo.create(request)
            if request.get("stream", True) is False:
                if error:
                    return self._json(500, {"error": error})
                return self._json(200, {"status": "success"})
            lines: list[dict[str, Any]] = [{"status": "parsing modelfile"}]
            lines += (
                [{"error": error}]
                if error
                else [
                    {"status": "converting adapter"},
                    {"status": "writing manifest"},
                    {"status": "success"},
                ]
            )
            body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
            self._send(200, body, "application/x-ndjson")

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/":
                return self._text(200, "Ollama is running (the Tuner Dashboard demo's stand-in)")
            if path == "/api/version":
                return self._json(200, {"version": VERSION})
            if path == "/api/tags":
                listed = list(demo.models.values())  # a sweep may add one meanwhile
                return self._json(200, {"models": [demo.tag(m) for m in listed]})
            if path == "/api/ps":
                return self._json(200, demo.ps())
            self._text(404, "404 page not found")

        def do_POST(self) -> None:
            if self.path.startswith("/api/blobs/"):
                error = demo.add_blob(self.path.removeprefix("/api/blobs/"), self._raw())
                return self._json(400, {"error": error}) if error else self._text(201, "")
            request = self._request()
            if request is None:
                return self._json(400, {"error": "the request body must be a JSON object"})
            if self.path == "/api/create":
                return self._create(request)
            if self.path not in ("/api/show", "/api/chat"):
                return self._text(404, "404 page not found")
            name = request.get("model") or request.get("name") or ""
            model = demo.models.get(str(name))
            if model is None:
                return self._json(404, {"error": f"model '{name}' not found"})
            if self.path == "/api/show":
                return self._json(200, demo.show(model))
            answer = demo.chat(model, request)
            if request.get("stream", True) is False:
                return self._json(200, answer)
            # Ollama streams by default: the message, then a last object with the totals.
            first = {**answer, "done": False}
            for key in ("done_reason", "total_duration", "load_duration", "eval_count"):
                first.pop(key, None)
            last = {**answer, "message": {"role": "assistant", "content": ""}}
            body = b"".join(json.dumps(part).encode() + b"\n" for part in (first, last))
            self._send(200, body, "application/x-ndjson")

        def _json(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8")

        def _text(self, status: int, body: str) -> None:
            self._send(status, body.encode(), "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the dashboard polls it every few seconds: no line per request

    return Handler
