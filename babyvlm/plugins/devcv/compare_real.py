"""``baby_compare_real`` — Who Has More, naturalistic: two frames showing different numbers of one category,
both at least one; "Which image has more {objs}?" answered A/B. ``notes`` records both counts.

Counts come from frames where every object of the category is countable (``SplitMaterial.whole_counts``);
the pair's ratio (fewer / more) is at most ``max_ratio``. Natural frames cannot be drawn to order, so the
pictures' low-level statistics are controlled *by selection*: from many sampled pairs, pairs are chosen in
counterbalanced couples (``options.counterbalanced_pairs``): each pair (more M, fewer F) comes with one
whose frame with more matches F's cheap statistics (file size, luminance mean and spread, mean colour) and
whose frame with fewer matches M's, so any rule on those statistics answers the two oppositely. (Adversarial
filtering, one round, left a probe at 0.60-0.77 on the pictures' own statistics: a scene's colour told its
count.) ``notes.area_congruent`` records whether the frame with more objects also has more object area.
"""

from __future__ import annotations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import counterbalanced_pairs
from babyvlm.plugins.devcv.probes import picture_statistics
from babyvlm.plugins.devcv.words import plural

PROMPT = "Which image has more {objs}? (A) <image> (B) <image>"


class WhoHasMoreReal(LetterTask):
    name, short = "baby_compare_real", "compare_real"
    leaderboard_position, published_chance = 8, 0.5  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "2 frames, an object word", "A/B"
    n_options = 2
    option_slots = (0, 1)
    max_ratio = 0.8
    pairs_per_item = 30  # pairs sampled per wanted item, before balancing

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        by_category: dict[str, list[tuple]] = {}
        for recording, frame, category, count in material.whole_counts():
            by_category.setdefault(category, []).append((recording, frame, count))
        usable = sorted(c for c, frames in by_category.items() if len({f[2] for f in frames}) > 1)
        if not usable:
            return []
        statistics: dict[tuple, np.ndarray] = {}
        candidates, seen = [], set()
        for _ in range(self.pairs_per_item * self.max_items):
            category = rng.choice(usable)
            a, b = rng.sample(by_category[category], 2)
            more, fewer = (a, b) if a[2] > b[2] else (b, a)
            key = (category, more[0].recording_id, more[1].frame_index, fewer[0].recording_id, fewer[1].frame_index)
            if more[2] == fewer[2] or fewer[2] / more[2] > self.max_ratio or key in seen:
                continue
            seen.add(key)
            candidates.append((category, more, fewer,
                               (self._statistics(more, statistics), self._statistics(fewer, statistics))))
        positions, drafts = self.positions(rng), []
        for category, more, fewer, _ in counterbalanced_pairs(candidates, lambda c: c[3], self.max_items, rng):
            options, letter = self.arrange(more, [fewer], positions, rng)
            drafts.append(Draft(images=[recording.image(frame) for recording, frame, _ in options],
                                turns=[(PROMPT.format(objs=plural(category)), letter)],
                                extras={"object": category, **provenance([(r, f) for r, f, _ in options]),
                                        "notes": {"counts": [n for _, _, n in options],
                                                  "area_congruent": self._area(more[1], category)
                                                  > self._area(fewer[1], category)}}))
        return drafts

    @staticmethod
    def _area(frame, category: str) -> float:
        return sum(box.bbox[2] * box.bbox[3] for box in frame.boxes if box.category == category)

    def _statistics(self, entry: tuple, cache: dict[tuple, np.ndarray]) -> np.ndarray:
        recording, frame, _ = entry
        key = (recording.recording_id, frame.frame_index)
        if key not in cache:
            cache[key] = picture_statistics(recording.image(frame), self.jpeg_quality, self.jpeg_bytes)
        return cache[key]
