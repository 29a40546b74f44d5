"""``baby_localize`` — Localization: one frame and an object word; answer the quadrant (A-D) of its box centre.

Objects whose category appears once in the frame, at least ``min_box`` px, with their centre clear of the
midlines (``dead_zone`` of the frame size) are used. Frames are shown as recorded (never mirrored or
flipped: an upside-down room would give the answer away); the quadrants are balanced *by selection*,
within bins of what the question's word and the frame's cheap statistics (the probe's, half-frame
luminance included) predict of the quadrant's row and of its column (``options.stratified_pick``), so
neither tells the quadrant. ``bb`` is the box in the written image.
"""

from __future__ import annotations

import numpy as np

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import stratified_pick
from babyvlm.plugins.devcv.probes import picture_statistics

PROMPT = ("<image>\nPoint at the {obj}. Is it in the (A) top left or (B) top right or (C) bottom left or "
          "(D) bottom right of the image?")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")  # letters A-D in this order


class Localization(LetterTask):
    name, short = "baby_localize", "localize"
    leaderboard_position, published_chance = 3, 0.25  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "1 image, an object word", "A-D (quadrant)"
    n_options = 4
    dead_zone = 0.06
    # bins per part (row, column): 2 x 2 cells. An exact per-word balance first, or 4 x 4 cells, left some builds
    # under 100 test items and one 16 val items
    statistic_bins = 2
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
        # neither the question's word (where a kind of thing tends to be: a chair on the floor) nor the frame's
        # cheap statistics (the probe's, half-frame luminance included) may tell the quadrant's row or column:
        # the quadrants are balanced within bins of what the two predict of each
        statistics = self._frame_statistics({(c[0].recording_id, c[1].frame_index): c for c in candidates}.values())
        words = sorted({c[2].category for c in candidates})

        def features(candidate) -> np.ndarray:
            word = [float(candidate[2].category == w) for w in words]
            return np.concatenate([statistics[(candidate[0].recording_id, candidate[1].frame_index)], word])

        chosen = stratified_pick(candidates, lambda c: c[3], lambda c: (c[3] // 2, c[3] % 2), features,
                                 self.max_items, rng, bins=self.statistic_bins)
        return [self._draft(recording, frame, box, quadrant) for recording, frame, box, quadrant in chosen]

    def _frame_statistics(self, candidates) -> dict[tuple[str, int], np.ndarray]:
        found = {}
        for recording, frame, _, _ in candidates:
            found[(recording.recording_id, frame.frame_index)] = picture_statistics(
                recording.image(frame), self.jpeg_quality, self.jpeg_bytes, orientation=True)
        return found

    def _draft(self, recording, frame, box, quadrant: int) -> Draft:
        image = recording.image(frame)
        scale = recording.scale(frame)
        bb = [round(v * scale, 1) for v in box.bbox]
        return Draft(images=[np.ascontiguousarray(image)], turns=[(PROMPT.format(obj=box.category), "ABCD"[quadrant])],
                     extras={"bb": bb, "object": box.category, "quadrant": QUADRANTS[quadrant],
                             **provenance([(recording, frame)])})
