"""Easy match-to-sample instructions: a curriculum drawn from a task's own train items, for every task whose
items are a query picture and then one option picture per letter (Left/Right, Spatial Details).

An easy item keeps one train item's question, query picture and gold option, and fills the other letters with
option pictures of *other* train items, in a random order (the answer letter follows the gold picture). So the
gold is the only option from the query's own item: picking it needs the query compared with the options, as the
real item does, but the distractors differ from the query in everything, not in one detail. Why: the tiny VLM
trained on a match-to-sample task's own items sits on its answer-prior plateau; trained on this easy version
too (with picture-slot tags, ``image_slots``) it leaves the plateau on Spatial Details and answers the real task
above its blind twin (README, "An easy version of the task first" and "The easy curriculum through the
platform", val only); on Left/Right it has not.

One rule for every task: a task gets easy items only when every one of its train records has that shape (one
human turn that opens with ``<image>`` and holds one more ``<image>`` per option letter ``(A)``, ``(B)``...,
as many pictures as markers, a one-letter answer among the options); every other task gets none, and the
log says so. Easy items are made from the records of the split they are written for (``train`` for training,
the default), so a training file holds nothing of the val or test recordings.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from babyvlm.core.errors import DataError

IMAGE = "<image>"
OPTION = re.compile(r"\(([A-Z])\)")


def option_letters(record: dict[str, Any]) -> list[str] | None:
    """The record's option letters when it is a match-to-sample item (see the module docstring), else None."""
    turns = record.get("conversations") or []
    images = record.get("image")
    if len(turns) != 2 or not isinstance(images, list):
        return None
    question, answer = str(turns[0].get("value", "")), str(turns[1].get("value", "")).strip()
    letters = OPTION.findall(question)
    if not question.startswith(IMAGE) or len(letters) < 2 or len(set(letters)) != len(letters):
        return None
    if question.count(IMAGE) != len(letters) + 1 or len(images) != len(letters) + 1 or answer not in letters:
        return None
    return letters


def is_match_to_sample(records: Sequence[dict[str, Any]]) -> bool:
    """Every record a match-to-sample item with the same letters (so any option picture fits any slot)."""
    shapes = {tuple(option_letters(r) or ()) for r in records}
    return bool(records) and len(shapes) == 1 and () not in shapes


def easy_records(records: Sequence[dict[str, Any]], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` easy items from ``records`` (all match-to-sample, at least as many records as letters)."""
    letters = option_letters(records[0]) or []
    if len(records) < len(letters):
        raise DataError(f"easy_match: {records[0].get('task')}: {len(records)} items, but an easy item needs "
                        f"{len(letters)} (one per option letter: the gold and one picture from each other item)")
    easy = []
    for number in range(count):
        item = records[rng.randrange(len(records))]
        query = item["image"][0]
        gold = item["image"][1 + letters.index(item["conversations"][1]["value"].strip())]
        options = [gold] + distractors(records, item, {query, gold}, len(letters) - 1, rng)
        order = list(range(len(letters)))
        rng.shuffle(order)  # slot j shows option order[j]; option 0 is the gold
        easy.append({"id": f"{item['id']}_easy{number}", "image": [query] + [options[i] for i in order],
                     "conversations": [dict(item["conversations"][0]),
                                       dict(item["conversations"][1], value=letters[order.index(0)])],
                     "task": item["task"]})
    return easy


def distractors(records: Sequence[dict[str, Any]], item: dict[str, Any], taken: set[str], count: int,
                rng: random.Random) -> list[str]:
    """``count`` option pictures, each from a different record than ``item`` and none a picture already in the
    easy item (``taken``: a picture two items share would otherwise be a second gold)."""
    others = [r for r in records if r is not item]
    first = rng.sample(others, count)
    picked = [other["image"][1 + rng.randrange(len(other["image"]) - 1)] for other in first]
    if len(set(picked)) == count and not set(picked) & taken:  # DevCV draws every picture afresh: always here
        return picked
    picked = []
    rng.shuffle(others)
    for other in others:
        candidates = [path for path in other["image"][1:] if path not in taken]
        if candidates:
            picked.append(rng.choice(candidates))
            taken = taken | {picked[-1]}
        if len(picked) == count:
            return picked
    raise DataError(f"easy_match: {item.get('task')}: item {item.get('id')!r}: fewer than {count} other items "
                    f"have an option picture it does not already show")


def add_easy_items(chosen: dict[str, list[dict[str, Any]]], count: int, seed: int,
                   log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """``chosen`` (task short name -> its train records) with ``count`` easy items appended to every
    match-to-sample task's records; other tasks unchanged. Seeded per task, so adding a task changes no other."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise DataError(f"easy_match must be an integer >= 0 (easy items per match-to-sample task), got {count!r}")
    if not count:
        return chosen
    out, skipped = {}, []
    for short, records in chosen.items():
        if is_match_to_sample(records):
            out[short] = records + easy_records(records, count, random.Random(f"easy-match:{seed}:{short}"))
            log(f"instructions: {short}: {count} easy match-to-sample items added to its {len(records)}")
        else:
            out[short] = records
            skipped.append(short)
    if skipped:
        log(f"instructions: no easy items for {', '.join(skipped)} (not a query picture then one picture per letter)")
    return out
