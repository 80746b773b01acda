"""A run's configuration: one name per idea, read from the files real trainers wrote.

Each fixture copies only the metadata of a real output folder, named with where it came from.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import shutil
import time
import weakref
from datetime import datetime
from pathlib import Path

import pytest

from discovery.config import (
    PICKLE_NOTE,
    RUN_TYPE_SOURCE,
    WhereError,
    config_of,
    flatten,
    model_card,
    parse_where,
    read_config,
)
from discovery.paths import file_cache
from discovery.runs import Workspace, clear_memo, list_runs
from discovery.yamlfile import parse
from sampledata import runs as wb

from .conftest import SHARED_UPSTREAM, needs_upstream, started
from .test_yaml_args import QWEN3_ARGS

# aa-n/Qwen3_Lora: a LLaMA-Factory LoRA SFT of Qwen3-14B on 7 GPUs, its output folder's
# metadata as published (training_args.yaml, adapter_config.json, README.md, trainer_state.json).
LF_ARGS = QWEN3_ARGS
LF_ADAPTER = {
    "alpha_pattern": {},
    "auto_mapping": None,
    "base_model_name_or_path": "/dev/shm/Qwen/Qwen3-14B",
    "bias": "none",
    "fan_in_fan_out": False,
    "inference_mode": True,
    "init_lora_weights": True,
    "loftq_config": {},
    "lora_alpha": 16,
    "lora_bias": False,
    "lora_dropout": 0,
    "megatron_core": "megatron.core",
    "modules_to_save": None,
    "peft_type": "LORA",
    "r": 8,
    "rank_pattern": {},
    "revision": None,
    "target_modules": ["up_proj", "o_proj", "gate_proj", "k_proj", "v_proj", "down_proj", "q_proj"],
    "task_type": "CAUSAL_LM",
    "use_dora": False,
    "use_rslora": False,
}
LF_CARD = """\
---
library_name: peft
license: other
base_model: /dev/shm/Qwen/Qwen3-14B
tags:
- llama-factory
- lora
- generated_from_trainer
model-index:
- name: train_2025-04-29-14-28-08
  results: []
---

# train_2025-04-29-14-28-08

## Training procedure

### Training hyperparameters

The following hyperparameters were used during training:
- learning_rate: 5e-05
- train_batch_size: 2
- eval_batch_size: 8
- seed: 42
- distributed_type: multi-GPU
- num_devices: 7
- gradient_accumulation_steps: 8
- total_train_batch_size: 112
- total_eval_batch_size: 56
- optimizer: Use adamw_torch with betas=(0.9,0.999) and epsilon=1e-08 and optimizer_args=No additional optimizer arguments
- lr_scheduler_type: cosine
- num_epochs: 3.0

### Training results



### Framework versions

- PEFT 0.15.1
"""  # noqa: E501
LF_STATE = {
    "best_global_step": None,
    "best_metric": None,
    "best_model_checkpoint": None,
    "epoch": 2.9965936739659367,
    "eval_steps": 500,
    "global_step": 768,
    "is_hyper_param_search": False,
    "is_local_process_zero": True,
    "is_world_process_zero": True,
    "log_history": [
        {
            "epoch": 2.9965936739659367,
            "num_input_tokens_seen": 24689312,
            "step": 768,
            "total_flos": 2.0772363998572052e18,
            "train_loss": 0.9732094605763754,
            "train_runtime": 5980.6912,
            "train_samples_per_second": 14.427,
            "train_steps_per_second": 0.128,
        }
    ],
    "logging_steps": 996,
    "max_steps": 768,
    "num_input_tokens_seen": 24689312,
    "num_train_epochs": 3,
    "save_steps": 5000,
    "stateful_callbacks": {"TrainerControl": {"args": {"should_save": True}, "attributes": {}}},
    "total_flos": 2.0772363998572052e18,
    "train_batch_size": 2,
    "trial_name": None,
    "trial_params": None,
}
# klix18/llama31_8b_finance_sft-alignment, llama31-8b-finance-dpo-lora-kevin/README.md: the
# model card TRL 0.24 writes for a PEFT DPO run (front matter only; the body says no settings).
TRL_CARD = """\
---
base_model: unsloth/meta-llama-3.1-8b-instruct-bnb-4bit
library_name: peft
model_name: llama31-8b-finance-dpo-lora-kevin
tags:
- base_model:adapter:unsloth/meta-llama-3.1-8b-instruct-bnb-4bit
- dpo
- lora
- transformers
- trl
- unsloth
licence: license
pipeline_tag: text-generation
---

# Model Card for llama31-8b-finance-dpo-lora-kevin

This model was trained with DPO.
"""


def _run(root: Path, name: str = "qwen3-lora") -> Path:
    folder = root / "outputs" / name
    (folder / "checkpoint-10").mkdir(parents=True)  # what makes it a run
    return folder


def _one(root: Path, folder: Path):
    runs = list_runs(Workspace.at(root, run_dirs=(folder,)))
    assert len(runs) == 1
    return runs[0]


def _set_time(path: Path, t: float) -> None:
    os.utime(path, (t, t))


def test_llama_factory_output_folder_reads_as_one_vocabulary(tmp_path):
    folder = _run(tmp_path)
    (folder / "training_args.yaml").write_text(LF_ARGS)
    wb.write_json(folder / "adapter_config.json", LF_ADAPTER)
    (folder / "README.md").write_text(LF_CARD)
    wb.write_json(folder / "trainer_state.json", LF_STATE)
    # LLaMA-Factory writes its arguments before training, the rest at the end.
    now = time.time()
    _set_time(folder / "training_args.yaml", now - 6000)
    cfg = config_of(_one(tmp_path, folder))
    values, sources = cfg.values(), cfg.sources()
    assert values["base_model"] == "/dev/shm/Qwen/Qwen3-14B"
    assert values["method"] == "sft"
    assert (values["lora.r"], values["lora.alpha"], values["lora.dropout"]) == (8, 16, 0.0)
    assert type(values["lora.dropout"]) is float
    assert values["learning_rate"] == pytest.approx(5e-5)
    assert values["scheduler"] == "cosine"
    assert values["epochs"] == 3 and type(values["epochs"]) is int
    assert (values["batch_size"], values["gradient_accumulation_steps"]) == (2, 8)
    # On 7 GPUs: the card's total, not per-device × accumulation.
    assert values["effective_batch_size"] == 112
    assert sources["effective_batch_size"] == "README.md"
    assert values["num_devices"] == 7 and values["seed"] == 42
    assert values["max_seq_length"] == 32768
    assert values["dataset"] == "tcm,mdk,NLI"
    assert values["max_steps"] == 768 and sources["max_steps"] == "trainer_state.json"
    assert values["optimizer"] == "adamw_torch"
    # Every other key under its own name, with its file.
    assert (
        values["finetuning_type"] == "lora" and sources["finetuning_type"] == "training_args.yaml"
    )
    assert values["adapter.peft_type"] == "LORA"
    assert "trainer_state.log_history" not in values and "trainer_state.global_step" not in values
    # `lora_target: all` (the arguments) and the list PEFT resolved it to (the adapter, newer):
    # the newer one wins, the older one is kept beside it.
    target = cfg.by_key["lora.target_modules"]
    assert target.value == (
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    )
    assert target.source == "adapter_config.json"
    assert target.overruled == (("all", "training_args.yaml"),)
    assert target in cfg.disagreements


def test_the_newest_file_wins_a_disagreement(tmp_path):
    folder = _run(tmp_path)
    (folder / "training_args.yaml").write_text(LF_ARGS)
    wb.write_json(folder / "adapter_config.json", LF_ADAPTER | {"r": 16, "lora_alpha": 32.0})
    now = time.time()
    _set_time(folder / "adapter_config.json", now - 600)
    _set_time(folder / "training_args.yaml", now - 60)
    cfg = config_of(_one(tmp_path, folder))
    rank = cfg.by_key["lora.r"]
    assert (rank.value, rank.source) == (8, "training_args.yaml")
    assert rank.overruled == ((16, "adapter_config.json"),)
    # Same value under two spellings (32.0 and 32) is no disagreement.
    _set_time(folder / "adapter_config.json", now)
    wb.write_json(folder / "adapter_config.json", LF_ADAPTER | {"lora_alpha": 16.0})
    cfg = config_of(_one(tmp_path, folder))
    assert cfg.by_key["lora.alpha"].overruled == ()
    assert cfg.get("lora.alpha") == 16 and type(cfg.get("lora.alpha")) is int


def test_peft_float_alpha_is_an_integer_and_each_field_comes_from_a_file_that_has_it(tmp_path):
    # PEFT writes `lora_alpha` as a float when it was given one; the final model's config
    # here lacks `r`, which every checkpoint's has.
    root = tmp_path
    run = wb.make_run(root, "sft", started("20251101_100000"), max_steps=100, save_every=50)
    (run / "training_lineage.json").unlink()
    final = run / "final_model" / "adapter_config.json"
    data = json.loads(final.read_text())
    del data["r"]
    wb.write_json(final, data | {"lora_alpha": 32.0})
    ckpt = run / "checkpoints" / "checkpoint-100" / "adapter_config.json"
    wb.write_json(ckpt, json.loads(ckpt.read_text()) | {"r": 16, "lora_alpha": 32.0})
    _set_time(ckpt, time.time() - 100)
    [r] = list_runs(Workspace.at(root))
    cfg = config_of(r)
    assert cfg.get("lora.alpha") == 32 and type(cfg.get("lora.alpha")) is int
    assert cfg.by_key["lora.alpha"].source == "final_model/adapter_config.json"
    assert cfg.get("lora.r") == 16
    assert cfg.by_key["lora.r"].source == "checkpoints/checkpoint-100/adapter_config.json"


def test_upstream_lineage_names_the_whole_setup(tmp_path):
    run = wb.make_run(tmp_path, "kto", started("20251101_100000"), max_steps=100, lr=5e-7)
    lineage = json.loads((run / "training_lineage.json").read_text())
    # The KTO trainer adds its own keys (formats.md, `training_lineage.json`).
    lineage["training"] |= {
        "beta": 0.1,
        "desirable_weight": 1.0,
        "undesirable_weight": 1.0,
        "lr_scheduler": "cosine",
        "warmup_ratio": 0.1,
        "optimizer": "adamw_8bit",
        "max_grad_norm": 1.0,
        "two_stage_lr": {"enabled": True, "stage1_steps": 50},
    }
    wb.write_json(run / "training_lineage.json", lineage)
    [r] = list_runs(Workspace.at(tmp_path))
    cfg = config_of(r)
    v, s = cfg.values(), cfg.sources()
    assert v["method"] == "kto" and s["method"] == "training_lineage.json"
    assert (v["lora.r"], v["lora.alpha"], v["beta"], v["warmup"]) == (32, 64, 0.1, 0.1)
    assert v["learning_rate"] == pytest.approx(5e-7)
    assert (v["scheduler"], v["optimizer"]) == ("cosine", "adamw_8bit")
    assert (v["dataset"], v["train_examples"]) == ("data/kto_toolset.jsonl", 2400)
    assert v["gpu"] == "NVIDIA GeForce RTX 3090"
    assert v["training.desirable_weight"] == 1.0
    assert v["training.two_stage_lr.stage1_steps"] == 50
    assert "run_directory" not in v
    # The main keys come first, in the vocabulary's order.
    assert [x.key for x in cfg.main][:3] == ["base_model", "method", "lora.r"]


def test_notebook_lineage_names(tmp_path):
    # ProfSynapse/Toolset-Training's notebooks write base_model.name and lora_config.
    folder = _run(tmp_path)
    wb.write_json(
        folder / "training_lineage.json",
        {
            "training_method": "SFT",
            "base_model": {"name": "unsloth/Qwen3-4B"},
            "lora_config": {"r": 64, "alpha": 128, "dropout": 0.0},
            "training_config": {"learning_rate": 2e-7, "batch_size": 2},
        },
    )
    cfg = config_of(_one(tmp_path, folder))
    assert cfg.get("base_model") == "unsloth/Qwen3-4B"
    assert (cfg.get("lora.r"), cfg.get("lora.alpha"), cfg.get("batch_size")) == (64, 128, 2)
    assert cfg.get("method") == "sft"


def test_trl_model_card_front_matter(tmp_path):
    folder = _run(tmp_path)
    (folder / "README.md").write_text(TRL_CARD)
    cfg = config_of(_one(tmp_path, folder))
    assert cfg.get("base_model") == "unsloth/meta-llama-3.1-8b-instruct-bnb-4bit"
    assert cfg.get("method") == "dpo" and cfg.by_key["method"].source == "README.md"
    assert cfg.get("model_card.library_name") == "peft"


def test_a_model_card_without_settings_says_nothing():
    assert model_card("# LoRA adapter for some model\n") is None


def test_method_falls_back_to_the_run_type(tmp_path):
    run = wb.make_run(tmp_path, "sft", started("20251101_100000"), completed=False)
    [r] = list_runs(Workspace.at(tmp_path))
    cfg = config_of(r)
    assert (cfg.get("method"), cfg.by_key["method"].source) == ("sft", RUN_TYPE_SOURCE)
    assert run.exists()


def test_training_args_bin_is_never_unpickled(tmp_path):
    folder = _run(tmp_path)
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "training_args.bin").write_bytes(pickle.dumps(Boom()))
    cfg = config_of(_one(tmp_path, folder))
    assert not marker.exists()
    assert ("training_args.bin", PICKLE_NOTE) in cfg.unread


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("a: [1, 2\n", "is not valid YAML at line"),
        ("!!python/object/apply:os.system ['touch pwned']\n", "is not valid YAML"),
        ("- just\n- a list\n", "is not a YAML mapping"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nests deeper"),
        ("a: &a [*a]\n", "contains itself"),
    ],
)
def test_hostile_yaml_gives_a_message(tmp_path, text, why):
    found = parse(text)
    assert found.data is None and why in (found.problem or "")
    assert not (Path.cwd() / "pwned").exists()


def test_an_unreadable_yaml_file_is_named_with_why(tmp_path):
    folder = _run(tmp_path)
    (folder / "training_args.yaml").write_bytes(b"\xff\xfe not text")
    (folder / "README.md").write_text("---\nbase_model: [unclosed\n---\n")
    cfg = read_config(_one(tmp_path, folder))
    unread = dict(cfg.unread)
    assert unread["training_args.yaml"] == "is not UTF-8 text"
    assert "front matter is not valid YAML" in unread["README.md"]


def test_yaml_aliases_cannot_blow_up():
    # A "billion laughs" document: nine levels of aliases. Its depth is found once per object
    # and flattening stops at a bound, so it is read at once.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(9)) + "}"
        for i in range(1, 9)
    ]
    started_at = time.monotonic()
    found = parse("\n".join(lines) + "\n")
    assert found.data is not None
    read = flatten(found.data, {})
    assert time.monotonic() - started_at < 5
    assert "more than" in (read.problem or "")


def test_hostile_json_gives_a_message(tmp_path):
    folder = _run(tmp_path)
    (folder / "training_lineage.json").write_text("[1, 2, 3]")
    (folder / "adapter_config.json").write_text('{"r": "sixteen", "lora_alpha": true}')
    cfg = read_config(_one(tmp_path, folder))
    assert ("training_lineage.json", "is not a JSON object") in cfg.unread
    assert cfg.get("lora.r") is None and cfg.get("lora.alpha") is None


def test_a_file_outside_the_root_is_not_read(tmp_path):
    folder = _run(tmp_path / "ws")
    outside = tmp_path / "secret.yaml"
    outside.write_text("lora_rank: 99\n")
    (folder / "training_args.yaml").symlink_to(outside)
    cfg = read_config(_one(tmp_path / "ws", folder))
    assert cfg.get("lora.r") is None


def test_cached_by_file_identity(tmp_path):
    folder = _run(tmp_path)
    (folder / "training_args.yaml").write_text("lora_rank: 8\n")
    run = _one(tmp_path, folder)
    first = config_of(run)
    assert config_of(run) is first
    (folder / "training_args.yaml").write_text("lora_rank: 16\n")
    assert config_of(run).get("lora.r") == 16
    # A file that appears counts too.
    wb.write_json(folder / "adapter_config.json", {"lora_dropout": 0.1})
    assert config_of(run).get("lora.dropout") == 0.1


def test_the_cache_keeps_no_run_alive(tmp_path):
    """A newer walk's runs replace the ones a configuration was checked for: /explore/ reads
    every run's, and the older walk should not stay in memory with them."""
    folder = _run(tmp_path)
    wb.write_json(folder / "adapter_config.json", LF_ADAPTER)
    run = _one(tmp_path, folder)
    assert config_of(run).get("lora.r") == 8
    gone = weakref.ref(run)
    del run
    clear_memo()  # the walk's own cache
    gc.collect()
    assert gone() is None


def test_runs_share_their_settings_names_and_text(tmp_path):
    """A thousand runs with one setup hold its names and text once; the cache keeps the
    settings read from a file, not the whole parsed file."""
    first, second = _run(tmp_path, "a"), _run(tmp_path, "b")
    for folder in (first, second):
        wb.write_json(folder / "adapter_config.json", LF_ADAPTER)
    runs = list_runs(Workspace.at(tmp_path, run_dirs=(first, second)))
    a, b = (config_of(r).by_key for r in runs)
    assert a["adapter.task_type"].key is b["adapter.task_type"].key
    assert a["adapter.task_type"].value is b["adapter.task_type"].value == "CAUSAL_LM"
    assert a["lora.target_modules"].value[0] is b["lora.target_modules"].value[0]
    kinds = {kind for _, kind in file_cache._entries}
    assert "json" not in kinds and "config_adapter" in kinds


MLX_MINIMAL = SHARED_UPSTREAM / "Trainers" / "mistral_lora_mac" / "test_logs_minimal"
# ProfSynapse/Toolset-Training, Trainers/mistral_lora_mac/config/config_test_kto_minimal.yaml
MLX_CONFIG = """\
model:
  name: "mistralai/Mistral-7B-Instruct-v0.3"
  cache_dir: "~/.cache/huggingface"
  dtype: "float16"
  max_seq_length: 256  # Very short sequences
  trust_remote_code: false

lora:
  rank: 4  # Minimal rank
  alpha: 8  # 2 * rank
  dropout: 0.05
  target_modules:
    - "q_proj"
  bias: "none"

training:
  num_epochs: 1
  per_device_batch_size: 4
  gradient_accumulation_steps: 1
  learning_rate: 5.0e-5
  warmup_steps: 2
  max_grad_norm: 1.0
  weight_decay: 0.01
  save_steps: 10
  eval_steps: 10
  logging_steps: 1
  max_steps: 20
  seed: 42

kto:
  beta: 0.1
  lambda_d: 1.0
  lambda_u: 1.0

data:
  dataset_path: "test_dataset_kto.jsonl"
  train_split: 0.9
  shuffle: false
  seed: 42
  max_seq_length: 256

output:
  checkpoint_dir: "test_checkpoints_minimal"
  final_model_dir: "test_outputs_minimal/final_model"
  logs_dir: "test_logs_minimal"
  metrics_dir: "test_outputs_minimal/metrics"
  keep_last_n_checkpoints: 1
"""


@needs_upstream
def test_mlx_config_of_the_profile_that_wrote_the_run(tmp_path):
    trainer = tmp_path / "Trainers" / "mistral_lora_mac"
    shutil.copytree(MLX_MINIMAL, trainer / "test_logs_minimal")
    (trainer / "config").mkdir()
    (trainer / "config" / "config_test_kto_minimal.yaml").write_text(MLX_CONFIG)
    (trainer / "config" / "config.yaml").write_text(
        MLX_CONFIG.replace("test_logs_minimal", "logs").replace("rank: 4", "rank: 16")
    )
    runs = list_runs(Workspace.at(tmp_path))
    assert runs
    for path in (trainer / "config").iterdir():
        _set_time(path, runs[-1].started_at.timestamp() - 3600)
    cfg = config_of(runs[0])
    assert cfg.get("lora.r") == 4
    assert cfg.by_key["lora.r"].source == "config/config_test_kto_minimal.yaml"
    assert (cfg.get("beta"), cfg.get("batch_size"), cfg.get("max_steps")) == (0.1, 4, 20)
    assert cfg.get("lora.target_modules") == ("q_proj",)
    assert cfg.get("output.keep_last_n_checkpoints") == 1
    # A config edited after the run ended describes a later run: not this one's.
    path = trainer / "config" / "config_test_kto_minimal.yaml"
    _set_time(path, time.time())
    cfg = config_of(list_runs(Workspace.at(tmp_path))[0])  # the next page's walk
    assert cfg.get("lora.r") is None
    assert any("changed after this run" in why for _, why in cfg.unread)


def test_mlx_training_report(tmp_path):
    wb.make_mlx_trainer(tmp_path, [(datetime(2025, 11, 1, 10), 40, True)])
    [r] = list_runs(Workspace.at(tmp_path))
    cfg = config_of(r)
    assert (cfg.get("lora.r"), cfg.get("lora.alpha"), cfg.get("batch_size")) == (16, 32, 2)
    assert cfg.by_key["lora.r"].source == "outputs/metrics/training_report.json"
    assert cfg.get("effective_batch_size") == 8
    assert cfg.by_key["effective_batch_size"].derived
    assert "sample_generations" not in " ".join(cfg.values())


@pytest.mark.parametrize(
    ("text", "value", "matches"),
    [
        ("lora.r>=32", 32, True),
        ("lora.r>=32", 16, False),
        ("lora.r>32", 32, False),
        ("lora.r<=16", 16, True),
        ("lora.r<16", 8, True),
        ("lora.r!=32", 16, True),
        ("lora.r=32", 32.0, True),
        ("learning_rate=2e-4", 0.0002, True),
        ("learning_rate<1e-4", 5e-5, True),
        ("scheduler=cosine", "cosine", True),
        ("scheduler!=cosine", "linear", True),
        ("scheduler>cosine", "linear", False),  # text has no order
        ("lora.target_modules=q_proj", ("k_proj", "q_proj"), True),
        ("lora.target_modules=k_proj,q_proj", ("k_proj", "q_proj"), True),
        ("lora.target_modules!=v_proj", ("k_proj", "q_proj"), True),
        ("load_in_4bit=true", True, True),
        ("lora.r!=32", None, False),  # a run without the setting matches no filter on it
    ],
)
def test_where_filters(text, value, matches):
    assert parse_where(text).test(value) is matches


@pytest.mark.parametrize("text", ["lora.r", "lora.r>=", ">=32", "lora.r~32"])
def test_a_filter_that_does_not_parse_says_what_would(text):
    with pytest.raises(WhereError, match="operator among <=, >=, !=, =, <, >"):
        parse_where(text)
