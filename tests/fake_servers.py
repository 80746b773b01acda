"""Real HTTP servers on 127.0.0.1 that speak Ollama's, LM Studio's and OpenAI-style APIs.

An Ollama server also answers `/api/chat` as the upstream Evaluator needs: a case whose
question says "answer right" gets the tool call it expects, any other case plain text, which
fails with "Expected tools not called".

Ollama also keeps blobs and makes models from a base and adapter blobs (`/api/blobs`,
`/api/create`, `/api/delete`, as its server/routes.go and create.go answer); vLLM loads and
unloads LoRA adapters by folder (`/v1/load_lora_adapter`, as with
VLLM_ALLOW_RUNTIME_LORA_UPDATING) and answers `/v1/chat/completions`. A served adapter answers
as well as `strength[<sha256 of its adapter_model.safetensors>]` says: a case asking for
"answer right level N" is answered right when N is at most that (0 for an unknown adapter).
As Ollama does, a made model's manifest digest depends on what it was made from, and its
adapter blob (`/api/show`) is the uploaded adapter converted, not the uploaded file.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sampledata.inference import request_body

OLLAMA_TAGS = {
    "models": [
        {
            "name": "gemma3:latest",
            "model": "gemma3:latest",
            "modified_at": "2025-10-03T23:34:03.409490317-07:00",
            "size": 3338801804,
            "digest": "a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "gemma3",
                "families": ["gemma3"],
                "parameter_size": "4.3B",
                "quantization_level": "Q4_K_M",
            },
        },
        {
            "name": "nexus-tools-sft:q8",
            "model": "nexus-tools-sft:q8",
            "modified_at": "2025-11-20T10:00:00.123456789Z",
            "size": 7695857000,
            "digest": "b1c2",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": None,
                "parameter_size": "7.2B",
                "quantization_level": "Q8_0",
            },
        },
    ]
}
OLLAMA_PS = {
    "models": [
        {
            **OLLAMA_TAGS["models"][1],
            "expires_at": "2025-11-28T12:05:00.000000000Z",
            "size_vram": 5772392750,
            "context_length": 8192,
        }
    ]
}
LMSTUDIO_V1 = {
    "models": [
        {
            "type": "llm",
            "publisher": "lmstudio-community",
            "key": "qwen2.5-7b-instruct",
            "display_name": "Qwen2.5 7B Instruct",
            "architecture": "qwen2",
            "quantization": {"name": "Q4_K_M", "bits_per_weight": 4.8},
            "size_bytes": 4683073504,
            "params_string": "7B",
            "max_context_length": 32768,
            "format": "gguf",
            "capabilities": {"vision": False, "trained_for_tool_use": True},
            "loaded_instances": [{"id": "qwen2.5-7b-instruct", "config": {"context_length": 8192}}],
        },
        {
            "type": "llm",
            "publisher": "mlx-community",
            "key": "mistral-7b-instruct-v0.3",
            "display_name": "Mistral 7B",
            "architecture": "mistral",
            "quantization": {"name": "4bit", "bits_per_weight": 4},
            "size_bytes": 4080000000,
            "params_string": "7B",
            "max_context_length": 32768,
            "format": "mlx",
            "capabilities": {"vision": False, "trained_for_tool_use": False},
            "loaded_instances": [],
        },
    ]
}
LMSTUDIO_V0 = {
    "object": "list",
    "data": [
        {
            "id": "meta-llama-3.1-8b-instruct",
            "object": "model",
            "type": "llm",
            "publisher": "lmstudio-community",
            "arch": "llama",
            "compatibility_type": "gguf",
            "quantization": "Q4_K_M",
            "state": "loaded",
            "max_context_length": 131072,
        },
        {
            "id": "text-embedding-nomic-embed-text-v1.5",
            "object": "model",
            "type": "embeddings",
            "publisher": "nomic-ai",
            "arch": "nomic-bert",
            "compatibility_type": "gguf",
            "quantization": "Q4_0",
            "state": "not-loaded",
            "max_context_length": 2048,
        },
    ],
}
OPENAI_IDS = {
    "data": [{"id": "qwen2.5-7b-instruct", "object": "model", "owned_by": "organization_owner"}],
    "object": "list",
}
VLLM: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": "mistralai/Mistral-7B-v0.3",
            "object": "model",
            "created": 1732000000,
            "owned_by": "vllm",
            "root": "mistralai/Mistral-7B-v0.3",
            "parent": None,
            "max_model_len": 32768,
            "permission": [],
        },
        {
            "id": "nexus-kto",
            "object": "model",
            "created": 1732000000,
            "owned_by": "vllm",
            "root": "/adapters/nexus-kto",
            "parent": "mistralai/Mistral-7B-v0.3",
            "max_model_len": 32768,
            "permission": [],
        },
    ],
}
LLAMACPP = {
    "object": "list",
    "data": [
        {
            "id": "models/nexus-tools-Q4_K_M.gguf",
            "object": "model",
            "created": 1732000000,
            "owned_by": "llamacpp",
            "meta": {
                "vocab_type": 2,
                "n_vocab": 128256,
                "n_ctx_train": 131072,
                "n_embd": 4096,
                "n_params": 8030261312,
                "size": 4912898304,
            },
        }
    ],
}
UNEXPECTED = {"error": "Unexpected endpoint or method. (GET {path})"}

# What the Evaluator's validator accepts as a tool call's context (upstream tools/validate_syngen).
EVAL_CONTEXT = {
    "sessionId": "session_1732300800000_eval01234",
    "workspaceId": "ws_1732300800000_atlasroll",
    "sessionDescription": "d",
    "sessionMemory": "m",
    "toolContext": "t",
    "primaryGoal": "g",
    "subgoal": "s",
}
# The tool every test case expects, and its one required parameter.
EVAL_TOOL = "vaultManager_createFolder"


_LEVEL = re.compile(r"answer right level (\d+)")


def answers_right(request: dict[str, Any], strength: int = 0) -> bool:
    """Whether a model of `strength` answers this chat request right."""
    question = next(
        (
            m.get("content", "")
            for m in reversed(request.get("messages", []))
            if m.get("role") == "user"
        ),
        "",
    )
    if "answer right" not in str(question):
        return False
    level = _LEVEL.search(str(question))
    return level is None or int(level.group(1)) <= strength


def chat_answer(request: dict[str, Any], strength: int = 0) -> dict[str, Any]:
    """Ollama's /api/chat reply: right for cases that ask for it, wrong for the others."""
    if answers_right(request, strength):
        call = {
            "function": {"name": EVAL_TOOL, "arguments": {"context": EVAL_CONTEXT, "path": "x"}}
        }
        message = {"role": "assistant", "content": "", "tool_calls": [call]}
    else:
        message = {"role": "assistant", "content": "I cannot help with that."}
    return {"model": request.get("model"), "message": message, "done": True}


def completion_answer(request: dict[str, Any], strength: int = 0) -> dict[str, Any]:
    """vLLM's /v1/chat/completions reply, alike (arguments as a JSON string, as OpenAI's)."""
    if answers_right(request, strength):
        arguments = json.dumps({"context": EVAL_CONTEXT, "path": "x"})
        call = {
            "id": "chatcmpl-tool-1",
            "type": "function",
            "function": {"name": EVAL_TOOL, "arguments": arguments},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    else:
        message = {"role": "assistant", "content": "I cannot help with that.", "tool_calls": []}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1732000000,
        "model": request.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def sha256_of(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


# Where the server keeps its blobs (its OLLAMA_MODELS folder); only the digest after it is read.
MODELS_FOLDER = ".ollama/models"


def modelfile(name: str, blob: str, adapter: str | None = None) -> str:
    """What Ollama's /api/show returns as `modelfile` for a model made from blob `blob`."""
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {name}",
        "",
        f"FROM {MODELS_FOLDER}/blobs/sha256-{blob}",
    ]
    if adapter:
        lines.append(f"ADAPTER {MODELS_FOLDER}/blobs/sha256-{adapter}")
    lines += ['TEMPLATE """{{ .Prompt }}"""', "PARAMETER stop <|im_end|>", ""]
    return "\n".join(lines)


def ollama_model(name: str, digest: str, quant: str = "Q4_K_M", size: int = 4_368_439_584):
    """An /api/tags entry."""
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-11-26T09:12:44.118Z",
        "size": size,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "7.2B",
            "quantization_level": quant,
        },
    }


# The blobs the default models were made from (any 64 hex digits: no run's file has them).
OLLAMA_SHOW = {
    "gemma3:latest": modelfile(
        "gemma3:latest", "aeda25e63ebd698fab8638ffb778e68bed908b960d5" + "0" * 21
    ),
    "nexus-tools-sft:q8": modelfile("nexus-tools-sft:q8", "b1c2" * 16),
}


def routes(kind: str, variant: str) -> dict[str, Any]:
    if kind == "ollama":
        table = {
            "/api/version": {"version": "0.12.6"},
            "/api/tags": OLLAMA_TAGS,
            "/api/ps": OLLAMA_PS,
        }
        if variant == "old":  # no "model" key, no /api/ps
            tags = [{k: v for k, v in m.items() if k != "model"} for m in OLLAMA_TAGS["models"]]
            table = {"/api/version": {"version": "0.1.20"}, "/api/tags": {"models": tags}}
        if variant == "idle":
            table["/api/ps"] = {"models": []}
        return table
    if kind == "lmstudio":
        # LM Studio answers endpoints it lacks with 200 and an error object.
        return {
            "v1": {
                "/api/v1/models": LMSTUDIO_V1,
                "/api/v0/models": LMSTUDIO_V0,
                "/v1/models": OPENAI_IDS,
            },
            "v0": {
                "/api/v1/models": UNEXPECTED,
                "/api/v0/models": LMSTUDIO_V0,
                "/v1/models": OPENAI_IDS,
            },
            "openai": {
                "/api/v1/models": UNEXPECTED,
                "/api/v0/models": UNEXPECTED,
                "/v1/models": OPENAI_IDS,
            },
        }[variant]
    if kind == "vllm":
        return {"/v1/models": VLLM}
    if kind == "llamacpp":
        if variant == "loading":
            return {
                "/v1/models": {"object": "list", "data": [{**LLAMACPP["data"][0], "meta": None}]}
            }
        return {"/v1/models": LLAMACPP, "/health": {"status": "ok"}}
    raise ValueError(kind)


def many_models(kind: str, n: int) -> dict[str, Any]:
    """A server with `n` models (a shared model folder), every tenth one loaded."""
    if kind == "ollama":
        base = OLLAMA_TAGS["models"][0]
        return {
            "models": [
                {**base, "name": f"model-{i:05d}:q4", "model": f"model-{i:05d}:q4"}
                for i in range(n)
            ]
        }
    if kind == "ollama-ps":
        base = OLLAMA_PS["models"][0]
        return {
            "models": [
                {**base, "name": f"model-{i:05d}:q4", "model": f"model-{i:05d}:q4"}
                for i in range(0, n, 10)
            ]
        }
    base = LMSTUDIO_V1["models"][1]
    loaded = LMSTUDIO_V1["models"][0]["loaded_instances"]
    return {
        "models": [
            {**base, "key": f"model-{i:05d}", "loaded_instances": loaded if i % 10 == 0 else []}
            for i in range(n)
        ]
    }


@functools.cache
def gzip_bomb(inflated: int = 2**28) -> bytes:
    """A gzip stream of zeros: about 250 kB on the wire, 256 MB once inflated."""
    packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"\0" * 2**20
    return b"".join(packer.compress(block) for _ in range(inflated // len(block))) + packer.flush()


class FakeServer:
    """A server of one kind; `mode` makes it misbehave: slow, error, html, shape, and
    drip (a byte every `drip_seconds`), trickle (the headers so), huge (more than any cap, with
    or without a length),
    bomb (a gzip bomb); gzip and deflate answer correctly, compressed."""

    def __init__(
        self,
        kind: str,
        variant: str = "",
        mode: str = "ok",
        port: int = 0,
        routes: dict[str, Any] | None = None,
        show: dict[str, str] | None = None,
    ) -> None:
        self.kind, self.variant, self.mode = kind, variant, mode
        self.port = port
        self.hits: list[str] = []
        # Replace or add GET answers; Ollama's /api/show modelfiles by model name.
        self.routes = routes or {}
        self.show = OLLAMA_SHOW if show is None else show
        self.shown: list[str] = []  # the model names /api/show was asked about
        self.show_seconds = 0.0
        self.show_release = threading.Event()  # ends a slow /api/show early (and on stop)
        self.slow_seconds = 5.0
        self.drip_seconds = 0.1
        self.huge_bytes = 48 * 2**20
        self.models = 10_000  # for the "many" variant
        self._server: ThreadingHTTPServer | None = None
        # /api/chat: each request takes a permit first when a gate is set, so a test decides
        # when each case is answered; `chats` counts the answers.
        self.gate: threading.Semaphore | None = None
        self.chats = 0
        self.chat_status = 200
        # Serving adapters. Ollama: blobs by digest, models made by /api/create (name → its
        # request), an error to stream while creating; vLLM: adapters by name → folder, and
        # whether runtime loading is on. `strength` by adapter weights digest (see above).
        self.blobs: dict[str, bytes] = {}
        self.created: dict[str, dict[str, Any]] = {}
        self.create_error: str | None = None
        self.loras: dict[str, str] = {}
        self.runtime_lora = True
        self.max_lora_rank = 64  # as `--max-lora-rank 64`; vLLM's own default is 16
        self.sees_files = True  # False: a server on another machine, where no such folder is
        self.strength: dict[str, int] = {}
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, JSON body) of changes

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        fake = self
        if self.mode == "bomb":
            gzip_bomb()  # made before the first request, not during it

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.hits.append(self.path)
                if fake.mode == "slow":
                    time.sleep(fake.slow_seconds)
                if fake.mode == "error":
                    return self._send(500, b"Internal Server Error", "text/plain")
                if fake.mode == "html":
                    return self._send(200, b"<html><body>Router login</body></html>", "text/html")
                if fake.mode == "shape":
                    return self._send(200, b'{"result": [1, 2, 3]}', "application/json")
                if fake.mode == "huge":
                    return self._huge("length" in fake.variant)
                if fake.mode == "bomb":
                    return self._send(200, gzip_bomb(), "application/json", "gzip")
                variant = fake.variant
                if variant == "many":  # the newest API of each, with many models
                    variant = "v1" if fake.kind == "lmstudio" else ""
                table = {**routes(fake.kind, variant), **fake.routes}
                path = self.path.split("?")[0]
                if path not in table:
                    return self._send(404, b"404 page not found", "text/plain")
                body = table[path]
                if body is UNEXPECTED:
                    body = {"error": UNEXPECTED["error"].format(path=path)}
                if path == "/api/tags" and fake.created:
                    body = {"models": [*body["models"], *fake.created_tags()]}
                if path == "/v1/models" and fake.loras:
                    body = {**body, "data": [*body["data"], *fake.lora_cards()]}
                if fake.variant == "many" and path in ("/api/tags", "/api/ps", "/api/v1/models"):
                    kind = {"/api/tags": "ollama", "/api/ps": "ollama-ps"}.get(path, "lmstudio")
                    body = many_models(kind, fake.models)
                data = json.dumps(body).encode()
                if fake.mode == "drip":
                    return self._drip(data)
                if fake.mode == "trickle":
                    return self._trickle(data)
                if fake.mode in ("gzip", "deflate"):
                    packed = gzip.compress(data) if fake.mode == "gzip" else zlib.compress(data)
                    return self._send(200, packed, "application/json", fake.mode)
                self._send(200, data, "application/json")

            def _raw(self) -> bytes:
                return request_body(self)

            def _request(self) -> Any:
                try:
                    return json.loads(self._raw() or b"{}")
                except ValueError:
                    return {}

            def _json(self, status: int, body: Any) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def do_HEAD(self) -> None:
                fake.hits.append(self.path)
                digest = self.path.removeprefix("/api/blobs/")
                if fake.kind != "ollama" or digest == self.path:
                    return self._send(404, b"", "text/plain")
                self._send(200 if digest in fake.blobs else 404, b"", "application/json")

            def do_DELETE(self) -> None:
                fake.hits.append(self.path)
                request = self._request()
                if fake.kind != "ollama" or self.path != "/api/delete":
                    return self._send(404, b"404 page not found", "text/plain")
                fake.requests.append(("DELETE", self.path, request))
                name = request.get("model") or request.get("name") or ""
                if fake.created.pop(_ollama_key(name), None) is None:
                    return self._json(404, {"error": f"model '{name}' not found"})
                self._send(200, b"", "application/json")

            def do_POST(self) -> None:
                fake.hits.append(self.path)
                if fake.kind == "ollama" and self.path.startswith("/api/blobs/"):
                    return self._blob(self.path.removeprefix("/api/blobs/"), self._raw())
                request = self._request()
                if fake.kind == "ollama" and self.path == "/api/chat":
                    return self._chat(request)
                if fake.kind == "ollama" and self.path == "/api/show":
                    return self._show(request)
                if fake.kind == "ollama" and self.path == "/api/create":
                    return self._create(request)
                if fake.kind == "vllm" and self.path == "/v1/chat/completions":
                    return self._completion(request)
                if fake.kind == "vllm" and self.path.endswith("_lora_adapter"):
                    if not fake.runtime_lora:  # the routes exist only with runtime loading
                        return self._json(404, {"detail": "Not Found"})
                    fake.requests.append(("POST", self.path, request))
                    if self.path == "/v1/load_lora_adapter":
                        return self._load(request)
                    if self.path == "/v1/unload_lora_adapter":
                        return self._unload(request)
                return self._send(404, b"404 page not found", "text/plain")

            def _blob(self, digest: str, data: bytes) -> None:
                if digest in fake.blobs:
                    return self._send(200, b"", "application/json")
                got = "sha256:" + hashlib.sha256(data).hexdigest()
                if got != digest:
                    error = f'digest mismatch, expected "{digest}", got "{got}"'
                    return self._json(400, {"error": error})
                fake.blobs[digest] = data
                self._send(201, b"", "application/json")

            def _create(self, request: dict) -> None:
                fake.requests.append(("POST", self.path, request))
                name, base = request.get("model") or "", request.get("from") or ""
                stream = request.get("stream", True) is not False
                listed = {**routes("ollama", fake.variant), **fake.routes}["/api/tags"]["models"]
                tags = {_ollama_key(m["name"]) for m in listed}
                adapters = (request.get("adapters") or {}).values()
                missing = [d.replace(":", "-") for d in adapters if d not in fake.blobs]
                error = fake.create_error
                if _ollama_key(base) not in tags:
                    error = "pull model manifest: file does not exist"
                elif missing:
                    error = f"open {MODELS_FOLDER}/blobs/{missing[0]}: no such file or directory"
                if error and not stream:
                    return self._json(500, {"error": error})
                lines: list[dict[str, Any]] = [{"status": "parsing GGUF"}]
                if error:
                    lines.append({"error": error})
                else:
                    fake.created[_ollama_key(name)] = request
                    lines += [{"status": "writing manifest"}, {"status": "success"}]
                if not stream:
                    return self._json(200, lines[-1])
                data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
                self._send(200, data, "application/x-ndjson")

            def _load(self, request: dict) -> None:
                name, path = request.get("lora_name"), request.get("lora_path")
                if not name or not path:
                    message = "Both 'lora_name' and 'lora_path' must be provided."
                    return self._json(400, _vllm_error(message, 400))
                if name in fake.loras:
                    message = f"The lora adapter '{name}' has already been loaded."
                    return self._json(400, _vllm_error(message, 400))
                config = os.path.join(path, "adapter_config.json")
                if not os.path.isfile(config) or not fake.sees_files:
                    message = f"Loading lora {name} failed: No adapter found for {path}"
                    return self._json(404, _vllm_error(message, 404))
                with open(config) as f:
                    rank = json.load(f).get("r") or 0
                if rank > fake.max_lora_rank:
                    # vllm/lora/worker_manager.py, answered as a BadRequestError.
                    message = (
                        f"LoRA rank {rank} is greater than max_lora_rank {fake.max_lora_rank}."
                    )
                    return self._json(400, _vllm_error(message, 400))
                fake.loras[name] = path
                text = f"Success: LoRA adapter '{name}' added successfully."
                self._send(200, text.encode(), "text/plain; charset=utf-8")

            def _unload(self, request: dict) -> None:
                name = request.get("lora_name") or ""
                if fake.loras.pop(name, None) is None:
                    message = f"The lora adapter '{name}' cannot be found."
                    return self._json(404, _vllm_error(message, 404))
                text = f"Success: LoRA adapter '{name}' removed successfully."
                self._send(200, text.encode(), "text/plain; charset=utf-8")

            def _chat(self, request: dict) -> None:
                if fake.gate is not None and not fake.gate.acquire(timeout=30):
                    return self._send(503, b"the test never let this case through", "text/plain")
                fake.chats += 1
                if fake.chat_status != 200:
                    body = {"error": f"model '{request.get('model')}' not found"}
                    return self._send(
                        fake.chat_status, json.dumps(body).encode(), "application/json"
                    )
                made = fake.created.get(_ollama_key(str(request.get("model") or "")))
                strength = fake.strength_of((made or {}).get("adapters") or {})
                self._json(200, chat_answer(request, strength))

            def _completion(self, request: dict) -> None:
                if fake.gate is not None and not fake.gate.acquire(timeout=30):
                    return self._send(503, b"the test never let this case through", "text/plain")
                fake.chats += 1
                model = str(request.get("model") or "")
                known = {m["id"] for m in routes("vllm", "")["/v1/models"]["data"]}
                if model not in fake.loras and model not in known:
                    message = f"The model `{model}` does not exist."
                    return self._json(404, _vllm_error(message, 404))
                strength = 0
                if model in fake.loras:
                    weights = os.path.join(fake.loras[model], "adapter_model.safetensors")
                    strength = fake.strength.get(sha256_of(weights), 0)
                self._json(200, completion_answer(request, strength))

            def _show(self, body: dict) -> None:
                name = body.get("model") or body.get("name") or ""
                fake.shown.append(name)
                if fake.show_seconds:
                    fake.show_release.wait(fake.show_seconds)
                made = fake.created.get(_ollama_key(name))
                if made is not None:
                    base = _BLOB_IN.search(fake.show.get(made.get("from") or "", ""))
                    blob = base.group(1) if base else "b1c2" * 16
                    shown = modelfile(name, blob, converted(made.get("adapters") or {}))
                    fake.show = {**fake.show, name: shown}
                if name not in fake.show:
                    error = {"error": f"model '{name}' not found"}
                    return self._send(404, json.dumps(error).encode(), "application/json")
                answer = {
                    "modelfile": fake.show[name],
                    "parameters": "stop <|im_end|>",
                    "template": "{{ .Prompt }}",
                    "details": {
                        "format": "gguf",
                        "family": "llama",
                        "quantization_level": "Q4_K_M",
                    },
                    "model_info": {"general.architecture": "llama"},
                    "capabilities": ["completion"],
                    "modified_at": "2025-11-26T09:12:44.118Z",
                }
                self._send(200, json.dumps(answer).encode(), "application/json")

            def _send(
                self, status: int, body: bytes, content_type: str, encoding: str = ""
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    if encoding:
                        self.send_header("Content-Encoding", encoding)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _drip(self, body: bytes) -> None:
                """Headers at once, then the body a byte at a time: each read is quick."""
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.flush()
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(fake.drip_seconds)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _trickle(self, body: bytes) -> None:
                """The status line and headers a byte at a time, for as long as the client
                listens: no read waits long, and the headers never end."""
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += b"X-Padding: " + b"a" * 100_000
                try:
                    for i in range(len(head)):
                        if fake._server is None:
                            break  # stopped: let the client go
                        self.wfile.write(head[i : i + 1])
                        self.wfile.flush()
                        time.sleep(fake.drip_seconds)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def _huge(self, with_length: bool) -> None:
                block = b" " * 2**20
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    if with_length:
                        self.send_header("Content-Length", str(fake.huge_bytes))
                    self.end_headers()
                    for _ in range(fake.huge_bytes // len(block)):
                        self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def strength_of(self, adapters: dict[str, str]) -> int:
        return self.strength.get(adapters.get("adapter_model.safetensors", ""), 0)

    def created_tags(self) -> list[dict[str, Any]]:
        """/api/tags entries for the models /api/create made: the digest of a manifest is of
        its layers, the base's and the converted adapter's."""
        return [
            ollama_model(name, manifest_digest(request), "F16")
            for name, request in self.created.items()
        ]

    def lora_cards(self) -> list[dict[str, Any]]:
        """/v1/models cards for the loaded adapters, as vLLM lists them."""
        base = VLLM["data"][0]["id"]
        return [
            {**VLLM["data"][1], "id": name, "root": path, "parent": base}
            for name, path in self.loras.items()
        ]

    def stop(self) -> None:
        self.show_release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_BLOB_IN = re.compile(r"FROM \S*sha256-([0-9a-f]{64})")


def converted(adapters: dict[str, str]) -> str:
    """The blob Ollama writes for an uploaded safetensors adapter: a GGUF converted from it,
    so another digest than the upload's (server/create.go, convertFromSafetensors)."""
    weights = adapters.get("adapter_model.safetensors", "")
    return hashlib.sha256(f"gguf adapter of {weights}".encode()).hexdigest()


def manifest_digest(request: dict[str, Any]) -> str:
    """A made model's manifest digest: of what it was made from."""
    made = json.dumps([request.get("from"), request.get("adapters")], sort_keys=True)
    return hashlib.sha256(made.encode()).hexdigest()


def _ollama_key(name: str) -> str:
    """Ollama's names are case-insensitive and mean `:latest` without a tag."""
    return name.lower() if ":" in name.rsplit("/", 1)[-1] else f"{name.lower()}:latest"


def _vllm_error(message: str, code: int) -> dict[str, Any]:
    """vLLM's ErrorResponse."""
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(code, "InternalServerError")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
