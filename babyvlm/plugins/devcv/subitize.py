"""``baby_subitize`` — Subitizing: 1-4 copies of an annotated object on a textured background; "How many
{objs} do you see?" answered with a number.

The objects' total area is drawn independently of the count (log-uniform over ``AREA_RANGE`` of the
canvas), item sizes vary within an image and the field they occupy varies in size; then, from
``CANDIDATES`` times as many rendered images as needed, items are chosen so that the pictures' cheap
statistics (file size, luminance mean and spread, mean colour) predict nothing of the count
(``options.decorrelated_pick``), with the counts balanced over 1-4. Held out of instruction tuning, as in
the paper."""

from __future__ import annotations

import math

from babyvlm.plugins.devcv.base import Draft, NumberTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import BalancedPositions, decorrelated_pick
from babyvlm.plugins.devcv.probes import picture_statistics
from babyvlm.plugins.devcv.rendering import magnitude_scene
from babyvlm.plugins.devcv.words import plural

PROMPT = "<image>\nHow many {objs} do you see?"
AREA_RANGE = (0.04, 0.16)
CANDIDATES = 2


class Subitizing(NumberTask):
    name, short = "baby_subitize", "subitize"
    inputs, answer_text = "1 rendered image, an object word", "1-4"
    default_space = (1, 2, 3, 4)
    held_out = True

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        pools = material.by_category()
        if not pools:
            return []
        counts, candidates = BalancedPositions(len(self.default_space), rng), []
        for _ in range(CANDIDATES * self.max_items):
            category, count = rng.choice(sorted(pools)), self.default_space[counts.next()]
            chosen = rng.sample(pools[category], min(4, len(pools[category])))
            area = math.exp(rng.uniform(*map(math.log, AREA_RANGE)))
            image = magnitude_scene([material.crop(instance) for instance in chosen], count, area, rng)
            if image is None:
                material.report.skip("subitize_no_room", f"{split}: count {count}")
                continue
            candidates.append((category, chosen, count, area, image, picture_statistics(image, self.jpeg_quality, self.jpeg_bytes)))
        # quadratic: a count told by a U-shaped statistic escapes a straight-line fit, and gradient-boosted
        # trees found one out of domain (0.313 vs 0.25 on one task seed)
        picked = decorrelated_pick(candidates, lambda c: c[2], lambda c: c[5], self.max_items, rng, quadratic=True)
        space = [str(n) for n in self.default_space]
        return [Draft(images=[image], turns=[(PROMPT.format(objs=plural(category)), str(count))], choices=space,
                      extras={"object": category, **provenance(chosen), "notes": {"total_area": round(area, 4)}})
                for category, chosen, count, area, image, _ in picked]

    def gold_positions(self, items):
        from collections import Counter

        return Counter(item.answer for item in items), [str(n) for n in self.default_space]
