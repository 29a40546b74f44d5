"""``baby_compare_synthetic`` — Who Has More, synthetic: two rendered images with different numbers of one
annotated object ("Which image has more {objs}?", A/B).

Designed like non-symbolic number comparison studies (Halberda & Feigenson 2008; Gebuis & Reynvoet 2011),
so that number is the only property that separates the images across the set:

- counts: both images hold at least one object; the pair's ratio (fewer / more) lies in
  ``RATIO_RANGE`` (from 1:4 up to 4:5), pairs drawn evenly from ``pairs()``;
- continuous magnitudes: half of the candidates are ``congruent`` (the image with more objects also has
  more total object area) and half incongruent (less area), by the same factor either way and beyond the
  number ratio, so the total contour follows the area; item sizes vary within each image and the
  occupied field varies in size;
  each image has its own background colour and texture;
- balanced by selection: ``CANDIDATES`` times as many pairs as needed are rendered, and pairs are chosen
  so that probes of the checks' kinds, learning from the pictures' cheap statistics (file size,
  luminance mean and spread, mean colour), are right on exactly as many items as they are wrong
  (``options.adversarially_balanced``, adversarial filtering).

``notes`` records both counts, the total areas and whether the item is congruent.
"""

from __future__ import annotations

import math

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import BalancedPositions, adversarially_balanced
from babyvlm.plugins.devcv.probes import picture_statistics
from babyvlm.plugins.devcv.rendering import magnitude_scene
from babyvlm.plugins.devcv.words import plural

PROMPT = "Which image has more {objs}? (A) <image> (B) <image>"
MAX_COUNT = 10
RATIO_RANGE = (0.25, 0.8)  # fewer / more
AREA_LEVEL = (0.05, 0.16)  # geometric mean of the two images' total object area, fraction of the canvas
CANDIDATES = 2  # rendered pairs per wanted item, before balancing


def pairs() -> list[tuple[int, int]]:
    """Every (more, fewer) with both in 1..MAX_COUNT and a ratio in RATIO_RANGE."""
    low, high = RATIO_RANGE
    return [(more, fewer) for more in range(2, MAX_COUNT + 1) for fewer in range(1, more)
            if low - 1e-9 <= fewer / more <= high + 1e-9]


class WhoHasMoreSynthetic(LetterTask):
    name, short = "baby_compare_synthetic", "compare_synthetic"
    leaderboard_position, published_chance = 9, 0.5  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "2 rendered images, an object word", "A/B"
    n_options = 2
    option_slots = (0, 1)

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        pools = material.by_category()
        if not pools:
            return []
        congruence, candidates, choices = BalancedPositions(2, rng), [], pairs()
        for _ in range(CANDIDATES * self.max_items):
            category = rng.choice(sorted(pools))
            chosen = rng.sample(pools[category], min(4, len(pools[category])))
            crops = [material.crop(instance) for instance in chosen]
            more, fewer = rng.choice(choices)
            congruent = congruence.next() == 0
            area_more, area_fewer = _total_areas(more, fewer, congruent, rng)
            images = [magnitude_scene(crops, more, area_more, rng), magnitude_scene(crops, fewer, area_fewer, rng)]
            if any(image is None for image in images):
                material.report.skip("compare_synthetic_no_room", f"{split}: counts {more} vs {fewer}")
                continue
            more_stats, fewer_stats = (picture_statistics(i, self.jpeg_quality, self.jpeg_bytes) for i in images)
            candidates.append((category, chosen, (more, fewer), (area_more, area_fewer), congruent, images,
                               (more_stats, fewer_stats)))
        positions, drafts = self.positions(rng), []
        for category, chosen, counts, areas, congruent, images, _ in adversarially_balanced(
                candidates, lambda c: c[6], self.max_items, rng):
            order, letter = self.arrange(0, [1], positions, rng)
            drafts.append(Draft(images=[images[k] for k in order], turns=[(PROMPT.format(objs=plural(category)), letter)],
                                extras={"object": category, **provenance(chosen),
                                        "notes": {"counts": [counts[k] for k in order], "congruent": congruent,
                                                  "total_area": [round(areas[k], 4) for k in order]}}))
        return drafts


def _total_areas(more: int, fewer: int, congruent: bool, rng) -> tuple[float, float]:
    """(area of the image with more, area of the one with fewer), as canvas fractions: more (congruent) or
    less (incongruent) area by the same factor, beyond the number ratio, so the summed contour (which grows
    with sqrt(number x area)) follows the area, and neither the size nor the sign of the area difference
    tells which image has more."""
    log_ratio = math.log(more / fewer)
    log_area = log_ratio * rng.uniform(1.1, 1.6) * (1 if congruent else -1)  # the same size either way
    level = math.exp(rng.uniform(math.log(AREA_LEVEL[0]), math.log(AREA_LEVEL[1])))
    return level * math.exp(log_area / 2), level * math.exp(-log_area / 2)
