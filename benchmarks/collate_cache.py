"""Benchmark: the resized-picture cache in the model's collate (``prepare_batch``), on a demo run's own
phase-3 data, side by side with the cache off.

A phase-3 step collates 16 train items of one DevCV task: every picture's JPEG bytes are decoded, padded to
a square and resized to 64 px (``babyvlm.plugins.vit.encoder.preprocess_image``), then the model trains on
them. The cache (``RESIZED_CACHE``) keeps each resized picture by a digest of its bytes, so from the second
draw of an item on, a picture costs a hash. Timed per task, alternating off / on in each round: the collate
over one epoch of the task's train items (cache cleared first: the first epoch pays every picture once,
the second epoch is the steady state), and a whole training step (collate + forward + backward + AdamW)
with a warm cache against none. The tensors are checked to be identical with and without the cache.

Usage: ``python benchmarks/collate_cache.py [--run demo_out] [--tasks baby_memory,baby_leftright]
[--rounds R]`` (a minute or two; needs a finished ``make demo``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from babyvlm.plugins.babyllava.model import BabyLLaVA
from babyvlm.plugins.vit import encoder as vit_encoder


def load_samples(tasks: Path, task: str) -> list[dict]:
    items = json.loads((tasks / "devcv_instructions_train.json").read_text())
    items = items if isinstance(items, list) else items["items"]
    chosen = [item for item in items if item.get("task") == task]
    if not chosen:
        raise SystemExit(f"{tasks / 'devcv_instructions_train.json'}: no train items of task {task!r}")
    return [dict(conversations=item["conversations"],
                 images=[(tasks / name).read_bytes() for name in (item["image"] if isinstance(item["image"], list)
                                                                   else [item["image"]])])
            for item in chosen]


def batches(samples: list[dict], size: int, seed: int) -> list[list[dict]]:
    order = random.Random(seed).sample(samples, len(samples))
    return [order[i:i + size] for i in range(0, len(order), size)]


def collate_epoch(model: BabyLLaVA, samples: list[dict], cached: bool) -> float:
    vit_encoder.RESIZED_CACHE.clear()
    vit_encoder.RESIZED_CACHE.limit_bytes = 256 * 2**20 if cached else 0
    started = time.perf_counter()
    for chunk in batches(samples, 16, 0):
        model.prepare_batch(chunk)
    return time.perf_counter() - started


def step_seconds(model: BabyLLaVA, optimizer: torch.optim.Optimizer, samples: list[dict], cached: bool,
                 steps: int) -> float:
    vit_encoder.RESIZED_CACHE.limit_bytes = 256 * 2**20 if cached else 0
    if not cached:
        vit_encoder.RESIZED_CACHE.clear()
    chunks = batches(samples, 16, 1)[:steps]
    if cached:  # steady state: the pictures of these batches were drawn before
        for chunk in chunks:
            model.prepare_batch(chunk)
    times = []
    for chunk in chunks:
        started = time.perf_counter()
        loss = model(**model.prepare_batch(chunk))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("demo_out"), help="a finished demo run (work dir)")
    parser.add_argument("--tasks", default="baby_memory,baby_leftright,baby_localize")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per variant and round")
    args = parser.parse_args()
    tasks_dir, checkpoint = args.run / "tasks" / "saycam", args.run / "checkpoint"
    if not (tasks_dir / "devcv_instructions_train.json").is_file() or not checkpoint.is_dir():
        sys.exit(f"{args.run}: no finished demo run there (needs tasks/saycam/devcv_instructions_train.json and "
                 f"checkpoint/); run `make demo` first or pass --run")
    model = BabyLLaVA.from_pretrained(checkpoint)
    model.use_template("baby_v1_qfirst")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    print(f"{args.run}: torch {torch.__version__}, {torch.get_num_threads()} threads, batch 16, "
          f"{model.encoder.image_size}-px pictures, {args.rounds} rounds")
    print("| task | train items | pictures per item | collate epoch s, no cache | 1st epoch, cache | "
          "2nd epoch, cache | speed-up (2nd) | train step s, no cache | warm cache | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for task in args.tasks.split(","):
        samples = load_samples(tasks_dir, task)
        vit_encoder.RESIZED_CACHE.limit_bytes = 0
        plain = model.prepare_batch(samples[:4])
        vit_encoder.RESIZED_CACHE.limit_bytes = 256 * 2**20
        model.prepare_batch(samples[:4])
        if not torch.equal(model.prepare_batch(samples[:4])["pixel_values"], plain["pixel_values"]):
            sys.exit(f"{task}: the cached pictures differ from decoded ones")
        off, first, second, step_off, step_on = [], [], [], [], []
        for _ in range(args.rounds):
            off.append(collate_epoch(model, samples, cached=False))
            first.append(collate_epoch(model, samples, cached=True))
            started = time.perf_counter()
            for chunk in batches(samples, 16, 0):  # the same epoch again, cache warm
                model.prepare_batch(chunk)
            second.append(time.perf_counter() - started)
            step_off.append(step_seconds(model, optimizer, samples, False, args.steps))
            step_on.append(step_seconds(model, optimizer, samples, True, args.steps))
        med = statistics.median
        pictures = statistics.mean(len(s["images"]) for s in samples)
        print(f"| {task} | {len(samples)} | {pictures:.1f} | {med(off):.2f} | {med(first):.2f} | {med(second):.2f} | "
              f"{med(off) / med(second):.1f}x | {med(step_off):.3f} | {med(step_on):.3f} | "
              f"{med(step_off) / med(step_on):.2f}x |")


if __name__ == "__main__":
    main()
