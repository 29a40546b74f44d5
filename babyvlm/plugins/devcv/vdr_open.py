"""``baby_vdr_open`` — Visual Delayed Response, open: which of eight directions does the object leave
from? To even out the answers the frames are transposed (x <-> y) and/or mirrored (left-right, up-down):
any side can become any other side and any diagonal any other diagonal, so the four sides are balanced
among themselves and so are the four diagonals. Diagonal exits are rarer, so no chi-square balance over
all eight is claimed (the constant-answer check still applies). Adjacent accuracy is also reported."""

from __future__ import annotations

from babyvlm.plugins.devcv.parsing import DIRECTIONS
from babyvlm.plugins.devcv.tracks import LeavingTask


class VDROpen(LeavingTask):
    name, short = "baby_vdr_open", "vdr_open"
    answer_text = "one of 8 directions"
    directions = DIRECTIONS
    transposes = (False, True)
    question = ("Which part of the frame does the {obj} leave from? Answer with one of: top, bottom, left, right, "
              "top left, top right, bottom left, bottom right.")

    def gold_positions(self, items):
        return None
