"""``baby_memory`` — Delayed Memory: 15 rounds, 29 images. Five learning rounds (a new object each -- five
different object tracks -- the previous one repeated beside it), then ten test rounds (each learned object twice, beside a novel one);
every round asks "Touch the new image" and is answered A or B (the first round has one option).

Metrics (leaderboard): ``acc_learning`` on the first ``base_round = (rounds + 1) // 3`` rounds,
``acc_testing_raw`` on the rest, and the primary ``acc_testing_adjusted``: a learned object counts only if
both test rounds showing it (found through ``labels``) are right, divided by ``base_round``.

Released items without ``labels``: when the learned images reappear byte-identical in the test rounds the
labels are derived from image content (``labels_source = "image_content"``); otherwise the adjusted metric
is reported as unavailable (``None``, with the reason in ``acc_testing_adjusted_unavailable``).

Modes: ``generate`` is one ``multi_round`` request (the adapter accumulates its own answers);
``loglikelihood`` is the teacher-forced variant: one ``choice`` request per round whose prefix holds the
earlier rounds with their gold answers, scored over that round's letters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import ModelInputError
from babyvlm.core.records import Prediction, Request, TaskItem
from babyvlm.plugins.devcv.base import Decision, DevCVTask, Draft, _check_count, _check_mode, pick_lowest
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import balanced_sequence, place_gold
from babyvlm.plugins.devcv.parsing import LETTERS, parse_letter
from babyvlm.plugins.devcv.probes import picture_statistics

FIRST = "Touch the new image. (A) <image>"
LATER = "Let's try more. Touch the new image. (A) <image> (B) <image>"
ADJUSTED = "acc_testing_adjusted"


class DelayedMemory(DevCVTask):
    name, short = "baby_memory", "memory"
    leaderboard_position, published_chance = 11, 0.25  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    primary_metric = ADJUSTED
    metrics = (ADJUSTED, "acc_learning", "acc_testing_raw")
    inputs, answer_text = "15 rounds, 29 images", "A/B per round"
    learned = 5
    max_new_tokens = 8
    multi_round = True
    # the shortcut probes score per-round test accuracy: on the adjusted score any fixed preference order over
    # pictures gets 1/3 without knowing anything (probes.py says why), per round it gets 1/2
    probe_metric, probe_chance = "acc_testing_raw", 0.5

    def default_chance(self) -> float:
        return 0.25  # both test rounds of a learned object right by guessing: 1/2 * 1/2

    def chance(self, items: Sequence[TaskItem] | None = None) -> float:
        return self.default_chance()

    def answer_space(self, item: TaskItem) -> list[str]:
        return ["A", "B"]

    # ---- building -----------------------------------------------------------------------------------
    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        tracks: dict[tuple, list] = {}
        for instance in material.instances():
            tracks.setdefault((instance.recording.recording_id, instance.box.track_id, instance.box.category),
                              []).append(instance)
        keys = sorted(tracks, key=str)
        if len(keys) <= self.learned:
            material.report.skip("memory_too_few_objects", f"{split}: {len(keys)} object tracks")
            return []
        rounds = 3 * self.learned
        # each round's gold letter is drawn per item from its own balanced column: over the item set every
        # round is A as often as B, and no round's gold says anything about another's
        columns = [balanced_sequence(self.max_items, 2, rng) for _ in range(rounds)]
        drafts = []
        for number in range(self.max_items):
            learned = self._pick_tracks(keys, self.learned, set(), rng, distinct=True)
            novel = None if learned is None else self._pick_tracks(keys, 2 * self.learned, set(learned), rng,
                                                                    distinct=False)
            if novel is None:
                material.report.skip("memory_too_few_novel_images", f"{split}: {len(keys)} object tracks")
                break
            objects = [self._typical(tracks[key], material, rng) for key in learned]
            fresh = [self._typical(tracks[key], material, rng) for key in novel]
            drafts.append(self._draft(material, objects, fresh, [column[number] for column in columns], rng))
        return drafts

    @staticmethod
    def _pick_tracks(keys: list[tuple], count: int, exclude: set, rng, distinct: bool) -> list[tuple] | None:
        """``count`` different tracks outside ``exclude``, their categories drawn uniformly (the learned and
        the novel pictures come from one distribution, so no look tells them apart); ``distinct``: of
        different categories while there are enough (look-alikes make learning ambiguous, not harder)."""
        by_category: dict[str, list[tuple]] = {}
        for key in keys:
            if key not in exclude:
                by_category.setdefault(key[2], []).append(key)
        picked: list[tuple] = []
        for _ in range(count):
            usable = [c for c in sorted(by_category) if set(by_category[c]) - set(picked)
                      and not (distinct and len(by_category) >= count and any(p[2] == c for p in picked))]
            if not usable:
                return None
            category = rng.choice(usable)
            picked.append(rng.choice(sorted(set(by_category[category]) - set(picked), key=str)))
        return picked

    def _draft(self, material, objects, novel, golds: list[int], rng) -> Draft:
        crops = {id(i): material.crop(i) for i in objects + novel}
        names = _labels(objects + novel)
        rounds = [([objects[0]], objects[0])]  # (shown, the new one)
        rounds += [(place_gold(objects[k], [objects[k - 1]], golds[k], rng), objects[k])
                   for k in range(1, self.learned)]
        foils = self._straddling_foils(objects, novel, crops, self._typical_picture(material), rng)
        tests = [objects[k] for k in range(self.learned)] * 2
        rng.shuffle(tests)
        fresh = [foils[id(seen)].pop() for seen in tests]
        rounds += [(place_gold(new, [seen], golds[self.learned + k], rng), new)
                   for k, (seen, new) in enumerate(zip(tests, fresh, strict=True))]
        turns, images, labels = [], [], []
        for number, (shown, new) in enumerate(rounds):
            turns.append((FIRST if number == 0 else LATER, LETTERS[shown.index(new)]))
            images += [crops[id(i)] for i in shown]
            labels.append([names[id(i)] for i in shown])
        return Draft(images=images, turns=turns, extras={"labels": labels, **provenance(objects + novel)})

    def _typical(self, instances: list, material, rng, draws: int = 3) -> Any:
        """Of ``draws`` random frames of a track, the one whose picture statistics lie nearest the split's
        typical picture — for learned and novel pictures alike, so no picture stands out by its look and a
        consistent preference for some look has little to work on."""
        chosen = rng.sample(instances, min(draws, len(instances)))
        if len(chosen) == 1:
            return chosen[0]
        centre, spread = self._typical_picture(material)
        return min(chosen, key=lambda i: float(np.sum(((self._statistics(material.crop(i)) - centre) / spread) ** 2)))

    def _typical_picture(self, material) -> tuple[np.ndarray, np.ndarray]:
        """Median and spread of the statistics of the split's object crops (computed once per split)."""
        found = self.__dict__.get("_typical_memo")
        if found is None or found[0] is not material:
            crops = [self._statistics(material.crop(i)) for i in material.instances()]
            stack = np.stack(crops)
            found = (material, np.median(stack, axis=0), np.maximum(stack.std(axis=0), 1e-6))
            self.__dict__["_typical_memo"] = found
        return found[1], found[2]

    def _statistics(self, crop: np.ndarray) -> np.ndarray:
        memo = self.__dict__.setdefault("_statistics_memo", {})  # crops recur across items: encode each once
        found = memo.get(id(crop))
        if found is None or found[0] is not crop:
            found = memo[id(crop)] = (crop, picture_statistics(crop, self.jpeg_quality, self.jpeg_bytes))
        return found[1]

    def _straddling_foils(self, objects: list, novel: list, crops: dict[int, Any],
                          typical: tuple[np.ndarray, np.ndarray], rng) -> dict[int, list]:
        """Two novel pictures per learned object, lying on opposite sides of the learned picture — first on
        *atypicality* (distance to the split's typical picture), then on as many cheap statistics (file
        size, luminance, colour) and distances of each from typical as can be had; the best such pair of
        the pictures left, drawn at random among equals. A model preferring, say, darker pictures then gets
        one of the object's two test rounds right and one wrong, so the adjusted score (both rounds right)
        does not rise with a consistent preference that involves no memory. Atypicality comes first: with
        the statistics alone straddled the learned picture was the middle one, nearer typical than both
        its foils, and "the odder picture is new" scored 0.34 adjusted (chance 0.25)."""
        centre, spread = typical
        profile = {id(i): self._profile(crops[id(i)], centre, spread) for i in objects + novel}
        left, foils = list(novel), {}
        for seen in objects:
            sides = [np.sign(profile[id(other)] - profile[id(seen)]) for other in left]
            pairs = [(i, j) for i in range(len(left)) for j in range(i + 1, len(left))]
            scores = [(bool(sides[i][0] * sides[j][0] < 0), int(np.sum(sides[i] * sides[j] < 0))) for i, j in pairs]
            best = max(scores)
            i, j = rng.choice([pair for pair, score in zip(pairs, scores, strict=True) if score == best])
            pair = [left[i], left[j]]
            rng.shuffle(pair)
            foils[id(seen)] = pair
            left = [other for k, other in enumerate(left) if k not in (i, j)]
        return foils

    def _profile(self, crop: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """Atypicality, then the statistics, then each one's distance from typical (the signs straddled)."""
        deviation = np.abs((self._statistics(crop) - centre) / spread)
        return np.concatenate([[float(np.sum(deviation ** 2))], self._statistics(crop), deviation])

    # ---- loading ------------------------------------------------------------------------------------
    def adopt(self, item: TaskItem) -> TaskItem:
        if not item.extras.get("labels"):
            labels, reason = content_labels(item, self.learned_rounds(item))
            if labels is None:
                item.extras["labels_unavailable"] = reason
            else:
                item.extras.update(labels=labels, labels_source="image_content")
        return item

    @staticmethod
    def learned_rounds(item: TaskItem) -> int:
        return (len(human_turns(item)) + 1) // 3

    # ---- requests and scoring -------------------------------------------------------------------------
    def requests(self, item: TaskItem, mode: str) -> list[Request]:
        _check_mode(mode)
        humans = human_turns(item)
        if mode == "generate":
            return [Request(kind="multi_round", item_id=item.item_id, task=self.name, images=list(item.images),
                            rounds=humans, max_new_tokens=self.max_new_tokens)]
        requests, used, history = [], 0, []
        for number, (human, gold) in enumerate(zip(humans, gold_letters(item), strict=True)):
            shown = human.count(IMAGE_TOKEN)
            requests.append(Request(kind="choice", item_id=f"{item.item_id}#round{number + 1}", task=self.name,
                                    images=list(item.images[: used + shown]),
                                    conversations=history + [{"from": "human", "value": human}],
                                    continuations=list(LETTERS[: max(1, shown)])))
            history = history + [{"from": "human", "value": human}, {"from": "gpt", "value": gold}]
            used += shown
        return requests

    def score(self, item: TaskItem, responses: Sequence[Any], mode: str) -> Prediction:
        _check_mode(mode)
        gold = gold_letters(item)
        scores: dict[str, float] = {}
        tied: dict[str, list[str]] = {}
        if mode == "generate":
            _check_count(item, responses, 1)
            texts = _round_texts(item, responses[0], len(gold))
            parsed = [parse_letter(text) for text in texts]
        else:
            _check_count(item, responses, len(gold))
            parsed = []
            for request, scored in zip(self.requests(item, mode), responses, strict=True):
                round_item = TaskItem(request.item_id, self.name, [], [], "")
                choice, losses, ties = pick_lowest(round_item, request.continuations, scored)
                parsed.append(choice)
                number = request.item_id.rsplit("#", 1)[1]
                scores.update({f"{number}:{option}": loss for option, loss in losses.items()})
                if ties:
                    tied[number] = ties
            texts = list(parsed)
        correct = [p == g for p, g in zip(parsed, gold, strict=True)]
        extras = {"rounds": parsed, "rounds_correct": correct, "tied": tied}
        adjusted = adjusted_score(item, correct)
        return Prediction(item.item_id, self.name, json.dumps(texts), ",".join(p or "-" for p in parsed),
                          correct=None if adjusted is None else adjusted == 1.0, scores=scores, extras=extras)

    def aggregate(self, items: Sequence[TaskItem], predictions: Sequence[Prediction]) -> dict[str, float]:
        by_id = {prediction.item_id: prediction for prediction in predictions}
        learning, testing, adjusted, missing = [], [], [], []
        for item in items:
            base = self.learned_rounds(item)
            prediction = by_id.get(item.item_id)
            correct = prediction.extras["rounds_correct"] if prediction else [False] * len(gold_letters(item))
            learning.append(_mean(correct[:base]))
            testing.append(_mean(correct[base:]))
            value = adjusted_score(item, correct)
            (missing if value is None else adjusted).append(item if value is None else value)
        result: dict[str, Any] = {"acc_learning": _mean(learning), "acc_testing_raw": _mean(testing)}
        if missing:
            reason = missing[0].extras.get("labels_unavailable", "no labels")
            result[ADJUSTED] = None
            result[f"{ADJUSTED}_unavailable"] = (f"{len(missing)} of {len(items)} items have no usable labels "
                                                 f"(e.g. {missing[0].item_id!r}: {reason})")
        else:
            result[ADJUSTED] = _mean(adjusted)
        return {key: result[key] for key in (ADJUSTED, *[k for k in result if k != ADJUSTED])}

    def respond_with(self, item: TaskItem, mode: str, answer: Any) -> list[Any]:
        """``answer``: one letter per round (a single letter is repeated)."""
        letters = [answer] * len(gold_letters(item)) if isinstance(answer, str) else list(answer)
        if mode == "generate":
            return [letters]
        return [[(0.5, True) if option == letter else (2.0, False) for option in request.continuations]
                for request, letter in zip(self.requests(item, mode), letters, strict=True)]

    def oracle_answer(self, item: TaskItem) -> Any:
        return gold_letters(item)

    def decisions(self, item: TaskItem) -> list[Decision]:
        """One per round: that round's option images, answered A or B."""
        found, used = [], 0
        for number, (human, gold) in enumerate(zip(human_turns(item), gold_letters(item), strict=True)):
            shown = human.count(IMAGE_TOKEN)
            found.append(Decision(f"{item.item_id}#round{number + 1}", list(LETTERS[: max(1, shown)]), gold or "",
                                  human, [], list(item.images[used:used + shown]), position=number))
            used += shown
        return found

    def scored_units(self, items: Sequence[TaskItem]) -> int:
        """The adjusted score counts learned objects: ``base_round`` per item."""
        return sum(self.learned_rounds(item) for item in items)

    def constant_answers(self, items: Sequence[TaskItem]) -> list[Any]:
        return ["A", "B"]

    def gold_positions(self, items: Sequence[TaskItem]):
        from collections import Counter

        counts = Counter(letter for item in items for letter in gold_letters(item)[1:])  # round 1 has one option
        return counts, ["A", "B"]

    def answer_distribution(self, items: Sequence[TaskItem]) -> dict[str, int]:
        counts, _ = self.gold_positions(items)
        return dict(sorted(counts.items()))


def human_turns(item: TaskItem) -> list[str]:
    return [turn["value"] for turn in item.conversations if turn.get("from") == "human"]


def gold_letters(item: TaskItem) -> list[str]:
    """The gold letter of each round: the last token of each gpt turn."""
    letters = []
    for turn in item.conversations:
        if turn.get("from") == "gpt":
            tokens = turn["value"].strip().split()
            letters.append(parse_letter(tokens[-1]) if tokens else None)
    return letters


def adjusted_score(item: TaskItem, correct: Sequence[bool]) -> float | None:
    """Learned objects whose test rounds are all right, over ``base_round``; None without labels."""
    labels = item.extras.get("labels")
    base = (len(correct) + 1) // 3
    if not labels or len(labels) != len(correct):
        return None
    learned = list(dict.fromkeys(label for shown in labels[:base] for label in shown))
    hits = 0
    for label in learned:
        rounds = [r for r in range(base, len(correct)) if label in labels[r]]
        hits += bool(rounds) and all(correct[r] for r in rounds)
    return hits / base


def content_labels(item: TaskItem, base: int) -> tuple[list[list[str]] | None, str]:
    """Per-round labels from image content when learned images reappear byte-identical in the tests."""
    humans, gold = human_turns(item), gold_letters(item)
    counts = [human.count(IMAGE_TOKEN) for human in humans]
    if sum(counts) != len(item.images):
        return None, f"{sum(counts)} <image> tokens for {len(item.images)} images"
    digests = [hashlib.sha256(data).hexdigest()[:16] for data in item.images]
    labels, start = [], 0
    for count in counts:
        labels.append(digests[start:start + count])
        start += count
    learned = []
    for number in range(base):
        index = LETTERS.index(gold[number]) if gold[number] in LETTERS else -1
        if not 0 <= index < len(labels[number]):
            return None, f"round {number + 1}: gold letter {gold[number]!r} names no image"
        learned.append(labels[number][index])
    for digest in learned:
        seen = sum(digest in shown for shown in labels[base:])
        if seen != 2:
            return None, (f"a learned image reappears byte-identical in {seen} test rounds, not 2 "
                          f"(the test images are not the learned files)")
    return labels, ""


def _round_texts(item: TaskItem, response: Any, rounds: int) -> list[str]:
    if isinstance(response, str):  # lmms-eval's generate_until_multi_round returns json.dumps(list)
        try:
            response = json.loads(response)
        except json.JSONDecodeError:
            raise ModelInputError(f"{item.task} item {item.item_id!r}: multi-round response is not a JSON list "
                                  f"of answers: {response!r:.100}") from None
    if not isinstance(response, list | tuple) or len(response) != rounds:
        raise ModelInputError(f"{item.task} item {item.item_id!r}: expected {rounds} round answers, got "
                              f"{response!r:.200}")
    return [str(text) for text in response]


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else 0.0


def _labels(instances) -> dict[int, str]:
    """A label per object: its category, numbered when two objects of one item share it ("cup", "cup 2")."""
    seen: dict[str, int] = {}
    names = {}
    for instance in instances:
        category = instance.box.category
        seen[category] = seen.get(category, 0) + 1
        names[id(instance)] = category if seen[category] == 1 else f"{category} {seen[category]}"
    return names
