"""``baby_localize`` — Localization: one frame and an object word; answer the quadrant (A-D) of its box centre.

Objects whose category appears once in the frame and whose centre is clear of the midlines (``dead_zone``
of the frame size) are used. Quadrants are balanced by mirroring the frame (left-right and/or up-down),
which moves the object to the quadrant the next balanced position asks for; ``bb`` is the box in the
written image.
"""

from __future__ import annotations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask

PROMPT = ("<image>\nPoint at the {obj}. Is it in the (A) top left or (B) top right or (C) bottom left or "
          "(D) bottom right of the image?")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")  # letters A-D in this order


class Localization(LetterTask):
    name, short = "baby_localize", "localize"
    inputs, answer_text = "1 image, an object word", "A-D (quadrant)"
    n_options = 4
    dead_zone = 0.06

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        candidates = []
        for recording, frame in material.keyframes():
            for box in frame.boxes:
                cx, cy = box.centre
                clear = (abs(cx / frame.width - 0.5) > self.dead_zone and abs(cy / frame.height - 0.5) > self.dead_zone)
                if frame.count(box.category) == 1 and clear and min(box.bbox[2:]) >= material.min_box:
                    candidates.append((recording, frame, box))
        rng.shuffle(candidates)
        positions, drafts = self.positions(rng), []
        for recording, frame, box in candidates[: self.max_items]:
            drafts.append(self._draft(recording, frame, box, positions.next()))
        return drafts

    def _draft(self, recording, frame, box, quadrant: int) -> Draft:
        image = recording.image(frame)
        scale = recording.scale(frame)
        x, y, w, h = (v * scale for v in box.bbox)
        height, width = image.shape[:2]
        right, bottom = (x + w / 2) > width / 2, (y + h / 2) > height / 2
        want_right, want_bottom = bool(quadrant % 2), quadrant >= 2
        if right != want_right:
            image, x = image[:, ::-1], width - x - w
        if bottom != want_bottom:
            image, y = image[::-1], height - y - h
        bb = [round(x, 1), round(y, 1), round(w, 1), round(h, 1)]
        return Draft(images=[np.ascontiguousarray(image)], turns=[(PROMPT.format(obj=box.category), "ABCD"[quadrant])],
                     extras={"bb": bb, "object": box.category, "quadrant": QUADRANTS[quadrant]})
