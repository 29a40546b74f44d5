"""Phase-3 recipe knobs on the VAL split, fast: one DevCV task trained from a finished demo run's phase-2
weights on its train items (the task-specific mode), then scored on its val items by log-likelihood over the
answer space — never on test. A plain PyTorch loop (AdamW, warmup + cosine, clip 1.0, answer-only loss, the
demo's model and template), so a knob that needs no platform change can be measured in seconds.

usage:
  python experiments/phase3_knobs.py RUN TASK STEPS KNOBS SEED [--blank] [--tasks-dir DIR] [--out FILE]
                                     [--val-limit N] [--encoder WEIGHTS]

RUN: a demo work dir (``babyvlm run demo`` or a ``babyvlm sweep`` point) with ``checkpoint/`` and
``phases/2-joint/weights.safetensors``; TASK: a task's short name (``localize``, ``compare_synthetic``...);
KNOBS: comma-separated, ``base`` for none:
- optimisation: ``lr<x>`` (base learning rate, default 2e-3), ``bs32`` (batch 32, default 16), ``enc10`` /
  ``conn10`` (10x learning rate for the encoder / connector), ``freezelm`` (train encoder + connector only),
  ``freezeenc`` (the encoder does not train, batch-norm statistics included); ``cachefeat`` (with
  ``freezeenc``: every picture encoded once before training, so a step costs the connector and the LM only);
- starting points: ``freshvis`` (encoder and connector re-initialised, the LM kept; with ``cachefeat`` the
  random encoder's batch-norm statistics are those of the train pictures), ``freshlm`` (the LM's
  layers re-initialised, its embeddings kept), ``lm<N>`` (a fresh LM of N layers, embeddings kept),
  ``mimqk`` (mimetic attention: query and key projections re-set so that attention starts as a similarity),
  ``--encoder PATH`` (encoder weights from elsewhere, e.g. ``supervised_ceiling.py --save-encoder``);
- picture tokens: ``lnconn`` (the connector's output layer-normed to the text embeddings' scale), ``pic`` /
  ``pic1`` (one more token per picture, an MLP on its whole flattened grid, in front of the per-cell tokens /
  instead of them), ``slot`` (a learned embedding per picture slot added to its tokens; any picture counts),
  ``center`` (the mean picture token of the train pictures subtracted from the connector's output) /
  ``bnconn`` (a batch norm over the connector's output tokens);
- data: ``v1`` (the ``baby_v1`` template: images where the prompt has them, not question first), ``perm``
  (each drawn train item's option pictures in a fresh random order, the answer letter following its
  picture), ``train<N>`` (train on N of the train items, one fixed subset for every seed: with a
  ``--tasks-dir`` built with a larger ``--max-items``, the train-set size alone varies).
``--val-limit``: score the first N val items. ``--also TASKS``: after training, score other tasks' val items
(and their easy versions, for match-to-sample tasks) with this run's model — does a skill carry across tasks?
``--blank``: every image one constant grey picture (the blind twin's view). One JSON line per run is printed and appended to ``--out``. The README's "The recipe, and what was tried" quotes its rows.
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


def options_are_pictures(space: list[str], pictures: int) -> bool:
    """An item's options are its pictures when its answer space is k letters and it has k pictures, or k + 1
    with a query picture first (Picture Vocabulary, Who Has More, Left/Right, Spatial Details)."""
    letters = all(len(answer) == 1 and answer.isalpha() for answer in space)
    return letters and pictures in (len(space), len(space) + 1)


def permute_options(item: dict, rng: random.Random) -> dict:
    """The item with its option pictures (the last k, in letter order: ``options_are_pictures``) in a random
    order and the answer letter moved with its picture; other items are returned as they are."""
    space, images = item["space"], item["images"]
    k = len(space)
    if not options_are_pictures(space, len(images)):
        return item
    order = list(range(k))
    rng.shuffle(order)  # new slot j shows old option order[j]
    head = images[: len(images) - k]
    options = images[len(images) - k:]
    answer = space[order.index(space.index(item["answer"]))]
    return dict(item, images=head + [options[i] for i in order], answer=answer)


def is_match_to_sample(item: dict) -> bool:
    """A query picture first, then one option picture per letter (Left/Right, Spatial Details)."""
    return options_are_pictures(item["space"], len(item["images"])) and len(item["images"]) == len(item["space"]) + 1


def easy_item(items: list[dict], rng: random.Random) -> dict:
    """An easy match-to-sample item from ``items`` (query picture first, then one option picture per letter):
    one item's query and its gold option, beside option pictures of other items, in a random order. The
    question is the item's own; cached ``features`` (one row per picture) follow their pictures."""
    item = rng.choice(items)
    space, k = item["space"], len(item["space"])
    gold = 1 + space.index(item["answer"])
    picks = [(item, 0), (item, gold)]
    for other in rng.sample([x for x in items if x is not item], k - 1):
        picks.append((other, 1 + rng.randrange(k)))
    order = list(range(k))
    rng.shuffle(order)  # slot j shows option order[j]; option 0 is the gold
    chosen = [picks[0]] + [picks[1 + i] for i in order]
    easy = dict(item, images=[x["images"][j] for x, j in chosen], answer=space[order.index(0)])
    if "features" in item:
        easy["features"] = torch.stack([x["features"][j] for x, j in chosen])
    return easy


def query_last(item: dict) -> dict:
    """A match-to-sample item with its query picture (the leading ``<image>``) moved after the rest of the
    question, marker and picture together, so every ``<image>`` still takes its own picture."""
    question = item["question"]
    if not question.startswith("<image>") or "<image>" not in question[len("<image>"):]:
        raise SystemExit(f"qlast: not a query picture before option pictures: {question!r}")
    moved = dict(item, question=question[len("<image>"):].strip() + " <image>",
                 images=item["images"][1:] + item["images"][:1])
    if "features" in item:
        moved["features"] = torch.cat([item["features"][1:], item["features"][:1]])
    return moved


def mimetic_query_key(language_model: torch.nn.Module, noise: float = 0.1) -> None:
    """Every layer's query and key projections set so that ``q . k`` starts as a similarity of the two
    positions' (normed) states in a random head-sized subspace: each KV group's key projection is a random
    Gaussian map, and its query heads copy it (plus a little noise). The rest of the LM is untouched."""
    config = language_model.config
    width, heads, groups = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    head = width // heads
    with torch.no_grad():
        for layer in language_model.model.layers:
            attention = layer.self_attn
            keys = torch.randn(groups, head, width) / math.sqrt(width)
            queries = keys.repeat_interleave(heads // groups, dim=0)
            queries = queries + noise * torch.randn_like(queries) / math.sqrt(width)
            attention.k_proj.weight.copy_(keys.reshape(groups * head, width))
            attention.q_proj.weight.copy_(queries.reshape(heads * head, width))


def add_slot_embeddings(model: BabyLLaVA, counts: set[int]) -> None:
    """Tag every picture's tokens with its slot in the sample (values carry no position under RoPE, so the
    answer cannot otherwise tell which picture an attended feature came from); the embeddings train with the
    connector. ``batch`` sets ``model.slot_positions`` (each picture's slot, sample by sample) before each
    forward. (The platform's own version of this is ``BabyLLaVA(image_slots=K)``; this one draws its table
    after the checkpoint is loaded, as the README's rows did.)"""
    width = model.connector.out_features
    model.connector.slots = torch.nn.Parameter(torch.randn(max(counts), width))

    def slots_on(encode_features):
        def tagged(pixels_or_features: torch.Tensor) -> torch.Tensor:
            out = encode_features(pixels_or_features)
            return out + model.connector.slots[model.slot_positions].unsqueeze(1)
        return tagged

    model.encode_images = slots_on(model.encode_images)
    model.encode_images.slots_on = slots_on  # ``cachefeat`` re-applies the tags over its cached features


def center_picture_tokens(model: BabyLLaVA, items: list[dict], blank: bool, running: bool = False) -> None:
    """The connector's output with the mean picture token removed. Different pictures' tokens of the same
    cell sit at cosine ~0.93 after phase 2 (one shared direction dominates), so attention can hardly tell a
    picture from another by content; centred, the cosine is ~0. ``running`` (``bnconn``): a batch norm over
    the tokens (running statistics, learned scale and shift) instead of one fixed mean from ``items``'
    pictures (``center``)."""
    connector = model.connector
    project = connector.forward
    if running:
        connector.token_norm = torch.nn.BatchNorm1d(connector.out_features)
        connector.forward = lambda features: connector.token_norm(project(features).transpose(1, 2)).transpose(1, 2)
        return
    model.eval()
    with torch.no_grad():
        total, count = 0.0, 0
        for start in range(0, len(items), 32):
            pixels = model._pixels([x["images"] for x in items[start:start + 32]])["pixel_values"]
            tokens = project(model.encoder(torch.zeros_like(pixels) if blank else pixels))
            total, count = total + tokens.sum((0, 1)), count + tokens.shape[0] * tokens.shape[1]
    connector.register_buffer("token_mean", total / count)
    connector.forward = lambda features: project(features) - connector.token_mean


class PictureCode(torch.nn.Module):
    """The connector plus one token per picture from its whole flattened grid (``keep``: in front of the
    per-cell tokens; otherwise the picture is that one token)."""

    def __init__(self, base: torch.nn.Module, tokens: int, width_in: int, width_out: int, keep: bool):
        super().__init__()
        self.base, self.keep = base, keep
        self.code = torch.nn.Sequential(torch.nn.Linear(tokens * width_in, width_out), torch.nn.GELU(),
                                        torch.nn.Linear(width_out, width_out))
        self.out_features = width_out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        code = self.code(features.flatten(1)).unsqueeze(1)
        return torch.cat([code, self.base(features)], dim=1) if self.keep else code

    def output_tokens(self, input_tokens: int) -> int:
        return int(input_tokens) + 1 if self.keep else 1


def calibrate_batch_norm(model: BabyLLaVA, items: list[dict]) -> None:
    """Batch-norm running statistics of the encoder as the cumulative average over ``items``' pictures (a frozen
    random encoder otherwise normalises with the reset statistics, mean 0 and variance 1)."""
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average
    model.encoder.train()
    with torch.no_grad():
        for start in range(0, len(items), 32):
            model.encoder(model._pixels([x["images"] for x in items[start:start + 32]])["pixel_values"])
    model.encoder.eval()


def build_model(run: Path, knobs: set[str], encoder: Path | None = None) -> BabyLLaVA:
    model = BabyLLaVA.from_pretrained(run / "checkpoint")
    model.load_state_dict(load_file(str(run / "phases" / "2-joint" / "weights.safetensors")), strict=False)
    model.use_template("baby_v1" if "v1" in knobs else "baby_v1_qfirst")
    if "freshvis" in knobs:  # encoder and connector from a fresh random init: does phase 0-2 help or hurt here?
        for module in [*model.encoder.modules(), *model.connector.modules()]:
            if hasattr(module, "reset_parameters") and module is not model.encoder and module is not model.connector:
                module.reset_parameters()
    if encoder is not None:  # e.g. supervised_ceiling.py --save-encoder: features known to carry the task
        model.encoder.load_state_dict(load_file(str(encoder)))
    if "freshlm" in knobs:  # the LM's layers from a fresh random init (its word embeddings kept)
        for layer in model.language_model.model.layers:
            for module in layer.modules():
                if isinstance(module, torch.nn.Linear):
                    module.reset_parameters()
                elif hasattr(module, "weight") and module.weight.ndim == 1:  # RMSNorm
                    torch.nn.init.ones_(module.weight)
    depth = next((int(k[2:]) for k in knobs if re.fullmatch(r"lm\d+", k)), None)
    if depth is not None:  # a fresh LM of this many layers (the word embeddings, final norm and head kept)
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer

        config = model.language_model.config
        config.num_hidden_layers = depth
        model.language_model.model.layers = torch.nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(depth))
        model.language_model.model.layers.apply(model.language_model._init_weights)
    if "mimqk" in knobs:  # mimetic attention (Trockman & Kolter 2023): W_q^T W_k ~ a similarity at the start
        mimetic_query_key(model.language_model)
    if "pic" in knobs or "pic1" in knobs:  # a whole-picture token: an MLP on the flattened grid (the layout kept)
        model.connector = PictureCode(model.connector, int(model.encoder.num_tokens), int(model.encoder.hidden_size),
                                      model.connector.out_features, keep="pic" in knobs)
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
    groups = [] if "freezeenc" in knobs else [
        dict(params=list(model.encoder.parameters()), lr=lr * (10 if "enc10" in knobs else 1))]
    groups += [dict(params=list(model.connector.parameters()), lr=lr * (10 if "conn10" in knobs else 1))]
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
    parser.add_argument("--encoder", type=Path, default=None, help="encoder weights to start from (safetensors)")
    parser.add_argument("--also", default="", help="other tasks whose val items (and easy versions) are scored too")
    args = parser.parse_args()
    knobs = set(args.knobs.split(","))
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tasks = args.tasks_dir or args.run / "tasks" / "saycam"
    train, val = load_items(tasks, args.task, "train"), load_items(tasks, args.task, "val", args.val_limit)
    also = {name: load_items(tasks, name, "val", args.val_limit) for name in filter(None, args.also.split(","))}
    also_items = [item for items in also.values() for item in items]
    subset = next((int(k[5:]) for k in knobs if k.startswith("train")), None)
    if subset is not None:  # one subset for every seed and for the twin: only the size differs between runs
        train = random.Random(f"train-subset:{args.task}").sample(train, min(subset, len(train)))
    model = build_model(args.run, knobs, args.encoder)
    if "center" in knobs or "bnconn" in knobs:
        center_picture_tokens(model, train, args.blank, running="bnconn" in knobs)
    if "slot" in knobs:  # a learned embedding per picture slot (1st, 2nd, ...) added to that picture's tokens
        add_slot_embeddings(model, {len(x["images"]) for x in train + val + also_items})
    opt = optimizer(model, knobs)
    base_lrs = [group["lr"] for group in opt.param_groups]
    batch_size = 32 if "bs32" in knobs else 16
    easy_steps = next((int(k[4:]) for k in knobs if re.fullmatch(r"easy\d+", k)), 0)
    if easy_steps and not all(is_match_to_sample(x) for x in train + val):
        raise SystemExit(f"easy: {args.task} is not a match-to-sample task (a query picture, then one per letter)")
    total_steps = easy_steps + args.steps

    cache_started = time.perf_counter()
    if "cachefeat" in knobs:  # frozen encoder, no augmentation: its output per picture never changes
        if "freezeenc" not in knobs or "perm" in knobs:
            raise SystemExit("cachefeat needs freezeenc, and works without perm")
        if "freshvis" in knobs:  # a random encoder's batch-norm statistics from the train pictures, not 0 / 1
            calibrate_batch_norm(model, train)
        model.encoder.eval()
        with torch.no_grad():
            for item in train + val + also_items:
                pixels = model._pixels([item["images"]])["pixel_values"]
                item["features"] = model.encoder(torch.zeros_like(pixels) if args.blank else pixels)
        def cached(features: torch.Tensor) -> torch.Tensor:  # pixel_values: the cached encoder outputs
            return model.connector(features)  # (a function: a module set as an attribute would not override)
        slotted = getattr(model.encode_images, "slots_on", None)
        model.encode_images = cached if slotted is None else slotted(cached)
        tokenizer, template = model._require_text_side()
    cache_seconds = time.perf_counter() - cache_started

    def batch(items: list[dict], answers: list[str]) -> dict:
        if "qlast" in knobs:
            items = [query_last(x) for x in items]
        if "slot" in knobs:
            model.slot_positions = torch.cat([torch.arange(len(x["images"])) for x in items])
        if "cachefeat" in knobs:
            encoded = [template.encode([{"from": "human", "value": x["question"]}, {"from": "gpt", "value": a}],
                                       tokenizer) for x, a in zip(items, answers, strict=True)]
            prepared = model._pad([e.input_ids for e in encoded], [e.labels for e in encoded])
            prepared["pixel_values"] = torch.cat([x["features"] for x in items])
            prepared["image_counts"] = torch.tensor([len(x["images"]) for x in items])
            return prepared
        samples = [dict(conversations=[{"from": "human", "value": x["question"]}, {"from": "gpt", "value": a}],
                        images=x["images"]) for x, a in zip(items, answers, strict=True)]
        prepared = model.prepare_batch(samples)
        if args.blank:
            prepared["pixel_values"] = torch.zeros_like(prepared["pixel_values"])
        return prepared

    started, losses = time.perf_counter(), []
    model.train()
    if "freezeenc" in knobs:  # frozen means its batch-norm statistics too
        model.encoder.eval().requires_grad_(False)
    for step in range(total_steps):
        warm = min(1.0, (step + 1) / max(1, int(0.05 * total_steps)))
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = base * warm * 0.5 * (1 + math.cos(math.pi * step / total_steps))
        if step < easy_steps:
            chosen = [easy_item(train, random) for _ in range(batch_size)]
        else:
            chosen = random.sample(train, min(batch_size, len(train)))
        if "perm" in knobs:
            chosen = [permute_options(x, random) for x in chosen]
        loss = model(**batch(chosen, [x["answer"] for x in chosen]))["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    train_seconds = time.perf_counter() - started
    model.eval()

    def accuracy(items: list[dict]) -> float:
        correct = 0
        with torch.no_grad():
            for item in items:
                scores = [-model(**batch([item], [answer]))["loss"].item() for answer in item["space"]]
                correct += item["space"][int(np.argmax(scores))] == item["answer"]
        return round(correct / len(items), 4)

    val_acc = accuracy(val)
    extra = {}
    if easy_steps:  # the easy version on val items: did the curriculum's first stage itself learn?
        extra["easy_val_acc"] = accuracy([easy_item(val, random.Random(f"easy-val:{i}")) for i in range(len(val))])
        extra["loss_easy_end"] = round(float(np.mean(losses[max(0, easy_steps - 20):easy_steps])), 3)
    for name, items in also.items():  # transfer: what this run's model answers on another task's val items
        extra[f"also_{name}"] = accuracy(items)
        if all(is_match_to_sample(x) for x in items):
            extra[f"also_{name}_easy"] = accuracy([easy_item(items, random.Random(f"easy-val:{i}"))
                                                   for i in range(len(items))])
    row = dict(task=args.task, steps=args.steps, knobs=sorted(knobs), seed=args.seed, blank=args.blank,
               encoder=str(args.encoder) if args.encoder else None,
               val_acc=val_acc, n=len(val), train_items=len(train), **extra,
               train_s=round(train_seconds, 1), cache_s=round(cache_seconds, 1),
               loss_first=round(float(np.mean(losses[:20])), 3), loss_last=round(float(np.mean(losses[-20:])), 3))
    print(json.dumps(row))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
