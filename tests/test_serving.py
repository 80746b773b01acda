"""Serving a checkpoint's adapter on Ollama and vLLM (fake servers on 127.0.0.1 speaking their
APIs), which checkpoints can be served, the names and the base check."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path

import httpx
import pytest

from discovery import serving
from discovery.backends import Backend, probe
from discovery.checkpoints import Checkpoint
from discovery.http import client
from discovery.paths import realpath
from tests import fake_servers as fs

# A real adapter_config.json (PEFT, from a public Mistral fine-tune's checkpoint-200), whose base
# is a Hub cache folder on the machine that trained it.
REAL_CONFIG = {
    "alpha_pattern": {},
    "auto_mapping": None,
    "base_model_name_or_path": "/content/drive/MyDrive/hf_models/mistral/models--mistralai--"
    "Mistral-7B-Instruct-v0.3/snapshots/e0bc86c23ce5aae1db576c8cca6f06f1f73af2db",
    "bias": "none",
    "fan_in_fan_out": False,
    "inference_mode": True,
    "init_lora_weights": True,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "modules_to_save": None,
    "peft_type": "LORA",
    "r": 8,
    "rank_pattern": {},
    "revision": None,
    "target_modules": ["v_proj", "q_proj"],
    "task_type": "CAUSAL_LM",
    "use_dora": False,
    "use_rslora": False,
}
# Ollama's rule for a name's model part (types/model/name.go isValidPart).
OLLAMA_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")


def safetensors(tag: str) -> bytes:
    """A tiny file in the safetensors layout (header length, JSON header), distinct per tag."""
    header = json.dumps({"__metadata__": {"checkpoint": tag}}).encode()
    return len(header).to_bytes(8, "little") + header


def adapter_dir(folder: Path, tag: str, config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(safetensors(tag))
    (folder / "adapter_config.json").write_text(json.dumps(config or REAL_CONFIG))
    return folder


def ckpt(path: Path, step: int | None = 200, kind: str = "folder") -> Checkpoint:
    name = f"checkpoint-{step}" if step is not None else "final_model"
    return Checkpoint(name, step, step is None, path, kind=kind)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return realpath(tmp_path / "ws")


@pytest.fixture
def ollama():
    server = fs.FakeServer("ollama").start()
    yield server
    server.stop()


@pytest.fixture
def vllm():
    server = fs.FakeServer("vllm").start()
    yield server
    server.stop()


def chat(url: str, model: str, question: str) -> bool:
    """Whether Ollama's /api/chat answered with a tool call."""
    ask = {"model": model, "messages": [{"role": "user", "content": question}], "stream": False}
    answer = httpx.post(f"{url}/api/chat", json=ask).json()
    return bool(answer["message"].get("tool_calls"))


def completion(url: str, model: str, question: str) -> bool:
    ask = {"model": model, "messages": [{"role": "user", "content": question}]}
    answer = httpx.post(f"{url}/v1/chat/completions", json=ask)
    answer.raise_for_status()
    return bool(answer.json()["choices"][0]["message"]["tool_calls"])


def adapter_of(path: Path, root: Path, step: int | None = 200) -> serving.Adapter:
    found = serving.servable(ckpt(path, step), root)
    assert found.adapter is not None, found.reason
    return found.adapter


# Which checkpoints can be served


def test_a_peft_lora_checkpoint_is_servable(root):
    folder = adapter_dir(root / "run" / "checkpoint-200", "200")
    found = serving.servable(ckpt(folder), root)
    assert found.reason is None and found.adapter is not None
    assert found.adapter.weights == folder / "adapter_model.safetensors"
    assert found.adapter.rank == 8
    assert found.adapter.base_model == REAL_CONFIG["base_model_name_or_path"]


def test_checkpoints_that_are_not_adapters_say_why(root):
    run = root / "run"
    full = run / "checkpoint-100"
    full.mkdir(parents=True)
    (full / "model.safetensors").write_bytes(safetensors("full"))
    (full / "config.json").write_text("{}")
    sharded = run / "checkpoint-150"
    sharded.mkdir()
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"x")
    mlx_folder = run / "mlx"
    mlx_folder.mkdir()
    (mlx_folder / "adapters.safetensors").write_bytes(safetensors("mlx"))
    npz = run / "checkpoint_step_300.npz"
    npz.write_bytes(b"PK")
    bin_only = run / "checkpoint-400"
    bin_only.mkdir()
    (bin_only / "adapter_model.bin").write_bytes(b"x")
    (bin_only / "adapter_config.json").write_text(json.dumps(REAL_CONFIG))
    no_config = run / "checkpoint-500"
    no_config.mkdir()
    (no_config / "adapter_model.safetensors").write_bytes(safetensors("500"))
    ia3 = adapter_dir(run / "checkpoint-600", "600", {**REAL_CONFIG, "peft_type": "IA3"})
    empty = run / "checkpoint-700"
    empty.mkdir()
    (empty / "trainer_state.json").write_text("{}")

    def reason(c: Checkpoint) -> str:
        found = serving.servable(c, root)
        assert found.adapter is None
        return found.reason or ""

    assert "full fine-tune" in reason(ckpt(full, 100))
    assert "full fine-tune" in reason(ckpt(sharded, 150))
    assert "mlx-lm" in reason(ckpt(mlx_folder, 250))
    assert "MLX adapter file (checkpoint_step_300.npz)" in reason(ckpt(npz, 300, "file"))
    assert "adapter_model.bin" in reason(ckpt(bin_only, 400))
    assert "adapter_config.json" in reason(ckpt(no_config, 500))
    assert "IA3" in reason(ckpt(ia3, 600))
    assert "no saved weights" in reason(ckpt(empty, 700))


def test_half_written_or_hostile_adapters_are_not_servable_and_say_why(root, tmp_path):
    """What a crashed save, a hand-made folder or a hostile one leaves where an adapter belongs:
    refused with the reason before a sweep starts, never uploaded or handed to a server."""
    run = root / "run"
    empty = adapter_dir(run / "checkpoint-100", "100")
    (empty / "adapter_model.safetensors").write_bytes(b"")
    cut = adapter_dir(run / "checkpoint-200", "200")
    whole = safetensors("200") + b"\0" * 64
    (cut / "adapter_model.safetensors").write_bytes(whole[: len(whole) // 4])
    tiny = adapter_dir(run / "checkpoint-250", "250")
    (tiny / "adapter_model.safetensors").write_bytes(b"\x01\x02")
    fifo = adapter_dir(run / "checkpoint-300", "300")
    (fifo / "adapter_model.safetensors").unlink()
    os.mkfifo(fifo / "adapter_model.safetensors")
    leaks = adapter_dir(run / "checkpoint-400", "400")
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    (leaks / "tokenizer_config.json").symlink_to(secret)
    deep = adapter_dir(run / "checkpoint-500", "500")
    (deep / "adapter_config.json").write_text('{"r": ' + "[" * 100_000 + "]" * 100_000 + "}")
    nan = adapter_dir(run / "checkpoint-600", "600")
    (nan / "adapter_config.json").write_text('{"r": NaN, "base_model_name_or_path": Infinity}')

    def reason(folder: Path, step: int) -> str:
        found = serving.servable(ckpt(folder, step), root)
        assert found.adapter is None, folder.name
        return found.reason or ""

    assert "empty (0 bytes)" in reason(empty, 100)
    assert "not a whole safetensors file" in reason(cut, 200)
    assert "not a whole safetensors file" in reason(tiny, 250)
    assert "not a regular file" in reason(fifo, 300)
    assert "tokenizer_config.json in it links outside the workspace" in reason(leaks, 400)
    assert "without a readable adapter_config.json" in reason(deep, 500)
    # NaN is what Python writes: the adapter serves, with no rank or base to go by.
    found = serving.servable(ckpt(nan, 600), root)
    assert found.adapter is not None
    assert (found.adapter.rank, found.adapter.base_model) == (None, None)


def test_a_final_model_at_the_top_of_the_run_folder_is_servable(root):
    run = adapter_dir(root / "run", "final")
    (run / "checkpoint-100").mkdir()
    found = serving.servable(ckpt(run, None, "top"), root)
    assert found.adapter is not None and found.adapter.folder == run


def test_an_adapter_linked_from_outside_the_workspace_is_not_read(root, tmp_path, ollama):
    outside = adapter_dir(tmp_path / "elsewhere", "secret")
    folder = root / "run" / "checkpoint-200"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(REAL_CONFIG))
    (folder / "adapter_model.safetensors").symlink_to(outside / "adapter_model.safetensors")
    found = serving.servable(ckpt(folder, 200), root)
    assert found.adapter is None
    assert found.reason and "links outside the workspace" in found.reason
    # Linked after the form checked it: serving still reads nothing outside.
    adapter = serving.Adapter(
        "checkpoint-200",
        folder,
        folder / "adapter_model.safetensors",
        folder / "adapter_config.json",
        None,
        None,
    )
    with pytest.raises(serving.ServingError, match="cannot be read inside the workspace"):
        serving.serve("ollama", ollama.url, adapter, "tuner-x-ckpt200", root, "gemma3:latest")
    assert not ollama.blobs and not ollama.created


# Names


def test_model_names_are_ones_ollama_accepts(tmp_path):
    def name(run: str, step: int | None, final: bool = False) -> str:
        label = "final_model" if final else f"checkpoint-{step}"
        return serving.model_name(run, Checkpoint(label, step, final, tmp_path))

    assert name("nexus-sft", 200) == "tuner-nexus-sft-ckpt200"
    # The final model's step is the last checkpoint's: its name is its own.
    assert name("nexus-sft", 500, final=True) == "tuner-nexus-sft-final"
    assert name("Run 7 (lr=2e-4)/x", 5) == "tuner-run-7-lr-2e-4-x-ckpt5"
    assert name("é", 5) == "tuner-run-ckpt5"
    long_a = name("a" * 200 + "1", 123456)
    long_b = name("a" * 200 + "2", 123456)
    assert long_a != long_b and long_a.endswith("-ckpt123456")
    for made in (long_a, long_b, name("..x..", None, final=True)):
        assert OLLAMA_PART.fullmatch(made), made


# The base check


def test_a_base_of_another_family_warns_and_a_lookalike_does_not():
    real_base = REAL_CONFIG["base_model_name_or_path"]
    assert serving.family(real_base) == "mistral"  # the Hub cache folder's name, not its hash
    warning = serving.base_warning("gemma3:latest", "gemma3", real_base)
    assert warning is not None and "gemma" in warning and "mistral" in warning
    assert serving.base_warning("mistral:7b-instruct", "llama", real_base) is None
    llama = "unsloth/Llama-3.2-1B-Instruct"
    assert (
        serving.base_warning("hf.co/unsloth/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", None, llama) is None
    )
    assert serving.base_warning("my-base:latest", "llama", llama) is None  # Ollama's family
    assert serving.base_warning("phind-codellama:34b", None, llama) is None
    assert serving.base_warning("my-base:latest", None, llama) is None  # nothing to compare
    assert serving.base_warning("qwen2.5:7b", "qwen2", None) is None
    # Ollama's family is the GGUF's architecture: a Mistral 7B GGUF says "llama".
    assert serving.base_warning("my-tune:latest", "llama", real_base) is None
    assert "llama" in (serving.base_warning("llama3.1:8b", "llama", real_base) or "")
    assert "qwen" in (serving.base_warning("my-tune:latest", "qwen2", real_base) or "")


# Ollama


def test_ollama_serves_an_adapter_answers_by_it_and_removes_it(root, ollama):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    weights = fs.sha256_of(adapter.weights)
    ollama.strength[weights] = 4
    served = serving.serve(
        "ollama", ollama.url, adapter, "tuner-run-ckpt200", root, "gemma3:latest"
    )
    assert served.weights_digest == weights
    assert served.config_digest == fs.sha256_of(adapter.config)
    # The server checked each digest against the bytes it received.
    assert set(ollama.blobs) == {served.weights_digest, served.config_digest}
    ((_, _, request),) = [r for r in ollama.requests if r[1] == "/api/create"]
    assert served.model == "tuner-run-ckpt200:latest"  # as /api/tags lists it
    assert request == {
        "model": "tuner-run-ckpt200:latest",
        "from": "gemma3:latest",
        "adapters": {
            "adapter_model.safetensors": served.weights_digest,
            "adapter_config.json": served.config_digest,
        },
        "stream": True,
    }
    # Listed like any other model, and answering as well as its adapter does.
    status = probe(Backend("ollama", "ollama", ollama.url))
    assert "tuner-run-ckpt200:latest" in {m.id for m in status.models}
    assert chat(ollama.url, "tuner-run-ckpt200", "answer right level 4")
    assert not chat(ollama.url, "gemma3:latest", "answer right level 4")
    assert serving.unserve(served) is True
    assert not ollama.created
    assert "tuner-run-ckpt200:latest" not in {
        m.id for m in probe(Backend("ollama", "ollama", ollama.url)).models
    }
    assert serving.unserve(served) is False  # already gone: not an error


def test_a_blob_the_server_has_is_not_uploaded_again(root, ollama):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    serving.serve("ollama", ollama.url, adapter, "tuner-a-ckpt200", root, "gemma3:latest")
    uploads = [h for h in ollama.hits if h.startswith("/api/blobs/")]
    serving.serve("ollama", ollama.url, adapter, "tuner-b-ckpt200", root, "gemma3:latest")
    again = [h for h in ollama.hits if h.startswith("/api/blobs/")][len(uploads) :]
    assert len(again) == 2  # two HEADs, no POST
    assert set(ollama.created) == {"tuner-a-ckpt200:latest", "tuner-b-ckpt200:latest"}


def test_ollama_create_answers_streamed_and_not_streamed(root, ollama):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    digests = {
        "adapter_model.safetensors": serving.file_digest(adapter.weights, root),
        "adapter_config.json": serving.file_digest(adapter.config, root),
    }
    with client() as http:
        for path, digest in zip((adapter.weights, adapter.config), digests.values(), strict=True):
            assert serving.ensure_blob(http, ollama.url, path, root, digest) is True
        serving.create(http, ollama.url, "tuner-s", "gemma3:latest", digests, stream=False)
        serving.create(http, ollama.url, "tuner-t", "gemma3:latest", digests, stream=True)
        assert {"tuner-s:latest", "tuner-t:latest"} <= set(ollama.created)
        ollama.create_error = "unsupported architecture"
        for stream in (True, False):
            with pytest.raises(serving.ServingError, match="unsupported architecture"):
                serving.create(
                    http, ollama.url, f"tuner-{stream}", "gemma3:latest", digests, stream
                )
        ollama.create_error = None
        with pytest.raises(serving.ServingError, match="file does not exist"):
            serving.create(http, ollama.url, "tuner-u", "absent:latest", digests)
    assert set(ollama.created) == {"tuner-s:latest", "tuner-t:latest"}


def test_a_file_changed_while_uploading_is_a_digest_mismatch(root, ollama):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    with client() as http, pytest.raises(serving.ServingError, match="digest mismatch"):
        serving.ensure_blob(http, ollama.url, adapter.weights, root, "sha256:" + "0" * 64)


def test_ollama_needs_a_base(root, ollama):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    with pytest.raises(serving.ServingError, match="base model"):
        serving.serve("ollama", ollama.url, adapter, "tuner-x", root, None)


# vLLM


def test_vllm_loads_the_checkpoint_folder_answers_by_it_and_unloads(root, vllm):
    folder = adapter_dir(root / "run" / "checkpoint-200", "200")
    adapter = adapter_of(folder, root)
    served = serving.serve("vllm", vllm.url, adapter, "tuner-run-ckpt200", root)
    assert vllm.loras == {"tuner-run-ckpt200": str(folder)}
    assert served.model == "tuner-run-ckpt200" and served.base is None
    vllm.strength[served.weights_digest] = 3
    assert completion(vllm.url, "tuner-run-ckpt200", "answer right level 3")
    assert not completion(vllm.url, "mistralai/Mistral-7B-v0.3", "answer right level 3")
    # Listed with its base as parent, as vLLM does.
    card = next(c for c in vllm.lora_cards() if c["id"] == "tuner-run-ckpt200")
    assert card["parent"] == "mistralai/Mistral-7B-v0.3"
    assert serving.unserve(served) is True
    assert not vllm.loras
    assert serving.unserve(served) is False


def test_vllm_without_runtime_loading_says_how_to_start_it(root, vllm):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    vllm.runtime_lora = False
    with pytest.raises(serving.ServingError) as caught:
        serving.serve("vllm", vllm.url, adapter, "tuner-x", root)
    message = str(caught.value)
    assert "cannot load adapters at runtime" in message
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in message and "--enable-lora" in message


def test_vllm_refusing_a_load_gives_its_reason_and_the_help(root, vllm):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    serving.serve("vllm", vllm.url, adapter, "tuner-x", root)
    with client() as http:
        with pytest.raises(serving.ServingError, match="has already been loaded") as caught:
            serving.load_lora(http, vllm.url, "tuner-x", adapter.folder)
        assert "--enable-lora" in str(caught.value)
        with pytest.raises(serving.ServingError, match="No adapter found"):
            serving.load_lora(http, vllm.url, "tuner-y", root / "not-there")
    # The dashboard's own name, left loaded by an earlier sweep that kept it, is replaced.
    other = adapter_of(adapter_dir(root / "run" / "checkpoint-300", "300"), root, 300)
    serving.serve("vllm", vllm.url, other, "tuner-x", root)
    assert vllm.loras == {"tuner-x": str(other.folder)}


def test_whether_vllm_loads_at_runtime_is_asked_without_loading_anything(vllm):
    assert serving.runtime_lora_problem(vllm.url) is None
    vllm.runtime_lora = False
    problem = serving.runtime_lora_problem(vllm.url)
    assert problem is not None and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in problem
    assert not vllm.loras


def test_a_server_that_is_down_or_silent_is_a_clear_error(root, monkeypatch):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    port = fs.free_port()
    with pytest.raises(serving.ServingError, match="is the server running"):
        serving.serve("vllm", f"http://127.0.0.1:{port}", adapter, "tuner-x", root)
    # A server that accepts and never answers: the request ends at its deadline.
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    monkeypatch.setattr(serving, "REMOVE_S", 0.3)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with pytest.raises(serving.ServingError, match="did not answer within 0.3 s"):
            serving.serve("ollama", url, adapter, "tuner-x", root, "gemma3:latest")
    finally:
        for s in accepted:
            s.close()
        listener.close()


def test_only_ollama_and_openai_style_servers_take_adapters():
    assert serving.api_for("ollama") == "ollama"
    assert serving.api_for("openai") == "vllm"
    assert serving.api_for("lmstudio") is None


# What was served, recorded for the lineage


def test_what_ollama_made_of_an_adapter_is_recorded_and_read_back(root, ollama, tmp_path):
    adapter = adapter_of(adapter_dir(root / "run" / "checkpoint-200", "200"), root)
    served = serving.serve(
        "ollama", ollama.url, adapter, "tuner-run-ckpt200", root, "gemma3:latest"
    )
    request = ollama.created["tuner-run-ckpt200:latest"]
    # The model as the server lists it: its manifest, and the adapter layer Ollama converted
    # from the upload (not the uploaded file: lineage cannot go by that).
    assert served.digest == fs.manifest_digest(request)
    assert served.blobs == (fs.converted(request["adapters"]),)
    assert served.weights_digest.removeprefix("sha256:") not in served.blobs
    serving.record(root, "t/run", served)
    serving.record(root, "t/run", served, result="run_20251101_120000")
    with open(root / serving.RECORD, "ab") as f:
        f.write(b'not json\n{"run": "t/run"}\n')
    first, second = serving.recorded(root)
    assert (first.run, first.checkpoint, first.model) == ("t/run", "checkpoint-200", served.model)
    assert (first.digest, first.blobs, first.result) == (served.digest, served.blobs, None)
    assert second.result == "run_20251101_120000" and second.base == "gemma3:latest"
    # A record folder that leads out of the workspace is neither written nor read.
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / serving.RECORD).rename(outside / serving.RECORD.name)
    (root / serving.RECORD.parent).rmdir()
    (root / serving.RECORD.parent).symlink_to(outside)
    with pytest.raises(OSError, match="outside the workspace"):
        serving.record(root, "t/run", served)
    assert serving.recorded(root) == ()


def test_vllm_served_is_recorded_with_the_folder_it_loaded(root, vllm):
    folder = adapter_dir(root / "run" / "checkpoint-200", "200")
    served = serving.serve("vllm", vllm.url, adapter_of(folder, root), "tuner-run-ckpt200", root)
    assert served.path == str(folder) == vllm.loras["tuner-run-ckpt200"]
    assert (served.digest, served.blobs) == (None, ())
