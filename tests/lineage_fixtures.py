"""A workspace whose runs published models, servers that serve them, and results that name them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from discovery.hashing import hasher
from discovery.lineage import catalog
from discovery.runs import Workspace
from sampledata import evaluator, upload
from sampledata import runs as wb

from . import fake_servers as fs
from .conftest import age, started

SFT, KTO_OLD, KTO_NEW = "20251101_100000", "20251103_100000", "20251106_100000"
SFT_ID, KTO_OLD_ID, KTO_NEW_ID = (
    f"rtx3090_sft/{SFT}",
    f"rtx3090_kto/{KTO_OLD}",
    f"rtx3090_kto/{KTO_NEW}",
)
SFT_REPO, KTO_REPO = "professorsynapse/nexus-tools-sft", "professorsynapse/nexus-tools-kto"
SFT_MODEL, KTO_MODEL = "professorsynapse--nexus-tools-sft", "professorsynapse--nexus-tools-kto"
# Served names: made locally from the SFT run's GGUF, and pulled from the hub.
LOCAL_SFT = "nexus-sft:latest"
HUB_KTO = f"hf.co/{KTO_REPO}-GGUF:Q4_K_M"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Chain:
    root: Path
    sft: Path
    kto_old: Path
    kto_new: Path

    @property
    def sft_gguf(self) -> Path:
        return self.sft / "nexus-tools-sft" / "gguf" / "nexus-tools-sft-Q8_0.gguf"


def make_chain(root: Path) -> Chain:
    sft = wb.make_run(root, "sft", started(SFT), max_steps=100, save_every=25, seed=1)
    kto_old = wb.make_run(root, "kto", started(KTO_OLD), max_steps=100, save_every=25, seed=2)
    kto_new = wb.make_run(root, "kto", started(KTO_NEW), max_steps=100, save_every=25, seed=3)
    age(root / "Trainers", 7200)
    upload.write_upload(sft / "final_model", SFT_REPO, uploaded_at=datetime(2025, 11, 2, 9))
    upload.write_upload(
        kto_old / "checkpoints" / "checkpoint-50",
        KTO_REPO,
        save_method="lora",
        uploaded_at=datetime(2025, 11, 4, 9),
    )
    upload.write_upload(kto_new / "final_model", KTO_REPO, uploaded_at=datetime(2025, 11, 7, 9))
    evaluator.write_prompt_sets(root)
    tags = evaluator.DEMO_TAGS

    def cases(failed: set[int]) -> list[tuple[str, bool, list[str]]]:
        return [(f"tool_{n:03d}", n not in failed, tags[n % 4]) for n in range(12)]

    for name, model, failed, when in [
        ("eval_sft", LOCAL_SFT, {1, 5}, datetime(2025, 11, 3, 12)),
        ("eval_kto_old", HUB_KTO, {2, 9}, datetime(2025, 11, 5, 12)),
        ("eval_kto_new", HUB_KTO, {3, 9}, datetime(2025, 11, 8, 12)),
        ("eval_base", "gemma3", {1, 2, 3, 4}, datetime(2025, 11, 9, 12)),
    ]:
        evaluator.write_evaluation(root, name, model, "tool_prompts", cases(failed), when)
    return Chain(root, sft, kto_old, kto_new)


def hash_all(root: Path) -> None:
    """Every GGUF file's sha256, as the background worker computes it."""
    catalog(Workspace.at(root))
    assert hasher.wait_idle(20)


def ollama(chain: Chain) -> fs.FakeServer:
    """Ollama with a model made locally from the SFT run's Q8_0 file (loaded), one pulled from
    the hub under the KTO repo's -GGUF name (a requantised file), and a stock model."""
    tags = [
        fs.ollama_model(LOCAL_SFT, "d1" * 32, "Q8_0"),
        fs.ollama_model(HUB_KTO, "d2" * 32),
        fs.ollama_model("gemma3:latest", "d3" * 32),
    ]
    show = {
        LOCAL_SFT: fs.modelfile(LOCAL_SFT, sha256(chain.sft_gguf)),
        HUB_KTO: fs.modelfile(HUB_KTO, "e7" * 32),
        "gemma3:latest": fs.modelfile("gemma3:latest", "e8" * 32),
    }
    ps = {"models": [{**tags[0], "size_vram": 7_000_000_000, "context_length": 8192}]}
    return fs.FakeServer(
        "ollama", routes={"/api/tags": {"models": tags}, "/api/ps": ps}, show=show
    ).start()


def vllm(chain: Chain) -> fs.FakeServer:
    """vLLM serving a base model, a LoRA adapter from a KTO checkpoint folder, and the SFT run's
    merged upload."""
    card = {"object": "model", "created": 1732000000, "owned_by": "vllm", "max_model_len": 8192}
    data = [
        {**card, "id": "mistralai/Mistral-7B-v0.3", "root": "mistralai/Mistral-7B-v0.3"},
        {
            **card,
            "id": "kto-ckpt75",
            "root": str(chain.kto_old / "checkpoints" / "checkpoint-75"),
            "parent": "mistralai/Mistral-7B-v0.3",
        },
        {
            **card,
            "id": "nexus-sft-merged",
            "root": str(chain.sft / "nexus-tools-sft" / "merged-16bit"),
        },
    ]
    return fs.FakeServer("vllm", routes={"/v1/models": {"object": "list", "data": data}}).start()


def lmstudio() -> fs.FakeServer:
    """LM Studio 0.4 with the KTO repo's GGUF downloaded under its publisher."""
    model = {
        **fs.LMSTUDIO_V1["models"][0],
        "publisher": "professorsynapse",
        "key": "nexus-tools-kto-GGUF",
        "display_name": "Nexus Tools KTO",
        "loaded_instances": [],
    }
    return fs.FakeServer("lmstudio", "v1", routes={"/api/v1/models": {"models": [model]}}).start()


def llamacpp(chain: Chain) -> fs.FakeServer:
    path = chain.sft / "nexus-tools-sft" / "gguf" / "nexus-tools-sft-Q4_K_M.gguf"
    data = [{**fs.LLAMACPP["data"][0], "id": str(path)}]
    return fs.FakeServer(
        "llamacpp", routes={"/v1/models": {"object": "list", "data": data}}
    ).start()
