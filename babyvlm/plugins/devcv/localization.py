"""``baby_localize`` — Localization: one frame and an object word; answer the quadrant (A-D) of its box centre.

Objects whose category appears once in the frame, at least ``min_box`` px, with their centre clear of the
midlines (``dead_zone`` of the frame size) are used. Frames are shown as recorded (never mirrored or
flipped: an upside-down room would give the answer away); the quadrants are balanced *by selection*,
taking candidates round-robin over the four quadrants. ``bb`` is the box in the written image.
"""

from __future__ import annotations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import balanced_pick

PROMPT = ("<image>\nPoint at the {obj}. Is it in the (A) top left or (B) top right or (C) bottom left or "
          "(D) bottom right of the image?")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")  # letters A-D in this order


class Localization(LetterTask):
    name, short = "baby_localize", "localize"
    leaderboard_position, published_chance = 3, 0.25  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "1 image, an object word", "A-D (quadrant)"
    n_options = 4
    dead_zone = 0.06
    probe_orientation = True  # frames are never flipped; the probe checks that none tells its quadrant

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        candidates = []
        for recording, frame in material.keyframes():
            for box in frame.boxes:
                cx, cy = box.centre
                clear = (abs(cx / frame.width - 0.5) > self.dead_zone and abs(cy / frame.height - 0.5) > self.dead_zone)
                if frame.count(box.category) == 1 and clear and min(box.bbox[2:]) >= material.min_box:
                    quadrant = 2 * (cy > frame.height / 2) + (cx > frame.width / 2)
                    candidates.append((recording, frame, box, quadrant))
        chosen = balanced_pick(candidates, lambda c: c[3], self.max_items, rng)
        return [self._draft(recording, frame, box, quadrant) for recording, frame, box, quadrant in chosen]

    def _draft(self, recording, frame, box, quadrant: int) -> Draft:
        image = recording.image(frame)
        scale = recording.scale(frame)
        bb = [round(v * scale, 1) for v in box.bbox]
        return Draft(images=[np.ascontiguousarray(image)], turns=[(PROMPT.format(obj=box.category), "ABCD"[quadrant])],
                     extras={"bb": bb, "object": box.category, "quadrant": QUADRANTS[quadrant],
                             **provenance([(recording, frame)])})
