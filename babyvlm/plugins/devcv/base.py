"""The shared DevCV task contract (``babyvlm.core.contracts.Task``): building, loading, requests, scoring,
metrics and chance. Task files subclass one of the families here and only say how their items are made.

- ``DevCVTask``: the contract around ``make_drafts`` (a builder's items as RGB arrays + text), item ids,
  JPEG encoding, split handling and the released-file loader; single-answer scoring and ``acc``.
- ``LetterTask``: multiple choice answered with a letter (A-D); options shuffled with balanced gold
  positions (``arrange``).
- ``NumberTask``: a count as a number; the answer space is each item's ``choices``.
- ``DirectionTask``: Visual Delayed Response directions, ``acc_exact`` + ``acc_adjacent``.

Modes: ``"generate"`` asks for text and parses it (``parse``); ``"loglikelihood"`` scores every answer
in the item's answer space as a continuation (``kind="choice"``): the lowest mean token loss wins, a tie
is broken by a random choice seeded from the item id (never the first option) and recorded in
``Prediction.extras["tied"]``; the per-option losses are ``Prediction.scores`` (lower = preferred).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import ConfigError, ModelInputError
from babyvlm.core.records import Prediction, Recording, Request, SkipReport, TaskItem
from babyvlm.plugins.devcv import itemio
from babyvlm.plugins.devcv.options import BalancedPositions, item_rng, place_gold, task_rng
from babyvlm.plugins.devcv.parsing import (
    LETTERS,
    adjacent_directions,
    parse_direction,
    parse_letter,
    parse_number,
)

MODES = ("generate", "loglikelihood")
SPLITS = ("train", "val", "test")


@dataclass
class Draft:
    """One item as a builder makes it: pictures and (human, gpt) turns; the gold answer ends the last."""

    images: list[np.ndarray]
    turns: list[tuple[str, str]]
    extras: dict[str, Any] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)


@dataclass
class Decision:
    """One answer an item asks for, as the shortcut probes (``probes.py``) see it: the question, the images
    it is about, the option images when the options are pictures, and the gold label."""

    key: str  # the item id (with the round for multi-round items)
    labels: list[str]  # the answers allowed, in option order
    gold: str
    text: str  # the human turns, <image> tokens included
    query: list[bytes]
    options: list[bytes] | None = None  # one image per label, when the options are pictures
    position: int = 0  # the round, in multi-round items


class DevCVTask:
    """Base of every DevCV task. Subclasses set the class attributes and implement ``make_drafts``."""

    name: str = ""
    short: str = ""  # file stem: <short>_<split>.json
    primary_metric: str = "acc"
    metrics: tuple[str, ...] = ("acc",)
    inputs: str = ""
    answer_text: str = ""
    domains: tuple[str, ...] = ("saycam", "ego4d")
    # the image_stats probe also sees half-picture luminance differences (``probes.ORIENTATION_NAMES``): set
    # where the answer is a place in the picture but not its orientation, so a flipped frame must not tell it
    probe_orientation: bool = False
    # the metric the shortcut probes are scored on, and its chance, where the primary metric's chance does not
    # hold for a deterministic answerer that knows nothing (Memory); None: the primary metric
    probe_metric: str | None = None
    probe_chance: float = 0.0
    builds_splits: tuple[str, ...] = SPLITS
    held_out: bool = False  # left out of instruction sets by default
    leaderboard_position: int | None = None  # its place among the DevCV leaderboard's scored entries
    published_chance: float | None = None  # the leaderboard's chance for the released answer space
    max_new_tokens: int = 16
    # which images the probes treat as the question's (None: all but the options) and as the options
    query_slots: tuple[int, ...] | None = None
    option_slots: tuple[int, ...] = ()
    multi_round: bool = False  # one answer per round (``respond_with`` takes a list)

    def __init__(self, max_items: int = 200, frame_size: int = 224, crop_size: int = 96,
                 keyframe_sec: float = 1.0, min_box: int = 12, jpeg_quality: int = 90):
        from babyvlm.core.validate import check_number

        where = f"task {self.name!r}"
        for option, value, low in (("max_items", max_items, 1), ("frame_size", frame_size, 32),
                                   ("crop_size", crop_size, 16), ("min_box", min_box, 1)):
            check_number(where, option, value, whole=True, low=low)
        check_number(where, "keyframe_sec", keyframe_sec, low=0, strict=True)
        check_number(where, "jpeg_quality", jpeg_quality, whole=True, low=1, high=100)
        self.max_items, self.frame_size, self.crop_size = max_items, frame_size, crop_size
        self.keyframe_sec, self.min_box, self.jpeg_quality = keyframe_sec, min_box, jpeg_quality
        self.report = SkipReport()

    def options(self) -> dict[str, Any]:
        return dict(max_items=self.max_items, frame_size=self.frame_size, crop_size=self.crop_size,
                    keyframe_sec=self.keyframe_sec, min_box=self.min_box, jpeg_quality=self.jpeg_quality)

    # ---- answer space and chance ------------------------------------------------------------------
    def answer_space(self, item: TaskItem) -> list[str]:
        return list(item.choices)

    def chance_for_items(self, items: Sequence[TaskItem]) -> float:
        """``contracts.ItemChance``: the chance of these items' answer spaces."""
        return self.chance(items)

    def chance(self, items: Sequence[TaskItem] | None = None) -> float:
        """The primary metric's chance level: 1 / |answer space|, averaged over ``items`` when given."""
        if not items:
            return self.default_chance()
        return float(np.mean([1.0 / max(1, len(self.answer_space(item))) for item in items]))

    def default_chance(self) -> float:
        raise NotImplementedError

    # ---- building -----------------------------------------------------------------------------------
    def build(self, recordings: Sequence[Recording], splits: Mapping[str, str], seed: int = 0,
              log=print) -> dict[str, list[TaskItem]]:
        """Items per split from the recordings assigned to it (``splits``: recording id -> split)."""
        from babyvlm.plugins.devcv.frames import SplitMaterial

        self.report = SkipReport()
        grouped: dict[str, list[Recording]] = {}
        for recording in recordings:
            split = splits.get(recording.recording_id)
            if split is None:
                self.report.skip("recording_not_in_splits", recording.recording_id)
            elif split in self.builds_splits:
                grouped.setdefault(split, []).append(recording)
        materials = {split: SplitMaterial(grouped[split], self.report, frame_size=self.frame_size,
                                          crop_size=self.crop_size, keyframe_sec=self.keyframe_sec,
                                          min_box=self.min_box)
                     for split in sorted(grouped, key=_split_order)}
        self.plan(materials)
        built = {}
        for split, material in materials.items():
            drafts = self.make_drafts(material, task_rng(seed, self.name, split), split)[: self.max_items]
            built[split] = [self.finish(draft, f"{self.short}_{split}_{number:05d}")
                            for number, draft in enumerate(drafts)]
            log(f"{self.name} {split}: {len(built[split])} items from {len(material.recordings)} recordings")
            self.__dict__.pop("_jpeg_memo", None)
            self.__dict__.pop("_statistics_memo", None)
            self.__dict__.pop("_typical_memo", None)
        return built

    def plan(self, materials: Mapping[str, Any]) -> None:
        """Called with every split's material before any item is made (e.g. a shared answer space)."""

    def make_drafts(self, material: Any, rng: Any, split: str) -> list[Draft]:
        raise NotImplementedError

    def finish(self, draft: Draft, item_id: str) -> TaskItem:
        from babyvlm.media import encode_jpeg

        conversations = []
        for human, gpt in draft.turns:
            conversations += [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
        images = [self._jpeg(image, encode_jpeg) for image in draft.images]
        tokens = sum(turn["value"].count(IMAGE_TOKEN) for turn in conversations)
        if tokens != len(images):  # a builder bug, not bad data
            raise AssertionError(f"{item_id}: {tokens} <image> tokens for {len(images)} images")
        return TaskItem(item_id=item_id, task=self.name, images=images, conversations=conversations,
                        answer=draft.turns[-1][1], choices=list(draft.choices), extras=dict(draft.extras))

    def jpeg_bytes(self, image: np.ndarray) -> bytes:
        """The bytes ``finish`` writes for ``image`` (encoded once per array object and split)."""
        from babyvlm.media import encode_jpeg

        return self._jpeg(image, encode_jpeg)

    def _jpeg(self, image: np.ndarray, encode) -> bytes:
        """Encoded once per array object for the build (crops are shared between items)."""
        memo = self.__dict__.setdefault("_jpeg_memo", {})
        found = memo.get(id(image))
        if found is None or found[0] is not image:
            found = memo[id(image)] = (image, encode(image, self.jpeg_quality))
        return found[1]

    # ---- files --------------------------------------------------------------------------------------
    def item_path(self, folder: str | os.PathLike, split: str) -> Path:
        return itemio.item_file(folder, self.short, split)

    def save(self, folder: str | os.PathLike, split: str, items: Sequence[TaskItem]) -> Path:
        return itemio.write_items(folder, self.short, split, items)

    def load(self, folder: str | os.PathLike, split: str = "test") -> list[TaskItem]:
        items = itemio.read_items(folder, self.short, split, self.name)
        return [self.adopt(item) for item in items]

    def adopt(self, item: TaskItem) -> TaskItem:
        """Fill in what released files leave implicit (e.g. the options); default: nothing."""
        return item

    # ---- requests and scoring -------------------------------------------------------------------------
    def prompt(self, item: TaskItem) -> list[dict[str, str]]:
        """The conversation without its final (answer) turn."""
        return [dict(turn) for turn in item.conversations[:-1]]

    def continuations(self, item: TaskItem) -> list[str]:
        return self.answer_space(item)

    def requests(self, item: TaskItem, mode: str) -> list[Request]:
        _check_mode(mode)
        common = dict(item_id=item.item_id, task=self.name, images=list(item.images),
                      conversations=self.prompt(item))
        if mode == "loglikelihood":
            return [Request(kind="choice", continuations=self.continuations(item), **common)]
        return [Request(kind="generate", max_new_tokens=self.max_new_tokens, **common)]

    def parse(self, item: TaskItem, text: str) -> str | None:
        raise NotImplementedError

    def score(self, item: TaskItem, responses: Sequence[Any], mode: str) -> Prediction:
        _check_mode(mode)
        _check_count(item, responses, 1)
        if mode == "loglikelihood":
            options = self.continuations(item)
            parsed, scores, tied = pick_lowest(item, options, responses[0])
            prediction = Prediction(item.item_id, self.name, parsed, parsed, scores=scores, extras={"tied": tied})
        else:
            text = responses[0] if isinstance(responses[0], str) else str(responses[0])
            prediction = Prediction(item.item_id, self.name, text, self.parse(item, text))
        prediction.correct = prediction.parsed == item.answer
        return prediction

    def aggregate(self, items: Sequence[TaskItem], predictions: Sequence[Prediction]) -> dict[str, float]:
        """Accuracy over ``items``; an item without a prediction counts as wrong."""
        by_id = {prediction.item_id: prediction for prediction in predictions}
        return {"acc": _mean(bool(by_id.get(item.item_id) and by_id[item.item_id].correct) for item in items)}

    # ---- what the validity checks see ---------------------------------------------------------------
    def decisions(self, item: TaskItem) -> list[Decision]:
        """The answers the item asks for, for the shortcut probes (one for single-answer tasks)."""
        images = list(item.images)
        options = [images[slot] for slot in self.option_slots] if self.option_slots else None
        slots = self.query_slots
        if slots is None:
            slots = tuple(k for k in range(len(images)) if k not in self.option_slots)
        text = " ".join(turn["value"] for turn in self.prompt(item) if turn.get("from") == "human")
        return [Decision(item.item_id, self.answer_space(item), item.answer, text, [images[k] for k in slots],
                         options)]

    def scored_units(self, items: Sequence[TaskItem]) -> int:
        """How many independent right/wrong answers the primary metric averages (the binomial test's n)."""
        return len(items)

    def respond_with(self, item: TaskItem, mode: str, answer: Any) -> list[Any]:
        """The responses a model answering ``answer`` would give (the oracle passes the gold answer)."""
        responses = []
        for request in self.requests(item, mode):
            if request.kind == "choice":
                responses.append([(0.5, True) if option == answer else (2.0, False)
                                  for option in request.continuations])
            else:
                responses.append(str(answer))
        return responses

    def oracle_answer(self, item: TaskItem) -> Any:
        return item.answer

    def constant_answers(self, items: Sequence[TaskItem]) -> list[Any]:
        """Every answer a constant baseline could give (the union of the items' answer spaces)."""
        return sorted({answer for item in items for answer in self.answer_space(item)}, key=_natural)

    def gold_positions(self, items: Sequence[TaskItem]) -> tuple[Counter, list[str]] | None:
        """Gold answer counts and the categories they should be balanced over (``None``: not balanced)."""
        return None

    def answer_distribution(self, items: Sequence[TaskItem]) -> dict[str, int]:
        return dict(sorted(Counter(item.answer for item in items).items(), key=lambda kv: _natural(kv[0])))


class LetterTask(DevCVTask):
    """Multiple choice answered by letter; ``n_options`` options, gold positions balanced."""

    n_options: int = 4

    def default_chance(self) -> float:
        return 1.0 / self.n_options

    def answer_space(self, item: TaskItem) -> list[str]:
        return list(item.choices) or list(LETTERS[: self.n_options])

    def parse(self, item: TaskItem, text: str) -> str | None:
        return parse_letter(text)

    def positions(self, rng) -> BalancedPositions:
        return BalancedPositions(self.n_options, rng)

    def arrange(self, gold: Any, distractors: Sequence[Any], positions: BalancedPositions, rng) -> tuple[list[Any], str]:
        """Options in a seeded order with the gold one at the next balanced position, and its letter."""
        position = positions.next()
        return place_gold(gold, distractors, position, rng), LETTERS[position]

    def gold_positions(self, items: Sequence[TaskItem]) -> tuple[Counter, list[str]] | None:
        letters = list(LETTERS[: self.n_options])
        return Counter(item.answer for item in items), letters


class NumberTask(DevCVTask):
    """A number answer; the answer space is each item's ``choices`` (the counts the task can ask)."""

    default_space: tuple[int, ...] = tuple(range(0, 11))

    def default_chance(self) -> float:
        return 1.0 / len(self.default_space)

    def answer_space(self, item: TaskItem) -> list[str]:
        return list(item.choices) or [str(n) for n in self.default_space]

    def parse(self, item: TaskItem, text: str) -> str | None:
        return parse_number(text)


class DirectionTask(DevCVTask):
    """VDR: a direction word; exact and adjacent accuracy."""

    primary_metric = "acc_exact"
    metrics = ("acc_exact", "acc_adjacent")
    directions: tuple[str, ...] = ()

    def default_chance(self) -> float:
        return 1.0 / len(self.directions)

    def answer_space(self, item: TaskItem) -> list[str]:
        return list(item.choices) or list(self.directions)

    def parse(self, item: TaskItem, text: str) -> str | None:
        return parse_direction(text)

    def score(self, item: TaskItem, responses: Sequence[Any], mode: str) -> Prediction:
        prediction = super().score(item, responses, mode)
        gold = item.answer.strip().lower()
        prediction.correct = prediction.parsed == gold
        prediction.extras["adjacent"] = prediction.parsed in adjacent_directions(gold) if gold in _RING else False
        return prediction

    def aggregate(self, items: Sequence[TaskItem], predictions: Sequence[Prediction]) -> dict[str, float]:
        by_id = {prediction.item_id: prediction for prediction in predictions}
        found = [by_id.get(item.item_id) for item in items]
        return {"acc_exact": _mean(bool(p and p.correct) for p in found),
                "acc_adjacent": _mean(bool(p and p.extras.get("adjacent")) for p in found)}

    def gold_positions(self, items: Sequence[TaskItem]) -> tuple[Counter, list[str]] | None:
        return Counter(item.answer for item in items), list(self.directions)


def pick_lowest(item: TaskItem, options: Sequence[str], scored: Any) -> tuple[str, dict[str, float], list[str]]:
    """The option with the lowest mean token loss; ties broken by a draw seeded from the item id."""
    if not isinstance(scored, list | tuple) or len(scored) != len(options):
        raise ModelInputError(f"{item.task} item {item.item_id!r}: expected {len(options)} (loss, is_greedy) "
                              f"pairs, one per option {list(options)}, got {scored!r:.200}")
    losses = {}
    for option, pair in zip(options, scored, strict=True):
        try:
            losses[option] = float(pair[0])
        except (TypeError, ValueError, IndexError):
            raise ModelInputError(f"{item.task} item {item.item_id!r}: option {option!r}: expected "
                                  f"(loss, is_greedy), got {pair!r:.100}") from None
    best = min(losses.values())
    tied = [option for option in options if losses[option] == best]
    chosen = tied[0] if len(tied) == 1 else item_rng(item.item_id).choice(tied)
    return chosen, losses, tied if len(tied) > 1 else []


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")


def _check_count(item: TaskItem, responses: Sequence[Any], expected: int) -> None:
    if len(responses) != expected:
        raise ModelInputError(f"{item.task} item {item.item_id!r}: expected {expected} response(s), "
                              f"got {len(responses)}")


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else 0.0


def _natural(value: str):
    return (0, int(value), "") if str(value).isdigit() else (1, 0, str(value))


def _split_order(split: str) -> tuple[int, str]:
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split)


_RING = {"top", "top right", "right", "bottom right", "bottom", "bottom left", "left", "top left"}
