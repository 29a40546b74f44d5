"""``baby_vdr_open`` — Visual Delayed Response, open: which of eight directions does the object leave
from? The eight directions are balanced by selection (``LeavingTask``); adjacent accuracy is also
reported."""

from __future__ import annotations

from babyvlm.plugins.devcv.parsing import DIRECTIONS
from babyvlm.plugins.devcv.tracks import LeavingTask


class VDROpen(LeavingTask):
    name, short = "baby_vdr_open", "vdr_open"
    leaderboard_position, published_chance = 7, 0.125  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    answer_text = "one of 8 directions"
    directions = DIRECTIONS
    question = ("Which part of the frame does the {obj} leave from? Answer with one of: top, bottom, left, right, "
              "top left, top right, bottom left, bottom right.")
