"""Benchmark: the CNN encoder's activation layout (``channels_last``, on by default) and bf16 autocast,
in a training step of the demo's model, side by side on this machine.

The demo's BabyLLaVA (tiny CNN encoder at 64 px, ``mlp2x_gelu`` connector, tiny LLaMA) takes AdamW steps
on random pictures and a short answer-only sequence at the demo's phase-3 batch (16 samples); one shape
with four pictures per sample (Left/Right, Spatial Details, Picture Vocabulary) and one with one
(Localization, Counting). Every variant starts from the same weights; rounds alternate the variants so a
load change on a shared machine hits all of them. Reported: the median step time per variant and its
speed-up over the baseline (NCHW activations, fp32), plus the encoder's forward alone (evaluation's cost).
bf16 rows are informative: the demo trains in fp32, and bf16 is fast only where the CPU has bf16
instructions (AVX512-BF16 / AMX); ``precision="bf16"`` is the trainer's setting for it.

Usage: ``python benchmarks/encoder_layout.py [--rounds R] [--steps S] [--threads T]`` (about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from babyvlm.plugins.babyllava.model import BabyLLaVA

VARIANTS = {  # name: (channels_last, bf16 autocast)
    "NCHW fp32 (baseline)": (False, False),
    "channels_last fp32 (default)": (True, False),
    "NCHW bf16": (False, True),
    "channels_last bf16": (True, True),
}


def build_models() -> dict[str, BabyLLaVA]:
    torch.manual_seed(0)
    models = {}
    for name, (channels_last, _) in VARIANTS.items():
        model = BabyLLaVA(encoder=dict(type="cnn", preset="tiny", channels_last=channels_last),
                          language_model=dict(type="llama", preset="tiny", vocab_size=400), template=None)
        if models:
            model.load_state_dict(next(iter(models.values())).state_dict())
        models[name] = model.train()
    return models


def batch(model: BabyLLaVA, samples: int, pictures: int, text: int = 40) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(pictures)
    ids = torch.randint(10, 400, (samples, text), generator=generator)
    ids[:, 2:2 + pictures] = model.image_id  # question first, then the pictures, then the answer
    labels = torch.full_like(ids, -100)
    labels[:, -1] = ids[:, -1]
    pixels = torch.randn(samples * pictures, 3, 64, 64, generator=generator)
    return dict(input_ids=ids, labels=labels, pixel_values=pixels,
                image_counts=torch.full((samples,), pictures, dtype=torch.long))


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_seconds(model: BabyLLaVA, optimizer: torch.optim.Optimizer, inputs: dict, bf16: bool, steps: int) -> float:
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        with autocast(bf16):
            loss = model(**inputs)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def encode_seconds(model: BabyLLaVA, pixels: torch.Tensor, bf16: bool, steps: int) -> float:
    times = []
    with torch.no_grad():
        for _ in range(steps):
            started = time.perf_counter()
            with autocast(bf16):
                model.encoder(pixels)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine() -> str:
    """The CPU's model name and its bf16 instructions (Linux ``/proc/cpuinfo``; the platform string elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    bf16 = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name} ({', '.join(bf16) if bf16 else 'no bf16 instructions'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the variants")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant and round (after 2 warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = build_models()
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-3) for name, model in models.items()}
    rows = []
    for pictures in (4, 1):
        inputs = batch(next(iter(models.values())), 16, pictures)
        train: dict[str, list[float]] = {name: [] for name in VARIANTS}
        encode: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, (_, bf16) in VARIANTS.items():
                model = models[name]
                train_seconds(model, optimizers[name], copy.copy(inputs), bf16, 2)  # warm-up
                train[name].append(train_seconds(model, optimizers[name], copy.copy(inputs), bf16, args.steps))
                model.eval()
                encode[name].append(encode_seconds(model, inputs["pixel_values"], bf16, args.steps))
                model.train()
        base = "NCHW fp32 (baseline)"
        for name in VARIANTS:
            step, enc = statistics.median(train[name]), statistics.median(encode[name])
            rows.append(dict(pictures=pictures, variant=name, step_ms=round(1000 * step, 1),
                             step_speedup=round(statistics.median(train[base]) / step, 2),
                             encode_ms=round(1000 * enc, 1),
                             encode_speedup=round(statistics.median(encode[base]) / enc, 2)))
    print(f"machine: {machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; batch 16, 64-px pictures, {args.rounds} rounds x {args.steps} steps")
    print("| pictures per sample | variant | train step ms | speed-up | encoder forward ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['pictures']} | {row['variant']} | {row['step_ms']} | {row['step_speedup']}x | "
              f"{row['encode_ms']} | {row['encode_speedup']}x |")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
