"""``baby_spatialdetails`` — Spatial Details: a query crop and three option crops of the same object; the
option showing exactly the query's picture is the answer, A-C.

Designed as a match-to-sample task with matched distractors (docs/devcv.md):

- the options are three of four *variants* of one object crop that keep all its pixels, so its colour
  histogram and its edges: the original, mirrored left-right, flipped upside down and turned half round
  (a swapped part was tried and dropped: its seams made it findable by file size);
- the query is one of the three, drawn at random, so the options alone never tell which is meant;
- every picture — the query and each option — is re-rendered on its own (shifted a few pixels, rescaled
  slightly, faint grain, encoded anew): the right option is never the query's file, and file size or
  colour statistics do not single it out;
- variants that look alike (mean pixel difference under ``min_difference``) are not used together, and
  such items are counted as skipped.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.rendering import difference, rerendered

PROMPT = ("<image>\nWhich of the following contains exactly this object? (A) <image> (B) <image> (C) <image>. "
          "Pay attention to details and give only a letter A-C.")
VARIANTS = ("original", "mirrored", "flipped", "turned")


class SpatialDetails(LetterTask):
    name, short = "baby_spatialdetails", "spatialdetails"
    leaderboard_position, published_chance = 5, 1 / 3  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "query crop + 3 option crops", "A-C"
    n_options = 3
    query_slots, option_slots = (0,), (1, 2, 3)
    min_difference = 8.0
    max_shift = 0.04

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        instances = material.instances()
        rng.shuffle(instances)
        positions, drafts = self.positions(rng), []
        for target in instances:
            if len(drafts) >= self.max_items:
                break
            variants = self.variants(material.crop(target))
            kinds = rng.sample(VARIANTS, 3)
            if min(difference(variants[a], variants[b]) for a, b in combinations(kinds, 2)) < self.min_difference:
                material.report.skip("spatialdetails_lookalike_variants", f"{split}: {target.key}")
                continue
            query = rng.choice(kinds)
            order, letter = self.arrange(query, [kind for kind in kinds if kind != query], positions, rng)
            images = [rerendered(variants[kind], rng, self.max_shift) for kind in [query, *order]]
            drafts.append(Draft(images=images, turns=[(PROMPT, letter)],
                                extras={"object": target.box.category, "query": query, "options": order,
                                        **provenance([target])}))
        return drafts

    @staticmethod
    def variants(crop: np.ndarray) -> dict[str, np.ndarray]:
        return {"original": crop, "mirrored": np.ascontiguousarray(crop[:, ::-1]),
                "flipped": np.ascontiguousarray(crop[::-1]), "turned": np.ascontiguousarray(crop[::-1, ::-1])}
