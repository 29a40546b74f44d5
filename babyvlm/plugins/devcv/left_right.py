"""``baby_leftright`` — Left/Right: a query picture of an object on one half of a plain background and three
options showing the same object on the left or the right half, as it is or mirrored; the one arranged
like the query is the answer, A-C.

The four arrangements (side x mirrored) keep the same pixels, so the same histogram; each item shows three
of them, the query one of the three at random (the options alone never tell which is meant), and every
picture is drawn anew with the object moved by a few pixels within its half, faint grain of random
strength added, and encoded on its own (the right option is never the query's file, and file size does
not follow the arrangement). Crops that look the same mirrored (mean absolute difference
below ``min_asymmetry``) are skipped and counted, since their mirrored options would look alike.
"""

from __future__ import annotations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import paste, pastel, plain_canvas, provenance
from babyvlm.plugins.devcv.rendering import difference, with_grain

PROMPT = "<image>\nWhich of the following is the same as this? (A) <image> (B) <image> (C) <image>"
ARRANGEMENTS = ("left", "right", "left mirrored", "right mirrored")


class LeftRight(LetterTask):
    name, short = "baby_leftright", "leftright"
    leaderboard_position, published_chance = 4, 1 / 3  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "query image + 3 option images", "A-C"
    n_options = 3
    query_slots, option_slots = (0,), (1, 2, 3)
    min_asymmetry = 6.0
    jitter = 0.06  # of the crop size: how far the object moves between drawings

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        instances = material.instances()
        rng.shuffle(instances)
        positions, drafts = self.positions(rng), []
        for instance in instances:
            if len(drafts) >= self.max_items:
                break
            crop = material.crop(instance)
            if difference(crop, crop[:, ::-1]) < self.min_asymmetry:
                material.report.skip("leftright_symmetric_crop", f"{instance.recording.recording_id}@{instance.frame.frame_index}")
                continue
            colour = pastel(rng)
            kinds = rng.sample(ARRANGEMENTS, 3)
            query = rng.choice(kinds)
            order, letter = self.arrange(query, [kind for kind in kinds if kind != query], positions, rng)
            images = [self._drawn(crop, kind, colour, rng) for kind in [query, *order]]
            drafts.append(Draft(images=images, turns=[(PROMPT, letter)],
                                extras={"object": instance.box.category, "query": query, "options": order,
                                        **provenance([instance])}))
        return drafts

    def _drawn(self, crop: np.ndarray, arrangement: str, colour, rng) -> np.ndarray:
        size = crop.shape[0]
        shift = max(1, round(self.jitter * size))
        canvas = plain_canvas(size + 2 * shift, 2 * (size + 2 * shift), colour)
        sprite = np.ascontiguousarray(crop[:, ::-1] if arrangement.endswith("mirrored") else crop)
        left = (0 if arrangement.startswith("left") else size + 2 * shift) + rng.randint(0, 2 * shift)
        paste(canvas, sprite, left, rng.randint(0, 2 * shift))
        return with_grain(canvas, rng)
