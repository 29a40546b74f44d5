"""Benchmark: phase-3 training with each picture fitted to the encoder once (the trainer's ``image_cache_mb``,
on by default) against decoding and resizing every picture on every draw (``image_cache_mb=0``).

It runs the real trainer (``mmengine``) of a finished demo run's phase 3: the run's resolved config, its
tokenizer, its phase-2 weights, its per-task instruction stores, the demo's phase-3 settings (batch 16,
``--steps`` steps). Per task and round both variants train from the same weights; rounds alternate the
variants so a load change hits both (with one round, the variant without fitting runs first and pays for a
cold file cache). Reported per task: mean pictures per item, median seconds of a whole ``fit`` (data, steps,
checkpoint), the speed-up, and whether the two variants' final weights are bit for bit equal (they must be: the
fitted pictures are the pixels the encoder would have normalised anyway).

Usage: ``python benchmarks/fitted_images.py WORK_DIR [--tasks a,b] [--steps 40] [--rounds 2] [--threads T]``
with ``WORK_DIR`` a finished ``babyvlm demo --work-dir WORK_DIR`` (a few minutes at the defaults).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import babyvlm
from babyvlm.core.experiment import Experiment, _load_weights

VARIANTS = {"every draw decoded (image_cache_mb=0)": 0, "fitted once (default)": 1024}
DEFAULT_TASKS = "baby_compare_real,baby_leftright,baby_vdr_open,baby_memory"


def quiet(_line: str) -> None:
    pass


def phase3(experiment: Experiment) -> dict:
    return next(p for p in experiment.phases if p["stage"] == "3-instruction")


def fit_once(experiment: Experiment, task: str, cache_mb: int, steps: int) -> tuple[float, dict]:
    phase = phase3(experiment)
    model = experiment._built_model()
    _load_weights(model, experiment.phase_dir("2-joint") / "weights.safetensors")  # every weight, or a named error
    model.use_template(phase.get("template") or "baby_v1_qfirst")
    dataset = experiment.builder.dataset(experiment.phase_dir(phase["name"]) / task / "store")
    trainer = babyvlm.build("trainer", dict(phase["trainer"], max_steps=steps, image_cache_mb=cache_mb,
                                            checkpoint_every=0, log_every=0, export=False, tensorboard=False))
    with tempfile.TemporaryDirectory(prefix="babyvlm-bench-") as folder:
        started = time.perf_counter()
        trainer.fit(model, dataset, log=quiet, stage="3-instruction", work_dir=folder)
        seconds = time.perf_counter() - started
    return seconds, {k: v.detach().clone() for k, v in model.state_dict().items()}


def demo_run_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark on a finished demo run takes: the run, the rounds, the torch threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("work_dir", type=Path, help="a finished demo run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over the variants")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    return parser


def open_demo_run(args: argparse.Namespace) -> Experiment:
    """The finished demo run of ``args.work_dir``, its tokenizer and model built; torch's threads set."""
    if args.threads:
        torch.set_num_threads(args.threads)
    experiment = Experiment(args.work_dir / "config.py", args.work_dir)
    experiment.ensure_tokenizer()
    experiment.build_model()
    return experiment


def main() -> None:
    parser = demo_run_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"comma-separated (default {DEFAULT_TASKS})")
    parser.add_argument("--steps", type=int, default=40, help="steps per fit (the demo's phase 3: 40)")
    args = parser.parse_args()
    experiment = open_demo_run(args)
    print(f"{args.work_dir}: phase 3 of the demo, batch {phase3(experiment)['trainer']['batch_size']}, "
          f"{args.steps} steps per fit, {args.rounds} rounds, {torch.get_num_threads()} torch threads")
    columns = " | ".join(f"{name}: s" for name in VARIANTS)
    print(f"| task | pictures per item (mean) | {columns} | speed-up | same weights |")
    print("|---|---|" + "---|" * len(VARIANTS) + "---|---|")
    for task in args.tasks.split(","):
        seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        weights: dict[str, dict] = {}
        for round_number in range(args.rounds):
            order = list(VARIANTS.items())
            for name, cache_mb in order if round_number % 2 == 0 else order[::-1]:  # neither always goes first
                took, weights[name] = fit_once(experiment, task, cache_mb, args.steps)
                seconds[name].append(took)
        first, second = (weights[name] for name in VARIANTS)
        same = first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
        base, fitted = (statistics.median(seconds[name]) for name in VARIANTS)
        store = experiment.builder.dataset(experiment.phase_dir(phase3(experiment)["name"]) / task / "store")
        pictures = sum(len(store[n]["images"]) for n in range(len(store))) / len(store)
        print(f"| {task} | {pictures:.1f} | {base:.1f} | {fitted:.1f} | {base / fitted:.2f}x | "
              f"{'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
