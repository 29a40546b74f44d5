"""Answer balance rules of the count and VDR builders, on constructed candidates."""

from __future__ import annotations

import random
from collections import Counter

from babyvlm.plugins.devcv.count import no_dominant_count
from babyvlm.plugins.devcv.options import balanced_pick


def test_a_split_short_of_some_counts_gets_no_dominant_count():
    supply = {1: 13, 2: 2, 3: 9, 4: 10, 5: 4, 6: 2}  # the demo's val split before the rule: '1' was 32 %
    chosen = [("rec", None, "ball", count) for count, n in supply.items() for _ in range(n)]
    kept = Counter(entry[3] for entry in no_dominant_count(chosen, 0.25))
    assert kept == {1: 8, 2: 2, 3: 8, 4: 8, 5: 4, 6: 2}  # 8 of 32: a quarter
    assert max(kept.values()) / sum(kept.values()) <= 0.25


def test_a_flat_split_is_left_as_it_is():
    chosen = [("rec", None, "ball", count) for count in range(1, 8) for _ in range(13)]
    assert no_dominant_count(chosen, 0.25) == chosen


def test_two_directions_keep_the_commoner_side_up_to_the_spread():
    candidates = ["left"] * 55 + ["right"] * 45
    both = Counter(balanced_pick(candidates, lambda c: c, 300, random.Random(0), spread=1.3, until_one_left=False))
    assert both == {"left": 55, "right": 45}  # within 1.3x of the rarer side: every exit kept
    skewed = Counter(balanced_pick(["left"] * 90 + ["right"] * 45, lambda c: c, 300, random.Random(0), spread=1.3,
                                   until_one_left=False))
    assert skewed == {"left": 59, "right": 45}  # ceil(1.3 * 45)


def test_every_recording_of_a_session_lands_in_one_split(tmp_path):
    from pathlib import Path

    from babyvlm.core.records import Recording
    from babyvlm.plugins.devcv.runner import assign_splits

    recordings = [Recording(recording_id=f"{child}_{date}_{segment}", video_path=Path("v.mp4"), utterances=[],
                            source="saycam", child=child, date=date, segment=segment,
                            annotations_path=tmp_path / "a.json")
                  for child in "SAY" for date in ("20130101", "20130202", "20130303", "20130404")
                  for segment in range(3)]
    for seed in range(5):
        split_of = assign_splits(recordings, "saycam", seed, {"val": 0.2, "test": 0.3})
        sides: dict[str, set[str]] = {}
        for recording in recordings:
            sides.setdefault(f"{recording.child}_{recording.date}", set()).add(split_of[recording.recording_id])
        assert all(len(splits) == 1 for splits in sides.values())
        assert set(split_of.values()) == {"train", "val", "test"}
