"""``baby_leftright`` — Left/Right: a query image of an object and three options: the identical image, the
object placed on the other side, and the object mirrored in place; answer A-C.

The query puts a whole object's crop on the left or right half of a plain background. Crops that look
the same mirrored (mean absolute difference below ``min_asymmetry``) are skipped and counted, since
their mirrored option would equal the gold one.
"""

from __future__ import annotations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import paste, pastel, plain_canvas

PROMPT = "<image>\nWhich of the following is the same as this? (A) <image> (B) <image> (C) <image>"


class LeftRight(LetterTask):
    name, short = "baby_leftright", "leftright"
    inputs, answer_text = "query image + 3 option images", "A-C"
    n_options = 3
    min_asymmetry = 6.0

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        instances = material.instances()
        rng.shuffle(instances)
        positions, drafts = self.positions(rng), []
        for instance in instances:
            if len(drafts) >= self.max_items:
                break
            crop = material.crop(instance)
            if np.abs(crop.astype(np.int16) - crop[:, ::-1]).mean() < self.min_asymmetry:
                material.report.skip("leftright_symmetric_crop", f"{instance.recording.recording_id}@{instance.frame.frame_index}")
                continue
            colour, side = pastel(rng), rng.choice(("left", "right"))
            other = "right" if side == "left" else "left"
            query = self._placed(crop, side, colour)
            variants = {"identical": query, "other_side": self._placed(crop, other, colour),
                        "mirrored": self._placed(crop[:, ::-1], side, colour)}
            kinds, letter = self.arrange("identical", ["other_side", "mirrored"], positions, rng)
            drafts.append(Draft(images=[query] + [variants[kind] for kind in kinds], turns=[(PROMPT, letter)],
                                extras={"object": instance.box.category, "side": side, "options": kinds}))
        return drafts

    @staticmethod
    def _placed(crop: np.ndarray, side: str, colour) -> np.ndarray:
        size = crop.shape[0]
        canvas = plain_canvas(size, size * 2, colour)
        paste(canvas, np.ascontiguousarray(crop), 0 if side == "left" else size, 0)
        return canvas
