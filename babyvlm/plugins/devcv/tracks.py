"""Tracks leaving the frame, for Visual Delayed Response: where each track is last seen and which side
(of eight directions) it leaves through.

A track *exits* at frame ``i`` when it is annotated at ``i`` and not at the next annotated frame, and its
box at ``i`` touches the frame edge (within ``margin`` px) on the side it moves towards. The direction
is the touched side(s): one side ("left"), or two adjacent ones ("top left"). Boxes touching opposite
sides, or exits against the motion, are not used. ``LeavingTask`` is the builder both VDR entries share.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.plugins.devcv.annotations import FrameObjects, ObjectBox
from babyvlm.plugins.devcv.base import DirectionTask, Draft
from babyvlm.plugins.devcv.options import least_used


@dataclass(frozen=True)
class Exit:
    category: str
    track_id: int
    direction: str
    visible: tuple[int, ...]  # frame indices (at the stride) where the track is seen, oldest first
    gone: int  # the first frame (at the stride) without it

    def shown(self, length: int) -> list[int]:
        """``length`` frames: the last ``length - 1`` visible ones, then the one it is gone from."""
        return list(self.visible[-(length - 1):]) + [self.gone]


def exits(frames: list[FrameObjects], min_length: int = 5, max_length: int = 9, stride: int = 1,
          margin: float = 2.0) -> list[Exit]:
    """Every usable exit with at least ``min_length - 1`` visible frames before it (at most
    ``max_length - 1`` kept)."""
    by_index = {frame.frame_index: frame for frame in frames}
    found = []
    for track_id, seen in sorted(_tracks(frames).items()):
        visible = dict(seen)
        for position, (index, box) in enumerate(seen):
            following = seen[position + 1][0] if position + 1 < len(seen) else None
            gone = index + stride
            if gone not in by_index or (following is not None and following <= gone):
                continue
            run = []
            for step in range(max_length - 1):
                earlier = index - stride * step
                if earlier not in visible:
                    break
                run.insert(0, earlier)
            if len(run) < min_length - 1:
                continue
            direction = _direction(by_index[index], box, visible[run[0]], margin)
            if direction:
                found.append(Exit(box.category, track_id, direction, tuple(run), gone))
    return found


def _tracks(frames: list[FrameObjects]) -> dict[int, list[tuple[int, ObjectBox]]]:
    tracks: dict[int, list[tuple[int, ObjectBox]]] = {}
    for frame in frames:
        for box in frame.boxes:
            if box.track_id is not None:
                tracks.setdefault(box.track_id, []).append((frame.frame_index, box))
    return tracks


def _direction(frame: FrameObjects, box: ObjectBox, first: ObjectBox, margin: float) -> str | None:
    x, y, w, h = box.bbox
    dx, dy = box.centre[0] - first.centre[0], box.centre[1] - first.centre[1]
    left, right = x <= margin and dx < 0, x + w >= frame.width - margin and dx > 0
    top, bottom = y <= margin and dy < 0, y + h >= frame.height - margin and dy > 0
    if (left and right) or (top and bottom):
        return None
    vertical = "top" if top else "bottom" if bottom else ""
    horizontal = "left" if left else "right" if right else ""
    return " ".join(part for part in (vertical, horizontal) if part) or None


FLIPS = {"horizontal": {"left": "right", "right": "left"}, "vertical": {"top": "bottom", "bottom": "top"},
         "transpose": {"left": "top", "top": "left", "right": "bottom", "bottom": "right"}}
ORDER = ("top", "bottom", "left", "right")


def flipped(direction: str, horizontal: bool, vertical: bool, transpose: bool = False) -> str:
    """The exit direction after transposing the frames (x <-> y), then mirroring them left-right and/or
    up-down (the order ``_mirror`` applies them in)."""
    words = direction.split(" ")
    for flag, name in ((transpose, "transpose"), (horizontal, "horizontal"), (vertical, "vertical")):
        if flag:
            words = [FLIPS[name].get(word, word) for word in words]
    words.sort(key=ORDER.index)  # "top left", never "left top"
    return " ".join(words)


class LeavingTask(DirectionTask):
    """The VDR builder both entries share: frames of a track leaving, mirrored to balance the answers."""

    question: str = ""
    inputs = "5-9 video frames, an object word"
    stride = 1
    transposes: tuple[bool, ...] = (False,)  # (False, True): also swap x and y (reaches every side)

    def symmetries(self) -> list[tuple[bool, bool, bool]]:
        return [(h, v, t) for t in self.transposes for h in (False, True) for v in (False, True)]

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        candidates = []
        for recording in material.recordings:
            found = exits(recording.frames, stride=self.stride)
            # both VDR entries decode the frames of every exit at once, so the second finds them cached
            recording.images({index for leaving in found for index in (*leaving.visible, leaving.gone)})
            candidates += [(recording, leaving) for leaving in found
                           if any(flipped(leaving.direction, *flips) in self.directions for flips in self.symmetries())]
        rng.shuffle(candidates)
        used: Counter = Counter()
        drafts = []
        for recording, leaving in candidates[: self.max_items]:
            reachable: dict[str, tuple[bool, bool, bool]] = {}
            for flips in self.symmetries():
                reachable.setdefault(flipped(leaving.direction, *flips), flips)
            target = least_used([d for d in self.directions if d in reachable], used)
            used[target] += 1
            horizontal, vertical, transpose = reachable[target]
            length = rng.randint(min_shown(leaving), len(leaving.visible) + 1)
            indices = leaving.shown(length)
            frames = recording.images(indices)
            images = [_mirror(frames[index], horizontal, vertical, transpose) for index in indices]
            text = IMAGE_TOKEN * len(images) + "\n" + self.question.format(obj=leaving.category)
            drafts.append(Draft(images=images, turns=[(text, target)],
                                extras={"object": leaving.category, "frames": indices,
                                        "recorded_direction": leaving.direction,
                                        "mirrored": {"horizontal": horizontal, "vertical": vertical,
                                                     "transposed": transpose}}))
        return drafts


def min_shown(leaving: Exit) -> int:
    return min(5, len(leaving.visible) + 1)


def _mirror(image, horizontal: bool, vertical: bool, transpose: bool = False):
    if transpose:
        image = image.transpose(1, 0, 2)
    if horizontal:
        image = image[:, ::-1]
    if vertical:
        image = image[::-1]
    return np.ascontiguousarray(image)
