"""What the upstream upload tool (`Trainers/shared/upload/`) leaves next to a run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from .runs import adapter_config, write_json

DEFAULT_QUANTS = ("Q4_K_M", "Q8_0")


def gguf_bytes(source: str, quant: str | None, size: int = 4096) -> bytes:
    """A small stand-in for a GGUF file: the magic, then bytes unique to its source and quant."""
    seed = hashlib.sha256(f"{source}:{quant}".encode()).digest()
    body = (seed * (size // len(seed) + 1))[: max(size - 4, 0)]
    return b"GGUF" + body


def write_upload(
    model_path: Path,
    repo_id: str,
    *,
    save_method: str = "merged_16bit",
    quants: Sequence[str] | None = DEFAULT_QUANTS,
    uploaded_at: datetime | None = None,
    gguf_size: int = 4096,
) -> Path:
    """Upload `model_path` (`<run>/final_model` or `<run>/checkpoints/checkpoint-N`) as the
    upload tool does, without the network: `<model_path>/../<model-name>/` with its manifest,
    the saved format and, unless `quants` is None, `gguf/<name>.gguf` and one file a quant."""
    name = repo_id.split("/")[-1]
    out = model_path.parent / name
    formats = [save_method]
    if save_method == "lora":
        # A LoRA upload copies the whole adapter folder, trainer_state.json included.
        lora = out / "lora"
        lora.mkdir(parents=True, exist_ok=True)
        for f in model_path.iterdir():
            if f.is_file():
                (lora / f.name).write_bytes(f.read_bytes())
        if not (lora / "adapter_config.json").exists():
            write_json(lora / "adapter_config.json", adapter_config("unsloth/mistral-7b-v0.3"))
    else:
        merged = out / save_method.replace("_", "-")
        merged.mkdir(parents=True, exist_ok=True)
        write_json(merged / "config.json", {"architectures": ["MistralForCausalLM"]})
        (merged / "model.safetensors").write_bytes(b"\0" * 16384)
    gguf_files = []
    if quants is not None:
        formats.append("gguf")
        gguf = out / "gguf"
        gguf.mkdir(parents=True, exist_ok=True)
        for quant in [None, *quants]:
            path = gguf / (f"{name}-{quant}.gguf" if quant else f"{name}.gguf")
            path.write_bytes(gguf_bytes(f"{model_path}:{repo_id}", quant, gguf_size))
            gguf_files.append(path.name)
    manifest = {
        "upload_timestamp": (uploaded_at or datetime.now()).isoformat(),
        "training_run": out.parent.name,
        "model_name": repo_id,
        "huggingface_url": f"https://huggingface.co/{repo_id}",
        "formats_created": formats,
        "directory_structure": {
            "lora": "lora/" if "lora" in formats else None,
            "merged_16bit": "merged-16bit/" if "merged_16bit" in formats else None,
            "merged_4bit": "merged-4bit/" if "merged_4bit" in formats else None,
            "gguf": "gguf/" if "gguf" in formats else None,
        },
    }
    if gguf_files:
        manifest["gguf_quantizations"] = gguf_files
    (out / "upload_manifest.json").write_text(json.dumps(manifest, indent=2))
    (out / "README.md").write_text(f"# {repo_id}\n")
    return out
