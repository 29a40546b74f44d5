"""``baby_vdr_binary`` — Visual Delayed Response, binary: does the object leave through the left or the
right side? Exits through the left or right edge, or a corner on it (a "top left" exit leaves through the left
side), balanced by selection (``LeavingTask``)."""

from __future__ import annotations

from babyvlm.plugins.devcv.parsing import BINARY_DIRECTIONS
from babyvlm.plugins.devcv.tracks import LeavingTask


class VDRBinary(LeavingTask):
    name, short = "baby_vdr_binary", "vdr_binary"
    leaderboard_position, published_chance = 6, 0.5  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    answer_text = "left / right"
    directions = BINARY_DIRECTIONS
    corners_count_as_sides = True
    stratify_statistics = True
    question = ("Does the {obj} leave the frame through the right side of the frame or the left side of the "
              "frame?")
