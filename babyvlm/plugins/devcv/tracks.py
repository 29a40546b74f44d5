"""Tracks leaving the frame, for Visual Delayed Response: where each track is last seen and which side
(of eight directions) it leaves through.

A track *exits* at frame ``i`` when it is annotated at ``i`` and not at the next annotated frame, and its
box at ``i`` touches the frame edge (within ``margin`` px) on the side it moves towards. The direction
is the touched side(s): one side ("left"), or two adjacent ones ("top left"). Boxes touching opposite
sides, or exits against the motion, are not used. ``LeavingTask`` is the builder both VDR entries share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.plugins.devcv.annotations import FrameObjects, ObjectBox
from babyvlm.plugins.devcv.base import DirectionTask, Draft
from babyvlm.plugins.devcv.options import balanced_pick, balanced_within, stratified_pick
from babyvlm.plugins.devcv.probes import picture_statistics


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


class LeavingTask(DirectionTask):
    """The VDR builder both entries share: the frames of a track leaving, shown as recorded (never mirrored
    or transposed: an upside-down or transposed room would give the answer away). The exit directions are
    balanced *by selection*: exits are taken round-robin over the entry's directions, none more than
    ``spread`` times as often as the rarest."""

    question: str = ""
    inputs = "5-9 video frames, an object word"
    stride = 1
    spread = 1.3  # no direction more than 1.3 times as often as the rarest one
    # binary VDR: an object leaving through a corner (top left) leaves through that side (left) too, so a
    # corner exit is a left/right item; the open entry keeps the eight directions apart
    corners_count_as_sides = False
    stratify_statistics = False  # choose by ``_stratified`` instead of the round-robin over directions

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        candidates = []
        for recording in material.recordings:
            found = [leaving for leaving in map(self._as_asked, exits(recording.frames, stride=self.stride))
                     if leaving.direction in self.directions]
            # both VDR entries decode the frames of every exit at once, so the second finds them cached
            recording.images({index for leaving in found for index in (*leaving.visible, leaving.gone)})
            candidates += [(recording, leaving) for leaving in found]
        # each object word's directions evened out first (its word must not tell where an object goes)
        candidates = balanced_within(candidates, lambda c: c[1].category, lambda c: c[1].direction, rng)
        if self.stratify_statistics:
            chosen = self._stratified(candidates, rng)
        else:
            # the spread cap alone bounds the commonest direction (no stopping when one direction is left: with
            # two directions that would throw away every exit beyond the rarer side's count)
            chosen = balanced_pick(candidates, lambda c: c[1].direction, self.max_items, rng, spread=self.spread,
                                   until_one_left=False)
        drafts = []
        for recording, leaving in chosen:
            length = rng.randint(min_shown(leaving), len(leaving.visible) + 1)
            indices = leaving.shown(length)
            frames = recording.images(indices)
            images = [np.ascontiguousarray(frames[index]) for index in indices]
            text = IMAGE_TOKEN * len(images) + "\n" + self.question.format(obj=leaving.category)
            drafts.append(Draft(images=images, turns=[(text, leaving.direction)],
                                extras={"object": leaving.category, "frames": indices,
                                        "recording": recording.recording_id,
                                        "sources": [f"{recording.recording_id}:{leaving.gone}:{leaving.track_id}"]}))
        return drafts

    def _stratified(self, candidates: list, rng) -> list:
        """The directions balanced within bins of what cheap statistics of the frames every item shows (the
        first of the last four seen, and the one the object is gone from, with their difference) predict of
        the direction (``options.stratified_pick``): the binary entry's corner exits of the clear-floor
        crossings let them tell the side on one corpus seed (image_stats 0.607 vs 0.5)."""
        memo: dict[tuple[str, int], np.ndarray] = {}

        def statistics(recording, index: int) -> np.ndarray:
            key = (recording.recording_id, index)
            if key not in memo:
                memo[key] = picture_statistics(recording.images([index])[index], self.jpeg_quality, self.jpeg_bytes)
            return memo[key]

        def features(candidate) -> np.ndarray:
            recording, leaving = candidate
            first, gone = statistics(recording, leaving.visible[-4]), statistics(recording, leaving.gone)
            return np.concatenate([first, gone, gone - first])

        order = {direction: rank for rank, direction in enumerate(self.directions)}
        return stratified_pick(candidates, lambda c: c[1].direction, lambda c: (order[c[1].direction],), features,
                               self.max_items, rng)

    def _as_asked(self, leaving: Exit) -> Exit:
        if self.corners_count_as_sides:
            return replace(leaving, direction=leaving.direction.split()[-1])
        return leaving


def min_shown(leaving: Exit) -> int:
    return min(5, len(leaving.visible) + 1)
