"""Real HTTP servers on 127.0.0.1 that speak Ollama's, LM Studio's and OpenAI-style APIs.

An Ollama server also answers `/api/chat` as the upstream Evaluator needs: a case whose
question says "answer right" gets the tool call it expects, any other case plain text, which
fails with "Expected tools not called".
"""

from __future__ import annotations

import functools
import gzip
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
VLLM = {
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


def chat_answer(request: dict[str, Any]) -> dict[str, Any]:
    """Ollama's /api/chat reply: right for cases that ask for it, wrong for the others."""
    question = next(
        (
            m.get("content", "")
            for m in reversed(request.get("messages", []))
            if m.get("role") == "user"
        ),
        "",
    )
    if "answer right" in question:
        call = {
            "function": {"name": EVAL_TOOL, "arguments": {"context": EVAL_CONTEXT, "path": "x"}}
        }
        message = {"role": "assistant", "content": "", "tool_calls": [call]}
    else:
        message = {"role": "assistant", "content": "I cannot help with that."}
    return {"model": request.get("model"), "message": message, "done": True}


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

            def do_POST(self) -> None:
                fake.hits.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    request = {}
                if fake.kind == "ollama" and self.path == "/api/chat":
                    return self._chat(request)
                if fake.kind == "ollama" and self.path == "/api/show":
                    return self._show(request)
                return self._send(404, b"404 page not found", "text/plain")

            def _chat(self, request: dict) -> None:
                if fake.gate is not None and not fake.gate.acquire(timeout=30):
                    return self._send(503, b"the test never let this case through", "text/plain")
                fake.chats += 1
                if fake.chat_status != 200:
                    body = {"error": f"model '{request.get('model')}' not found"}
                    return self._send(
                        fake.chat_status, json.dumps(body).encode(), "application/json"
                    )
                self._send(200, json.dumps(chat_answer(request)).encode(), "application/json")

            def _show(self, body: dict) -> None:
                name = body.get("model") or body.get("name") or ""
                fake.shown.append(name)
                if fake.show_seconds:
                    time.sleep(fake.show_seconds)
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

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
