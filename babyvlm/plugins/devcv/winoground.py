"""``baby_winoground`` — Looking While Listening: 2 images x 2 two-word phrases ("see ball" / "touch cup"),
always scored by log-likelihood, in-domain test only (held out of instruction tuning).

Each instance pairs a positive frame (showing the positive phrase's object) with a negative image (showing
the negative phrase's object, not the positive one); phrase p belongs to image p. For the 2x2 pairs the
adapter returns the mean token loss ``L[i][p]`` of phrase p after image i:
image_score = L00 < L10 and L11 < L01; text_score = L00 < L01 and L11 < L10; group = both (chance 1/6).
Strict comparisons: a tie counts as wrong (recorded in ``extras["tied"]``). Files: the released
``baby_winoground.csv`` (``instance_id, positive_phrase, negative_phrase, image, image_tag``, two rows per
instance, positive first) + ``images/``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.records import Prediction, Request, TaskItem
from babyvlm.plugins.devcv import itemio
from babyvlm.plugins.devcv.base import DevCVTask, Draft, _check_count, pick_lowest

VERBS = ("see", "touch", "get", "hold", "find", "want")
PAIRS = ((0, 0), (0, 1), (1, 0), (1, 1))


class LookingWhileListening(DevCVTask):
    name, short = "baby_winoground", "winoground"
    leaderboard_position, published_chance = 2, 1 / 6  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    primary_metric = "group_score"
    metrics = ("group_score", "image_score", "text_score")
    inputs, answer_text = "2 images x 2 two-word phrases", "which phrase fits which image (log-likelihood)"
    domains = ("saycam",)
    builds_splits = ("test",)
    held_out = True

    def default_chance(self) -> float:
        return 1.0 / 6.0

    def chance(self, items: Sequence[TaskItem] | None = None) -> float:
        return self.default_chance()

    def answer_space(self, item: TaskItem) -> list[str]:
        return ["phrase0", "phrase1"]

    # ---- building -----------------------------------------------------------------------------------
    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        frames = [(recording, frame) for recording, frame in material.keyframes()
                  if any(material.whole(frame, box) for box in frame.boxes)]
        drafts, attempts = [], 0
        while len(drafts) < self.max_items and len(frames) >= 2 and attempts < self.max_items * 20:
            attempts += 1
            (rec_p, pos), (rec_n, neg) = rng.sample(frames, 2)
            word_p = rng.choice(sorted(b.category for b in pos.boxes if material.whole(pos, b)))
            word_n = rng.choice(sorted(b.category for b in neg.boxes if material.whole(neg, b)))
            if word_p == word_n or neg.count(word_p) or pos.count(word_n):
                continue
            verb_p, verb_n = rng.sample(VERBS, 2)
            phrases = [f"{verb_p} {word_p}", f"{verb_n} {word_n}"]
            drafts.append(Draft(images=[rec_p.image(pos), rec_n.image(neg)],
                                turns=[("<image>", phrases[0]), ("<image>", phrases[1])],
                                extras={"phrases": phrases}))
        return drafts

    # ---- files --------------------------------------------------------------------------------------
    def item_path(self, folder: str | os.PathLike, split: str) -> Path:
        name = itemio.WINOGROUND_FILE if split == "test" else f"baby_winoground_{split}.csv"
        return Path(folder) / name

    def save(self, folder: str | os.PathLike, split: str, items: Sequence[TaskItem]) -> Path:
        rows, images = [], []
        for item in items:
            positive, negative = item.extras["phrases"]
            for tag, image in zip(("positive", "negative"), item.images, strict=True):
                rows.append({"instance_id": item.item_id, "positive_phrase": positive, "negative_phrase": negative,
                             "image_tag": tag})
                images.append(image)
        return itemio.write_winoground(folder, rows, images, name=self.item_path(folder, split).name)

    def load(self, folder: str | os.PathLike, split: str = "test") -> list[TaskItem]:
        folder = Path(folder)
        path = self.item_path(folder, split)
        instances: dict[str, dict[str, dict[str, str]]] = {}
        for number, row in enumerate(itemio.read_winoground(path), start=2):
            tag = (row.get("image_tag") or "").strip().lower()
            if tag not in ("positive", "negative"):
                raise DataError(f"{path}:{number}: image_tag must be 'positive' or 'negative', got {tag!r}")
            instances.setdefault(row["instance_id"], {})[tag] = row
        items = []
        for instance_id, rows in instances.items():
            where = f"{path}: instance {instance_id!r}"
            if set(rows) != {"positive", "negative"}:
                raise DataError(f"{where}: needs one positive and one negative image row, has {sorted(rows)}")
            phrases = [rows["positive"]["positive_phrase"].strip(), rows["positive"]["negative_phrase"].strip()]
            images = [itemio.read_image(folder, rows[tag]["image"], where) for tag in ("positive", "negative")]
            conversations = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": phrases[0]},
                             {"from": "human", "value": "<image>"}, {"from": "gpt", "value": phrases[1]}]
            items.append(TaskItem(instance_id, self.name, images, conversations, answer=" | ".join(phrases),
                                  extras={"phrases": phrases}))
        return items

    def finish(self, draft: Draft, item_id: str) -> TaskItem:
        item = super().finish(draft, item_id)
        item.answer = " | ".join(draft.extras["phrases"])
        return item

    # ---- requests and scoring -------------------------------------------------------------------------
    def requests(self, item: TaskItem, mode: str) -> list[Request]:
        """Always log-likelihood: per image, both phrases after it."""
        return [Request(kind="choice", item_id=f"{item.item_id}#image{i}", task=self.name, images=[image],
                        conversations=[{"from": "human", "value": "<image>"}],
                        continuations=list(item.extras["phrases"]))
                for i, image in enumerate(item.images)]

    def score(self, item: TaskItem, responses: Sequence[Any], mode: str) -> Prediction:
        _check_count(item, responses, 2)
        losses = [pick_lowest(item, item.extras["phrases"], scored)[1] for scored in responses]
        phrases = item.extras["phrases"]
        table = [[losses[i][phrases[p]] for p in (0, 1)] for i in (0, 1)]
        image_ok = table[0][0] < table[1][0] and table[1][1] < table[0][1]
        text_ok = table[0][0] < table[0][1] and table[1][1] < table[1][0]
        tied = [f"image{i}|phrase{p}~image{j}|phrase{q}" for (i, p) in PAIRS for (j, q) in PAIRS
                if (i, p) < (j, q) and (i == j or p == q) and table[i][p] == table[j][q]]
        scores = {f"image{i}|phrase{p}": table[i][p] for i, p in PAIRS}
        extras = {"image_score": image_ok, "text_score": text_ok, "group_score": image_ok and text_ok, "tied": tied}
        verdict = "group" if image_ok and text_ok else "image" if image_ok else "text" if text_ok else "none"
        return Prediction(item.item_id, self.name, verdict, verdict, correct=image_ok and text_ok,
                          scores=scores, extras=extras)

    def aggregate(self, items: Sequence[TaskItem], predictions: Sequence[Prediction]) -> dict[str, float]:
        by_id = {prediction.item_id: prediction for prediction in predictions}
        found = [by_id.get(item.item_id) for item in items]
        return {metric: (sum(bool(p and p.extras.get(metric)) for p in found) / len(found) if found else 0.0)
                for metric in self.metrics}

    def respond_with(self, item: TaskItem, mode: str, answer: Any) -> list[Any]:
        """``"oracle"``: phrase p fits image p best; ``"phrase0"``/``"phrase1"``: always that phrase."""
        def loss(i: int, p: int) -> float:
            preferred = i if answer == "oracle" else int(str(answer)[-1])
            return 0.5 if p == preferred else 2.0
        return [[(loss(i, p), False) for p in (0, 1)] for i in (0, 1)]

    def decisions(self, item: TaskItem) -> list:
        """None a probe can answer: the entry is scored by comparing phrase likelihoods across images."""
        return []

    def oracle_answer(self, item: TaskItem) -> Any:
        return "oracle"
