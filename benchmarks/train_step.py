"""Benchmark: training throughput per phase (samples/s, tokens/s) of the tiny preset on this machine,
through the real trainers (``mmengine``, ``dino``) on a synthetic corpus; model FLOPs/s and, on a GPU,
MFU = (6·N + 12·L·d·T) · tokens/s ÷ peak (N = matmul parameters of the trained parts, L layers, d width,
T sequence length; H100/H200 dense bf16 peak 989.4 TFLOPS). Steady state: the median of the
per-iteration rates in each phase's ``metrics.jsonl`` after ``--warmup`` iterations.

Then the trainer against a bare PyTorch loop, side by side in the same run (``--compare PHASE``, default
``2-joint``): the same model from the same weights, the same dataset, batch size, collate
(``model.prepare_batch``), AdamW settings and gradient clipping; the ``mmengine`` trainer set up as the
demo sets it up (log every 25, a final checkpoint, the export, TensorBoard). Runs alternate (trainer, bare,
trainer, bare, ...) so a load change on a shared machine hits both; reported as trainer / bare ratios of
the steady step (median after ``--warmup``) and of the whole phase (setup, steps, checkpoint and export).

States what it could not measure (paper-size figures, peak memory and MFU need a CUDA GPU).
Usage: ``python benchmarks/train_step.py [--steps N] [--minutes M] [--compare PHASE] [--repeats R]
[--no-table]`` (about 2-4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from babyvlm import registry
from babyvlm.core.experiment import Experiment

PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12}
PLUGINS = {"dino": "babyvlm.plugins.dino", "cnn_encoder": "babyvlm.plugins.cnn_encoder",
           "mmengine_trainer": "babyvlm.plugins.mmengine_trainer"}


def ensure_plugins() -> None:
    import importlib
    from importlib import metadata

    loaded = {p.name for p in registry.plugins()} | {ep.name for ep in metadata.entry_points(group="babyvlm")}
    for name, module in PLUGINS.items():
        if name not in loaded:
            registry.register_plugin(importlib.import_module(module), name)


def config(corpus: Path, steps: int, batch: int) -> dict:
    common = dict(type="mmengine", max_steps=steps, lr=1e-3, batch_size=batch, log_every=0, export=False,
                  tensorboard=False, checkpoint_every=0)
    return {
        "data": {"source": dict(type="saycam", transcripts="human"), "root": str(corpus),
                 "builder": dict(type="pretraining_set", image_size=64), "heldout_recordings": 1},
        "tokenizer": dict(type="bpe", vocab_size=400, min_frequency=1),
        "model": dict(type="babyllava", encoder=dict(type="cnn", preset="tiny"), connector="mlp2x_gelu",
                      language_model=dict(type="llama", preset="tiny"), template="baby_plain"),
        "phases": [
            dict(name="0-language", trainer=dict(common, block_size=64), init="none"),
            dict(name="0-vision", formats=["image"], init="none",
                 trainer=dict(common, type="dino", probe=False, out_dim=1024, hidden_dim=512, bottleneck_dim=128,
                              local_crops=4)),
            dict(name="1-alignment", formats=["image"], trainer=common, init="none"),
            dict(name="2-joint", formats=["image", "video", "interleaved"], trainer=common, init="none"),
        ],
    }


def matmul_params(module: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear) and m.weight.requires_grad)


def steady(folder: Path, warmup: int) -> dict[str, float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    rows = rows[warmup:] or rows
    return {"samples_per_s": statistics.median(r["samples_per_s"] for r in rows),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows)}


def bare_loop(model: torch.nn.Module, dataset, trainer: dict, stage: str, steps: int) -> tuple[float, list[float]]:
    """The phase as a plain PyTorch loop: (whole seconds, per-step seconds). What the trainer does at its core
    (shuffled batches, the model's collate, its loss, backward, clip, AdamW) and nothing else."""
    from babyvlm.plugins.mmengine_trainer.objectives import ModelLoss
    from babyvlm.plugins.simple_trainer.shared import apply_stage

    started = time.perf_counter()
    apply_stage("bare loop", model, stage, None, log=lambda line: None)
    objective = ModelLoss(model).train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=trainer["lr"], betas=tuple(trainer.get("betas", (0.9, 0.95))),
                                  weight_decay=trainer.get("weight_decay", 0.0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=trainer["batch_size"], shuffle=True,
                                         collate_fn=model.prepare_batch, generator=torch.Generator().manual_seed(0))
    step_seconds: list[float] = []
    while len(step_seconds) < steps:
        last = time.perf_counter()
        for batch in loader:
            loss = objective(batch)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, trainer.get("grad_clip", 1.0))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            now = time.perf_counter()
            step_seconds.append(now - last)
            last = now
            if len(step_seconds) == steps:
                break
    return time.perf_counter() - started, step_seconds


def compare_with_bare(experiment: Experiment, phase_name: str, steps: int, warmup: int, repeats: int) -> None:
    """The ``mmengine`` trainer vs ``bare_loop`` on one phase, alternating runs; prints the ratios."""
    phase = next(p for p in experiment.phases if p["name"] == phase_name)
    model = experiment.model
    initial = copy.deepcopy(model.state_dict())
    dataset = experiment._phase_dataset(phase, experiment.phase_dir(phase_name))
    if phase.get("template") is not None:
        model.use_template(phase["template"])
    # the trainer as the demo configures it (babyvlm/configs/demo.py's _common): the defaults otherwise
    settings = dict(phase["trainer"], max_steps=steps, log_every=25, checkpoint_every=0)
    settings.pop("export", None), settings.pop("tensorboard", None)
    runs: dict[str, list[tuple[float, list[float]]]] = {"trainer": [], "bare": []}
    for repeat in range(repeats):
        model.load_state_dict(initial)
        trainer = registry.build("trainer", settings)
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{phase_name}-{repeat}-"))
        started = time.perf_counter()
        result = trainer.fit(model, dataset, log=lambda line: None, stage=phase["stage"], work_dir=folder)
        whole = time.perf_counter() - started
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        runs["trainer"].append((whole, [settings["batch_size"] / r["samples_per_s"] for r in rows]))
        assert result.steps == steps
        model.load_state_dict(initial)
        runs["bare"].append(bare_loop(model, dataset, settings, phase["stage"], steps))

    def step(name: str) -> float:
        return statistics.median(s for _, seconds in runs[name] for s in seconds[warmup:] or seconds)

    def whole(name: str) -> float:
        return statistics.median(w for w, _ in runs[name])

    print(f"\n{phase_name}: trainer 'mmengine' vs a bare PyTorch loop, batch {settings['batch_size']}, {steps} steps, "
          f"{repeats} alternating runs each (load average {os.getloadavg()[0]:.1f})")
    print(f"{'':10} {'step s (median)':>16} {'phase s (median)':>17}")
    for name in ("trainer", "bare"):
        print(f"{name:10} {step(name):16.3f} {whole(name):17.2f}")
    print(f"{'ratio':10} {step('trainer') / step('bare'):15.2f}x {whole('trainer') / whole('bare'):16.2f}x  "
          f"(trainer / bare; the phase's extra {whole('trainer') - whole('bare'):.1f} s is set-up, logging, "
          f"checkpoint and export)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument("--compare", default="2-joint", help="phase to run with the trainer and a bare loop "
                        "side by side ('' to skip)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating trainer/bare runs of --compare")
    parser.add_argument("--no-table", action="store_true", help="skip the per-phase throughput table")
    args = parser.parse_args()
    ensure_plugins()
    work = Path(tempfile.mkdtemp(prefix="babyvlm-train-bench-"))
    registry.get("command", "synth").main(["saycam", str(work / "corpus"), "--minutes", str(args.minutes), "--size", "64",
                                           "--video-minutes", "0.5", "--quiet"], standalone_mode=False)
    experiment = Experiment(config(work / "corpus", args.steps, args.batch), work / "run", log=lambda line: None)
    experiment.ensure_data()
    experiment.ensure_tokenizer()
    experiment.build_model()
    model = experiment.model
    lm = model.language_model.config
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"tiny preset (cnn tiny + llama tiny, {model.parameter_counts()['total']:,} parameters) on {device}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, {args.steps} steps per phase "
          f"(median after {args.warmup}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.no_table:
        print(f"{'phase':14} {'samples/s':>10} {'tokens/s':>10} {'model GFLOP/s':>14}  notes")
    for phase in [] if args.no_table else experiment.phases:
        started = time.perf_counter()
        result = experiment.train_phase(phase["name"])
        rates = steady(experiment.phase_dir(phase["name"]), args.warmup)
        n = matmul_params(model)
        sequence = result.metrics["tokens"] / max(1, result.metrics["samples"])
        flops = (6 * n + 12 * lm.num_hidden_layers * lm.hidden_size * sequence) * rates["tokens_per_s"]
        if phase["name"] == "0-vision":
            images = rates["samples_per_s"] * (2 + phase["trainer"]["local_crops"])
            print(f"{phase['name']:14} {rates['samples_per_s']:10.1f} {'-':>10} {'-':>14}  "
                  f"{images:.0f} crops/s (2 global 64 px + 4 local 28 px per image)")
            continue
        note = f"T = {sequence:.0f} tokens/sample, N = {n:,} trained matmul params"
        print(f"{phase['name']:14} {rates['samples_per_s']:10.1f} {rates['tokens_per_s']:10.0f} "
              f"{flops / 1e9:14.2f}  {note}; phase wall {time.perf_counter() - started:.1f} s")
    if args.compare:
        compare_with_bare(experiment, args.compare, args.steps, args.warmup, args.repeats)
    if device == "cpu":
        print("not measured (no CUDA GPU here): paper-size (ViT-L/16 + TinyLlama-1.1B) samples/s, peak memory and "
              "MFU with and without the Triton kernels; MFU needs a GPU's bf16 peak "
              f"({PEAK_BF16_FLOPS['H100'] / 1e12:.1f} TFLOPS on H100/H200).")


if __name__ == "__main__":
    main()
