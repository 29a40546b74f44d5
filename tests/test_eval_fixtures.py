"""Helpers for the evaluation-engine tests (no tests here): small fake DevCV-shaped tasks that read
released-format item files, item folders written from generated images, and tiny babyvlm checkpoints.

The fake tasks follow ``babyvlm.core.contracts.Task`` the way the DevCV tasks do: a 4-option letter
task (generate and log-likelihood modes, ties broken by a seeded choice), a two-image x two-phrase task
scored only by likelihood (Looking While Listening's shape) and a multi-round task (Memory's shape).
"""

from __future__ import annotations

import io
import json
import random
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import babyvlm
from babyvlm import registry
from babyvlm.core.hookspecs import hookimpl
from babyvlm.core.io import load_json, path_inside
from babyvlm.core.records import Prediction, Request, TaskItem

LETTERS = "ABCD"
CORPUS = ["look at the ball", "the doggy is running", "where is your cup", "a big red truck",
          "A B C D", "which image", "see ball", "touch cup", "new image"] * 4


def jpeg(colour: Sequence[int], size: int = 32, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(colour)[None, None, :] + rng.integers(-20, 20, (size, size, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def ensure_evaluation_plugin() -> None:
    """Register the evaluation plugin in-process unless its entry point already loaded it."""
    if "devcv" not in registry.names("evaluator"):
        import babyvlm.plugins.evaluation as evaluation

        registry.register_plugin(evaluation, "evaluation")


# ---- fake tasks -------------------------------------------------------------------------------------
class FakeTask:
    """Shared part: released-format files ``<short>_<split>.json`` + ``images/`` under a domain folder."""

    name = "fake"
    short = "fake"
    primary_metric = "acc"
    metrics: tuple[str, ...] = ("acc",)

    def chance(self) -> float:
        return 0.25

    def load(self, folder, split: str = "test") -> list[TaskItem]:
        path = Path(folder) / f"{self.short}_{split}.json"
        if not path.is_file():
            return []
        items = []
        for row, record in enumerate(load_json(path)):
            paths = record["image"] if isinstance(record["image"], list) else [record["image"]]
            images = [path_inside(folder, p, f"{path} row {row} 'image'").read_bytes() for p in paths]
            items.append(TaskItem(str(record["id"]), self.name, images, record["conversations"],
                                  record.get("answer", record["conversations"][-1]["value"]),
                                  record.get("choices", []), record.get("extras", {})))
        return items

    def build(self, recordings, splits, seed=0, log=print):
        raise NotImplementedError

    def aggregate(self, items, predictions) -> dict[str, float]:
        return {"acc": sum(bool(p.correct) for p in predictions) / max(1, len(predictions))}


class FakeLetters(FakeTask):
    """Which image shows the colour? (A)-(D); generate parses a letter, likelihood takes the lowest loss."""

    name, short = "fake_letters", "letters"

    def requests(self, item: TaskItem, mode: str) -> list[Request]:
        prompt = item.conversations[:1]
        if mode == "loglikelihood":
            return [Request("choice", item.item_id, self.name, item.images, prompt, continuations=list(LETTERS))]
        return [Request("generate", item.item_id, self.name, item.images, prompt, max_new_tokens=4)]

    def score(self, item: TaskItem, responses, mode: str) -> Prediction:
        if mode == "loglikelihood":
            losses = [loss for loss, _ in responses[0]]
            best = min(losses)
            tied = [i for i, loss in enumerate(losses) if loss == best]
            pick = random.Random(f"{item.item_id}").choice(tied)
            parsed = LETTERS[pick]
            return Prediction(item.item_id, self.name, parsed, parsed, parsed == item.answer,
                              scores=dict(zip(LETTERS, losses, strict=True)), extras={"tied": len(tied) > 1})
        match = re.search(r"\b([A-Da-d])\b", responses[0])
        parsed = match.group(1).upper() if match else None
        return Prediction(item.item_id, self.name, responses[0], parsed, parsed == item.answer)


class FakePairs(FakeTask):
    """2 images x 2 phrases, by likelihood only: group = both images prefer their own phrase."""

    name, short = "fake_pairs", "pairs"
    primary_metric = "group_score"
    metrics = ("group_score", "image_score")

    def chance(self) -> float:
        return 1 / 6

    def requests(self, item: TaskItem, mode: str) -> list[Request]:
        return [Request("choice", item.item_id, self.name, [image],
                        [{"from": "human", "value": "<image> what fits?"}], continuations=list(item.choices))
                for image in item.images]

    def score(self, item, responses, mode) -> Prediction:
        losses = [[loss for loss, _ in row] for row in responses]
        image = losses[0][0] < losses[1][0] and losses[1][1] < losses[0][1]
        text = losses[0][0] < losses[0][1] and losses[1][1] < losses[1][0]
        return Prediction(item.item_id, self.name, json.dumps(losses), None, image and text,
                          scores={"image": float(image), "text": float(text)})

    def aggregate(self, items, predictions) -> dict[str, float]:
        n = max(1, len(predictions))
        return {"group_score": sum(bool(p.correct) for p in predictions) / n,
                "image_score": sum(p.scores["image"] for p in predictions) / n}


class FakeRounds(FakeTask):
    """Three rounds, one new image each: answer A/B per round; correct = every round right."""

    name, short = "fake_rounds", "rounds"
    metrics = ("acc", "acc_rounds")

    def chance(self) -> float:
        return 0.125

    def requests(self, item, mode) -> list[Request]:
        rounds = [turn["value"] for turn in item.conversations if turn["from"] == "human"]
        return [Request("multi_round", item.item_id, self.name, item.images, rounds=rounds, max_new_tokens=3)]

    def score(self, item, responses, mode) -> Prediction:
        gold = [turn["value"] for turn in item.conversations if turn["from"] == "gpt"]
        parsed = [(m.group(1).upper() if (m := re.search(r"\b([AB])\b", text, re.I)) else None)
                  for text in responses[0]]
        right = [p == g for p, g in zip(parsed, gold, strict=True)]
        return Prediction(item.item_id, self.name, json.dumps(responses[0]), "".join(p or "-" for p in parsed),
                          all(right), extras={"rounds_right": sum(right)})

    def aggregate(self, items, predictions) -> dict[str, float]:
        n = max(1, len(predictions))
        return {"acc": sum(bool(p.correct) for p in predictions) / n,
                "acc_rounds": sum(p.extras["rounds_right"] for p in predictions) / (3 * n)}


class FakeTaskPlugin:
    @hookimpl
    def register_tasks(self, register):
        register("fake_letters", FakeLetters)
        register("fake_pairs", FakePairs)
        register("fake_rounds", FakeRounds)


def register_fakes() -> None:
    ensure_evaluation_plugin()
    if "fake_letters" not in registry.names("task"):
        registry.register_plugin(FakeTaskPlugin(), "fake_tasks")


# ---- item folders -----------------------------------------------------------------------------------
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def write_domain(folder: Path, n_letters: int = 8, n_pairs: int = 4, n_rounds: int = 3, seed: int = 0) -> Path:
    """A released-format domain folder: letters/pairs/rounds ``*_test.json`` + ``images/``."""
    rng = random.Random(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)

    def image(name: str, colour, noise: int) -> str:
        (images / name).write_bytes(jpeg(colour, seed=noise))
        return f"images/{name}"

    letters = []
    for index in range(n_letters):
        gold = index % 4
        paths = [image(f"l{index}_{k}.jpg", COLOURS[k], index * 10 + k) for k in range(4)]
        letters.append({"id": f"l{index}", "image": paths, "conversations": [
            {"from": "human", "value": "<image><image><image><image> which image is red? (A) (B) (C) (D)"},
            {"from": "gpt", "value": LETTERS[gold]}], "answer": LETTERS[gold]})
        rng.shuffle(paths)
    pairs = [{"id": f"p{index}", "image": [image(f"p{index}_0.jpg", COLOURS[0], index),
                                           image(f"p{index}_1.jpg", COLOURS[1], index + 50)],
              "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "see ball"}],
              "answer": "see ball", "choices": ["see ball", "touch cup"]} for index in range(n_pairs)]
    rounds = []
    for index in range(n_rounds):
        gold = [rng.choice("AB") for _ in range(3)]
        conversations, paths = [], []
        for number in range(3):
            paths += [image(f"r{index}_{number}_{k}.jpg", COLOURS[(number + k) % 4], index * 7 + number) for k in range(2)]
            conversations += [{"from": "human", "value": "Touch the new image. (A) <image> (B) <image>"},
                              {"from": "gpt", "value": gold[number]}]
        rounds.append({"id": f"r{index}", "image": paths, "conversations": conversations, "answer": gold[-1]})
    for name, records in (("letters", letters), ("pairs", pairs), ("rounds", rounds)):
        (folder / f"{name}_test.json").write_text(json.dumps(records, indent=1))
    return folder


# ---- tiny checkpoints -------------------------------------------------------------------------------
def tiny_checkpoint(folder: Path, seed: int = 0, layers: int = 1, template: str = "baby_v1") -> Path:
    """A randomly initialised tiny BabyLLaVA with a small BPE tokenizer, saved (HF LLaVA layout), recording
    ``template`` as its own."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the corpus is far too small for the requested vocab
        tokenizer = babyvlm.build("tokenizer", dict(type="bpe", corpus=CORPUS, vocab_size=300, min_frequency=1))
    tokenizer_dir = tokenizer.save(folder.parent / f"{folder.name}_tokenizer")
    torch.manual_seed(seed)
    spec = dict(type="babyllava", encoder=dict(type="vit", preset="tiny"), connector=dict(type="mlp2x_gelu"),
                language_model=dict(type="llama", preset="tiny", num_hidden_layers=layers),
                tokenizer=dict(type="bpe", path=str(tokenizer_dir)), template=template)
    model = babyvlm.build_model({"model": spec})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.save_pretrained(folder)
    return folder


def hf_processor_for(folder: Path) -> None:
    """Save a LLaVA processor (ViT image processor + the checkpoint's tokenizer) into a babyvlm folder,
    unless the checkpoint already ships one."""
    if (folder / "processor_config.json").is_file() or (folder / "preprocessor_config.json").is_file():
        return
    from transformers import LlavaProcessor, PreTrainedTokenizerFast, ViTImageProcessor

    config = json.loads((folder / "config.json").read_text())
    vision = config["vision_config"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), bos_token="<sos>",
                                        eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    images = ViTImageProcessor(size={"height": vision["image_size"], "width": vision["image_size"]},
                               image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=vision["patch_size"],
                               vision_feature_select_strategy="full", image_token="<image>",
                               num_additional_image_tokens=1)
    processor.save_pretrained(folder)


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def run_cli() -> None:
    """``python tests/test_eval_fixtures.py eval ...``: the real ``babyvlm`` CLI with the fake tasks (and
    the evaluation plugin, until its entry point is installed) registered in-process; torchrun runs it too."""
    register_fakes()
    from babyvlm.cli import main

    main()


if __name__ == "__main__":
    run_cli()
