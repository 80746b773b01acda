"""The one YAML reader, on the arguments files LLaMA-Factory writes."""

from __future__ import annotations

import math
from pathlib import Path

from discovery.yamlfile import parse, read_mapping

# aa-n/Qwen3_Lora, training_args.yaml: LLaMA-Factory's own dump (yaml.safe_dump) of a LoRA SFT.
QWEN3_ARGS = """\
bf16: true
cutoff_len: 32768
dataset: tcm,mdk,NLI
dataset_dir: data
ddp_timeout: 180000000
do_train: true
finetuning_type: lora
flash_attn: auto
gradient_accumulation_steps: 8
include_num_input_tokens_seen: true
learning_rate: 5.0e-05
logging_steps: 996
lora_alpha: 16
lora_dropout: 0
lora_rank: 8
lora_target: all
lr_scheduler_type: cosine
max_grad_norm: 1.0
max_samples: 10000
model_name_or_path: /dev/shm/Qwen/Qwen3-14B
num_train_epochs: 3.0
optim: adamw_torch
output_dir: saves/Qwen3-14B-Instruct/lora/train_2025-04-29-14-28-08
packing: false
per_device_train_batch_size: 2
plot_loss: true
preprocessing_num_workers: 16
report_to: none
save_steps: 5000
stage: sft
template: qwen3
trust_remote_code: true
warmup_steps: 0
"""


def test_a_real_llamafactory_dump_reads_typed():
    args = parse(QWEN3_ARGS).data
    assert args is not None
    assert args["learning_rate"] == 5.0e-05 and isinstance(args["learning_rate"], float)
    assert args["lora_rank"] == 8 and args["lora_alpha"] == 16
    assert args["num_train_epochs"] == 3.0
    assert args["bf16"] is True and args["packing"] is False
    assert args["model_name_or_path"] == "/dev/shm/Qwen/Qwen3-14B"
    assert args["dataset"] == "tcm,mdk,NLI"
    assert args["report_to"] == "none"  # a string in YAML, not null
    assert len(args) == 33


def test_lists_quotes_comments_and_folded_strings():
    text = (
        "# comment\n"
        "dataset:\n- alpaca_en\n- 'it''s'\n"
        'template: "a\\tb" # kept\n'
        "note: a long plain string that\n  goes on here\n"
        "lr: 1.0e-4\n"
        "nothing:\n"
        "inf: .inf\n"
        "version: 0.9.1\n"
        "nested:\n  a: 1\n"
        "after: ~\n"
    )
    assert parse(text).data == {
        "dataset": ["alpaca_en", "it's"],
        "template": "a\tb",
        "note": "a long plain string that goes on here",
        "lr": 1e-4,
        "nothing": None,
        "inf": math.inf,
        "version": "0.9.1",
        "nested": {"a": 1},
        "after": None,
    }


def test_a_hand_written_exponent_is_a_learning_rate_all_the_same(tmp_path: Path):
    # YAML 1.1 reads `1e-4` (no dot) as a string; the configuration still reads it as a number.
    from discovery.config import normalize

    assert parse("learning_rate: 1e-4\n").data == {"learning_rate": "1e-4"}
    assert normalize("learning_rate", "1e-4") == 1e-4


def test_what_is_not_a_mapping_reads_as_nothing(tmp_path: Path):
    assert parse("just a line of text\n").data is None
    assert parse("- a\n- b\n").data is None
    f = tmp_path / "training_args.yaml"
    f.write_bytes(b"\xff\xfe not utf-8")
    assert read_mapping(f, tmp_path) is None
    f.write_text(QWEN3_ARGS)
    assert read_mapping(f, tmp_path)["stage"] == "sft"  # type: ignore[index]
    assert read_mapping(tmp_path / "missing.yaml", tmp_path) is None
