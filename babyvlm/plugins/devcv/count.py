"""``baby_count`` — Object Counting: one frame; "How many {objs} do you see?" answered with a number.

Every (keyframe, category) pair counts the category's boxes in the frame, and every keyframe with
several boxes also asks for all of them ("How many objects do you see?", ``all_objects=True``), since a
single category rarely appears more than once in home video. Items are taken round-robin
over the counts (stopping when one count is left, so a constant answer cannot dominate); the answer space
(each item's ``choices``) is the full count range present in the split's items.
"""

from __future__ import annotations

from babyvlm.plugins.devcv.base import Draft, NumberTask
from babyvlm.plugins.devcv.options import balanced_pick
from babyvlm.plugins.devcv.words import plural

PROMPT = "<image>\nHow many {objs} do you see?"


class ObjectCounting(NumberTask):
    name, short = "baby_count", "count"
    inputs, answer_text = "1 image, an object word", "a number (the count range in the annotations)"
    default_space = tuple(range(0, 12))  # released files without choices: 0-11 (the paper saw 4-11)

    all_objects: bool = True
    ALL = "object"  # the word asked when every annotated box counts

    def _candidates(self, material) -> list[tuple]:
        found = []
        for recording, frame in material.keyframes():
            found += [(recording, frame, category) for category in sorted(frame.categories())]
            if self.all_objects and len(frame.categories()) > 1:
                found.append((recording, frame, self.ALL))
        return found

    def _count(self, frame, category: str) -> int:
        return len(frame.boxes) if category == self.ALL else frame.count(category)

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        chosen = balanced_pick(self._candidates(material), lambda c: self._count(c[1], c[2]), self.max_items, rng)
        counts = [self._count(frame, category) for _, frame, category in chosen]
        space = [str(n) for n in range(min(counts), max(counts) + 1)] if counts else []
        return [Draft(images=[recording.image(frame)], turns=[(PROMPT.format(objs=plural(category)), str(count))],
                      choices=space, extras={"object": category})
                for (recording, frame, category), count in zip(chosen, counts, strict=True)]
