"""What a DevCV task's train split can teach at all: the demo's CNN encoder with a plain supervised head,
trained on a task's train items and scored on its VAL items (never test), beside the same head on constant
grey images (its blind twin). A diagnostic for the phase-3 recipe: a task this head learns and the VLM does
not points at the model; one it does not learn either is a weak test of any recipe at this data size (a
head built differently might still learn it).

The head follows the item's shape, the same rule for every task:
- the options are the item's pictures (Picture Vocabulary, Who Has More, Left/Right, Spatial Details: one
  picture per letter, after an optional query picture): every option picture is scored by one shared MLP on
  [question, option, query, option * query] and the highest score answers;
- otherwise (Localization, Counting, Subitizing, the VDRs): the pictures' features, in order, and the
  question go through one MLP to a score per answer of the task's answer space.
Each picture: the encoder's 17 tokens flattened and projected to 128 (the grid keeps where things are);
the question: a GRU over its words.

usage:
  python experiments/supervised_ceiling.py TASKS_DIR TASK STEPS SEED [--blank] [--init RUN] [--out FILE]
      [--joint] [--no-product] [--no-query] [--save-encoder FILE] [--batch-size N] [--lr X]

TASKS_DIR: a task build's domain folder (``<run>/tasks/saycam``). ``--init RUN``: start the encoder from a
demo run's phase-2 weights (default: a random init). ``--blank``: one constant grey picture everywhere.
Ablations: ``--joint`` (the joint head on every task: what the shared option scorer adds), ``--no-product``
(the option scorer without the option * query term), ``--no-query`` (the query picture grey: can the
options alone give the answer away to a learned model?). ``--save-encoder``: the trained encoder, for
``phase3_knobs.py --encoder``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
from phase3_knobs import load_items, options_are_pictures  # the sibling script: items and their answer space
from safetensors.torch import load_file, save_file
from torch import nn

from babyvlm.plugins.cnn_encoder.encoder import CNNEncoder

WIDTH = 128


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+|\([a-d]\)|<image>", text.lower())


class Ceiling(nn.Module):
    def __init__(self, vocab: int, space: int, max_images: int, product: bool = True):
        super().__init__()
        self.encoder = CNNEncoder("tiny")
        self.picture = nn.Sequential(nn.Flatten(1), nn.Linear(self.encoder.num_tokens * self.encoder.hidden_size,
                                                              WIDTH), nn.ReLU())
        self.embed = nn.Embedding(vocab, WIDTH)
        self.gru = nn.GRU(WIDTH, WIDTH, batch_first=True)
        self.option = nn.Sequential(nn.Linear(4 * WIDTH, 2 * WIDTH), nn.ReLU(), nn.Linear(2 * WIDTH, 1))
        self.joint = nn.Sequential(nn.Linear((max_images + 1) * WIDTH, 2 * WIDTH), nn.ReLU(),
                                   nn.Linear(2 * WIDTH, space))
        self.max_images, self.product = max_images, product

    def forward(self, pixels: torch.Tensor, question: torch.Tensor, mode: str, options: int) -> torch.Tensor:
        batch, images = pixels.shape[:2]
        pictures = self.picture(self.encoder(pixels.flatten(0, 1))).view(batch, images, WIDTH)
        _, hidden = self.gru(self.embed(question))
        text = hidden[-1]
        if mode == "joint":
            padded = torch.zeros(batch, self.max_images, WIDTH)
            padded[:, :images] = pictures
            return self.joint(torch.cat([text, padded.flatten(1)], dim=1))
        query = pictures[:, 0] if images > options else torch.zeros_like(pictures[:, 0])
        candidates = pictures[:, images - options:]
        product = candidates * query.unsqueeze(1) if self.product else torch.zeros_like(candidates)
        expanded = [text.unsqueeze(1).expand_as(candidates), candidates, query.unsqueeze(1).expand_as(candidates),
                    product]
        return self.option(torch.cat(expanded, dim=2)).squeeze(2)


def encode(items: list[dict], encoder: CNNEncoder, vocab: dict[str, int], blank: bool, slots: int,
           no_query: bool = False) -> list[dict]:
    grey = None
    encoded = []
    for item in items:
        pixels = torch.stack([encoder.preprocess(image) for image in item["images"]])
        if len(pixels) < slots:  # clips of 5-9 frames: zero frames in front, so the last frame has one slot
            pixels = torch.cat([torch.zeros(slots - len(pixels), *pixels.shape[1:]), pixels])
        if no_query and len(item["images"]) == len(item["space"]) + 1:
            pixels[0] = encoder.preprocess(np.full_like(item["images"][0], 128))
        if blank:
            grey = grey if grey is not None else encoder.preprocess(np.full_like(item["images"][0], 128))
            pixels = grey.unsqueeze(0).expand_as(pixels).clone()
        ids = [vocab.get(w, 1) for w in words(item["question"])] or [1]
        encoded.append(dict(pixels=pixels, ids=torch.tensor(ids), label=item["space"].index(item["answer"])))
    return encoded


def collate(batch: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    longest = max(len(x["ids"]) for x in batch)
    ids = torch.zeros(len(batch), longest, dtype=torch.long)
    for row, x in enumerate(batch):
        ids[row, longest - len(x["ids"]):] = x["ids"]  # left-pad: the GRU ends on the last word
    return torch.stack([x["pixels"] for x in batch]), ids, torch.tensor([x["label"] for x in batch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tasks", type=Path)
    parser.add_argument("task")
    parser.add_argument("steps", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("--blank", action="store_true")
    parser.add_argument("--init", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-product", action="store_true",
                        help="the option scorer without the option * query term (is the comparison built in?)")
    parser.add_argument("--no-query", action="store_true",
                        help="the query picture grey (the options alone: is the answer the odd one out?)")
    parser.add_argument("--joint", action="store_true", help="the joint head on every task (no shared option scorer)")
    parser.add_argument("--out", type=Path, default=Path("supervised_ceiling.jsonl"))
    parser.add_argument("--save-encoder", type=Path, default=None,
                        help="write the trained encoder (safetensors) for phase3_knobs.py --encoder")
    args = parser.parse_args()
    if args.steps < 1:
        raise SystemExit(f"steps must be at least 1, got {args.steps}")
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train_items, val_items = load_items(args.tasks, args.task, "train"), load_items(args.tasks, args.task, "val")
    vocab = {w: i + 2 for i, w in enumerate(sorted({w for x in train_items for w in words(x["question"])}))}
    images = {len(x["images"]) for x in train_items + val_items}
    space = {len(x["space"]) for x in train_items + val_items}
    if len(space) != 1:
        raise SystemExit(f"{args.task}: items differ in answer space {space}")
    (n_space,), n_images = space, max(images)
    options = len(images) == 1 and options_are_pictures(train_items[0]["space"], n_images)
    mode = "options" if options and not args.joint else "joint"
    model = Ceiling(len(vocab) + 2, n_space, n_images, product=not args.no_product)
    if args.init is not None:
        weights = load_file(str(args.init / "phases" / "2-joint" / "weights.safetensors"))
        model.encoder.load_state_dict({k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")})
    train = encode(train_items, model.encoder, vocab, args.blank, n_images, args.no_query)
    val = encode(val_items, model.encoder, vocab, args.blank, n_images, args.no_query)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    started, losses, curve = time.perf_counter(), [], []

    def accuracy(items: list[dict]) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(items), 64):
                pixels, ids, labels = collate(items[start:start + 64])
                correct += int((model(pixels, ids, mode, n_space).argmax(1) == labels).sum())
        model.train()
        return correct / len(items)

    model.train()
    for step in range(args.steps):
        pixels, ids, labels = collate(rng.sample(train, min(args.batch_size, len(train))))
        loss = nn.functional.cross_entropy(model(pixels, ids, mode, n_space), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % max(1, args.steps // 4) == 0:
            curve.append(round(accuracy(val), 4))
    variant = "-noproduct" * args.no_product + "-noquery" * args.no_query
    row = dict(task=args.task, mode=mode + variant, steps=args.steps, seed=args.seed, blank=args.blank,
               init="phase2" if args.init else "random", val_acc=curve[-1], val_curve=curve, n=len(val),
               train_items=len(train), chance=round(1 / n_space, 4), train_acc=round(accuracy(train), 4),
               seconds=round(time.perf_counter() - started, 1), loss_last=round(float(np.mean(losses[-20:])), 3))
    print(json.dumps(row), flush=True)
    if args.save_encoder is not None:
        save_file({k: v.contiguous() for k, v in model.encoder.state_dict().items()}, str(args.save_encoder))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
