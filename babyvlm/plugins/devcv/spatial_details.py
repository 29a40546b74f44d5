"""``baby_spatialdetails`` — Spatial Details: a query crop and three crops of the same category; the one
showing exactly this object (identical to the query) is the answer, A-C.

Distractors differ in a detail: ``instance`` (another track of the same category, when the split has
one), ``colour`` (the crop's colour channels rotated) and ``part`` (a zoom into a part of the crop).
"""

from __future__ import annotations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import resize

PROMPT = ("<image>\nWhich of the following contains exactly this object? (A) <image> (B) <image> (C) <image>. "
          "Pay attention to details and give only a letter A-C.")


class SpatialDetails(LetterTask):
    name, short = "baby_spatialdetails", "spatialdetails"
    inputs, answer_text = "query crop + 3 option crops", "A-C"
    n_options = 3
    part_fraction = 0.7

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        pools = material.by_category()
        targets = [instance for pool in pools.values() for instance in pool]
        rng.shuffle(targets)
        positions, drafts = self.positions(rng), []
        for target in targets[: self.max_items]:
            crop = material.crop(target)
            others = [i for i in pools[target.box.category] if i.box.track_id != target.box.track_id
                      or i.recording is not target.recording]
            kinds = (["instance", rng.choice(("colour", "part"))] if others else ["colour", "part"])
            variants = {"instance": material.crop(rng.choice(others)) if others else None,
                        "colour": self._recoloured(crop, rng), "part": self._part(crop, rng)}
            order, letter = self.arrange("identical", kinds, positions, rng)
            images = [crop] + [crop if kind == "identical" else variants[kind] for kind in order]
            drafts.append(Draft(images=images, turns=[(PROMPT, letter)],
                                extras={"object": target.box.category, "options": order}))
        return drafts

    @staticmethod
    def _recoloured(crop: np.ndarray, rng) -> np.ndarray:
        return np.ascontiguousarray(np.roll(crop, rng.choice((1, 2)), axis=2))

    def _part(self, crop: np.ndarray, rng) -> np.ndarray:
        size = crop.shape[0]
        side = round(size * self.part_fraction)
        left, top = rng.randrange(0, size - side + 1), rng.randrange(0, size - side + 1)
        return resize(np.ascontiguousarray(crop[top:top + side, left:left + side]), size)
