"""Benchmark: training phases whose vision encoder is frozen, with each picture encoded once (the trainer's
``feature_cache_mb=1024``) against running the frozen encoder on every draw (``feature_cache_mb=0``, the default).

It runs the real trainer (``mmengine``) on a finished demo run, from that run's own weights and data:
- the demo's ``1-alignment`` and ``2-joint`` phases (the encoder frozen, as in the paper), at the demo's
  settings, each from the weights it started from in the run;
- a frozen-encoder phase 3 (``train=["connector", "language_model"]``, the direction of the README's "long
  phase 3 with the encoder frozen") on some tasks' instruction stores, from the run's phase-2 weights, at
  batch 32 for ``--steps`` steps.
Per job and round both variants train from the same weights; rounds alternate the variants so a load change
hits both. Reported: median seconds of a whole ``fit``, the speed-up, the share of pictures served from the
memo, and whether the two variants' final weights are bit for bit equal (they should be: a frozen encoder in
eval mode gives a picture the same output in any batch).

Usage: ``python benchmarks/frozen_features.py WORK_DIR [--phases 1-alignment,2-joint] [--tasks a,b]
[--steps 200] [--rounds 2] [--threads T]`` with ``WORK_DIR`` a finished ``babyvlm demo --work-dir WORK_DIR``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

import torch
from fitted_images import demo_run_parser, open_demo_run  # the sibling benchmark

import babyvlm
from babyvlm.core.experiment import Experiment, _load_weights

VARIANTS = {"encoded on every draw (feature_cache_mb=0, the default)": 0, "encoded once (feature_cache_mb=1024)": 1024}
DEFAULT_TASKS = "baby_leftright,baby_localize"


def quiet(_line: str) -> None:
    pass


def phase_named(experiment: Experiment, name: str) -> dict[str, Any]:
    return next(p for p in experiment.phases if p["name"] == name or p["stage"] == name)


def demo_phase_job(experiment: Experiment, name: str) -> dict[str, Any]:
    phase = phase_named(experiment, name)
    if phase["data"] != "store" or "formats" not in phase:
        raise SystemExit(f"--phases: {name} does not train on the pretraining store (pass phase-3 tasks as --tasks)")
    data = experiment.dataset(phase["formats"])
    return dict(label=f"{name} (demo: {phase['trainer']['max_steps']} steps x {phase['trainer']['batch_size']})",
                stage=phase["stage"], weights=experiment._starting_weights(phase), template=phase.get("template"),
                data=data, trainer=dict(phase["trainer"]))


def frozen_phase3_job(experiment: Experiment, task: str, steps: int) -> dict[str, Any]:
    phase = phase_named(experiment, "3-instruction")
    data = experiment.builder.dataset(experiment.phase_dir(phase["name"]) / task / "store")
    return dict(label=f"{task}, phase 3, encoder frozen ({steps} steps x 32)", stage="3-instruction",
                weights=experiment.phase_dir("2-joint") / "weights.safetensors",
                template=phase.get("template") or "baby_v1_qfirst", data=data,
                trainer=dict(phase["trainer"], max_steps=steps, batch_size=32, train=["connector", "language_model"]))


def fit_once(experiment: Experiment, job: dict[str, Any], cache_mb: int) -> tuple[float, dict, dict]:
    model = experiment._built_model()
    if job["weights"] is not None:
        _load_weights(model, job["weights"])
    if job["template"]:
        model.use_template(job["template"])
    trainer = babyvlm.build("trainer", dict(job["trainer"], feature_cache_mb=cache_mb, checkpoint_every=0,
                                            log_every=0, export=False, tensorboard=False))
    with tempfile.TemporaryDirectory(prefix="babyvlm-bench-") as folder:
        started = time.perf_counter()
        result = trainer.fit(model, job["data"], log=quiet, stage=job["stage"], work_dir=folder)
        seconds = time.perf_counter() - started
    return seconds, {k: v.detach().clone() for k, v in model.state_dict().items()}, result.extra


def main() -> None:
    parser = demo_run_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--phases", default="1-alignment,2-joint", help="demo phases to run ('' for none)")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"frozen phase-3 tasks (default {DEFAULT_TASKS})")
    parser.add_argument("--steps", type=int, default=200, help="steps of each frozen phase 3")
    args = parser.parse_args()
    experiment = open_demo_run(args)
    jobs = [demo_phase_job(experiment, name) for name in filter(None, args.phases.split(","))]
    jobs += [frozen_phase3_job(experiment, task, args.steps) for task in filter(None, args.tasks.split(","))]
    print(f"{args.work_dir}: {args.rounds} rounds, {torch.get_num_threads()} torch threads")
    columns = " | ".join(f"{name}: s" for name in VARIANTS)
    print(f"| phase | {columns} | speed-up | pictures served from memory | same weights |")
    print("|---|" + "---|" * len(VARIANTS) + "---|---|---|")
    for job in jobs:
        seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        weights: dict[str, dict] = {}
        extra: dict[str, Any] = {}
        for round_number in range(args.rounds):
            order = list(VARIANTS.items())
            for name, cache_mb in order if round_number % 2 == 0 else order[::-1]:  # neither always goes first
                took, weights[name], extra[name] = fit_once(experiment, job, cache_mb)
                seconds[name].append(took)
        first, second = (weights[name] for name in VARIANTS)
        same = first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
        base, remembered = (statistics.median(seconds[name]) for name in VARIANTS)
        stats = extra[list(VARIANTS)[1]].get("frozen_features", {})
        served = f"{stats['reused']} of {stats['pictures']}" if stats.get("pictures") else "none"
        print(f"| {job['label']} | {base:.1f} | {remembered:.1f} | {base / remembered:.2f}x | {served} | "
              f"{'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
