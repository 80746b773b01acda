"""Large generated workspaces for bench/: mostly completed runs, some stopped, a few running."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

from .evaluator import write_prompt_sets
from .runs import BASE_MODELS, make_run


def _bench_run(args: tuple[str, str, int, int, int, int, int, str, float | None]) -> None:
    root, run_type, i, steps, log_every, save_every, seed, kind, mtime = args
    started = datetime(2025, 1, 1) + timedelta(hours=7 * i + (0 if run_type == "sft" else 3))
    done = steps if kind == "completed" else steps * (3 + seed % 5) // 10
    make_run(
        Path(root),
        run_type,
        started,
        max_steps=steps,
        done=done,
        log_every=log_every,
        save_every=save_every,
        completed=kind == "completed",
        base_model=BASE_MODELS[i % len(BASE_MODELS)],
        lr=2e-4 if run_type == "sft" else 2e-7,
        seed=seed,
        mtime=mtime,
    )


def build_bench(
    root: Path,
    runs_per_type: int,
    checkpoints: int,
    steps: int,
    log_every: int,
    jobs: int = 2,
) -> Path:
    """A large workspace for benchmarks: mostly completed runs, some stopped, a few running."""
    from concurrent.futures import ProcessPoolExecutor

    if (root / "Trainers").exists():
        shutil.rmtree(root / "Trainers")
    save_every = max(steps // checkpoints, 1)
    old = time.time() - 86400
    specs = []
    for run_type in ("sft", "kto"):
        for i in range(runs_per_type):
            seed = i * 2 + (run_type == "kto")
            kind = (
                "running" if i >= runs_per_type - 2 else "stopped" if i % 10 == 3 else "completed"
            )
            mtime = None if kind == "running" else old
            specs.append((str(root), run_type, i, steps, log_every, save_every, seed, kind, mtime))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(_bench_run, specs, chunksize=8))
    write_prompt_sets(root)
    return root
