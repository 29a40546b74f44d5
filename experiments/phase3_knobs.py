"""Phase-3 recipe knobs on the VAL split, fast: one DevCV task trained from a finished demo run's phase-2
weights on its train items (the task-specific mode), then scored on its val items by log-likelihood over the
answer space — never on test. A plain PyTorch loop (AdamW, warmup + cosine, clip 1.0, answer-only loss, the
demo's model and template), so a knob that needs no platform change can be measured in seconds.

usage:
  python experiments/phase3_knobs.py RUN TASK STEPS KNOBS SEED [--blank] [--tasks-dir DIR] [--out FILE]

RUN: a demo work dir (``babyvlm run demo`` or a ``babyvlm sweep`` point) with ``checkpoint/`` and
``phases/2-joint/weights.safetensors``; TASK: a task's short name (``localize``, ``compare_synthetic``...);
KNOBS: comma-separated, ``base`` for none: ``lnconn`` (layer-norm the connector's output to the text
embeddings' scale), ``freezelm`` (train encoder + connector only), ``enc10`` / ``conn10`` (10x learning rate
for the encoder / connector), ``lr<x>`` (base learning rate, default 2e-3), ``bs32`` (batch 32, default 16),
``freshvis`` (encoder and connector re-initialised at random, the language model kept), ``train<N>`` (train
on N of the train items, one fixed subset for every seed: with a ``--tasks-dir`` built with a larger
``--max-items``, the train-set size alone varies). ``--val-limit``: score the first N val items.
``--blank``: every image one constant grey picture (the blind twin's view). One JSON line per run is
printed and appended to ``--out``. The README's "The recipe, and what was tried" quotes its rows.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from babyvlm.plugins.babyllava.model import BabyLLaVA

DIRECTIONS = ["top", "top right", "right", "bottom right", "bottom", "bottom left", "left", "top left"]


def load_items(tasks: Path, short: str, split: str, limit: int | None = None) -> list[dict]:
    raw = json.loads((tasks / f"{short}_{split}.json").read_text())
    items = []
    for item in (raw if isinstance(raw, list) else raw["items"])[:limit]:  # decode only the images scored
        paths = item["image"] if isinstance(item["image"], list) else [item["image"]]
        question, answer = item["conversations"][0]["value"], item["conversations"][1]["value"]
        if item.get("choices"):
            space = list(item["choices"])
        elif short == "vdr_binary":
            space = ["left", "right"]
        elif short == "vdr_open":
            space = DIRECTIONS
        else:
            space = re.findall(r"\(([A-D])\)", question) or ["A", "B"]
        items.append(dict(question=question, answer=answer, space=space,
                          images=[np.asarray(Image.open(tasks / p).convert("RGB")) for p in paths]))
    return items


def build_model(run: Path, knobs: set[str]) -> BabyLLaVA:
    model = BabyLLaVA.from_pretrained(run / "checkpoint")
    model.load_state_dict(load_file(str(run / "phases" / "2-joint" / "weights.safetensors")), strict=False)
    model.use_template("baby_v1_qfirst")
    if "freshvis" in knobs:  # encoder and connector from a fresh random init: does phase 0-2 help or hurt here?
        for module in [*model.encoder.modules(), *model.connector.modules()]:
            if hasattr(module, "reset_parameters") and module is not model.encoder and module is not model.connector:
                module.reset_parameters()
    if "lnconn" in knobs:  # the image tokens at the text embeddings' scale (they sit ~40x above it)
        connector = model.connector
        target = model.language_model.get_input_embeddings().weight.norm(dim=-1).mean().item()
        norm = torch.nn.LayerNorm(connector.out_features)
        with torch.no_grad():
            norm.weight.fill_(target / math.sqrt(connector.out_features))
        project = connector.forward
        connector.norm = norm
        connector.forward = lambda features: connector.norm(project(features))
    return model


def optimizer(model: BabyLLaVA, knobs: set[str]) -> torch.optim.Optimizer:
    lr = next((float(k[2:]) for k in knobs if k.startswith("lr")), 2e-3)
    groups = [dict(params=list(model.encoder.parameters()), lr=lr * (10 if "enc10" in knobs else 1)),
              dict(params=list(model.connector.parameters()), lr=lr * (10 if "conn10" in knobs else 1))]
    if "freezelm" not in knobs:
        groups.append(dict(params=list(model.language_model.parameters()), lr=lr))
    return torch.optim.AdamW(groups, weight_decay=0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("task")
    parser.add_argument("steps", type=int)
    parser.add_argument("knobs")
    parser.add_argument("seed", type=int)
    parser.add_argument("--blank", action="store_true")
    parser.add_argument("--tasks-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("phase3_knobs.jsonl"))
    parser.add_argument("--val-limit", type=int, default=None)
    args = parser.parse_args()
    knobs = set(args.knobs.split(","))
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tasks = args.tasks_dir or args.run / "tasks" / "saycam"
    train, val = load_items(tasks, args.task, "train"), load_items(tasks, args.task, "val", args.val_limit)
    subset = next((int(k[5:]) for k in knobs if k.startswith("train")), None)
    if subset is not None:  # one subset for every seed and for the twin: only the size differs between runs
        train = random.Random(f"train-subset:{args.task}").sample(train, min(subset, len(train)))
    model = build_model(args.run, knobs)
    opt = optimizer(model, knobs)
    base_lrs = [group["lr"] for group in opt.param_groups]
    batch_size = 32 if "bs32" in knobs else 16

    def batch(items: list[dict], answers: list[str]) -> dict:
        samples = [dict(conversations=[{"from": "human", "value": x["question"]}, {"from": "gpt", "value": a}],
                        images=x["images"]) for x, a in zip(items, answers, strict=True)]
        prepared = model.prepare_batch(samples)
        if args.blank:
            prepared["pixel_values"] = torch.zeros_like(prepared["pixel_values"])
        return prepared

    started, losses = time.perf_counter(), []
    model.train()
    for step in range(args.steps):
        warm = min(1.0, (step + 1) / max(1, int(0.05 * args.steps)))
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = base * warm * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        chosen = random.sample(train, min(batch_size, len(train)))
        loss = model(**batch(chosen, [x["answer"] for x in chosen]))["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    train_seconds = time.perf_counter() - started
    model.eval()
    correct = 0
    with torch.no_grad():
        for item in val:
            scores = [-model(**batch([item], [answer]))["loss"].item() for answer in item["space"]]
            correct += item["space"][int(np.argmax(scores))] == item["answer"]
    row = dict(task=args.task, steps=args.steps, knobs=sorted(knobs), seed=args.seed, blank=args.blank,
               val_acc=round(correct / len(val), 4), n=len(val), train_items=len(train),
               train_s=round(train_seconds, 1),
               loss_first=round(float(np.mean(losses[:20])), 3), loss_last=round(float(np.mean(losses[-20:])), 3))
    print(json.dumps(row))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
