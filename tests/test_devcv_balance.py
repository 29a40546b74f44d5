"""Answer balance rules of the count and VDR builders, on constructed candidates."""

from __future__ import annotations

import random
from collections import Counter

from babyvlm.plugins.devcv.count import CONSTANT_ALPHA, cap_commonest, drop_rarest, even_out_counts
from babyvlm.plugins.devcv.options import balanced_pick


def _candidates(supply: dict[int, int]) -> list[tuple]:
    return [("rec", None, "ball", count) for count, n in supply.items() for _ in range(n)]


def test_a_split_short_of_some_counts_gets_no_constant_shortcut():
    from babyvlm.plugins.devcv.probes import constant_shortcut

    # the demo corpus's val split on task seed 1 before the rule: a constant '1' scored 0.250 vs 0.083
    supply = {1: 13, 2: 13, 3: 7, 4: 1, 5: 7, 6: 8, 7: 3}
    assert constant_shortcut(13 / 52, 52, 1 / 12, tries=12)[0]
    kept = Counter(entry[3] for entry in even_out_counts(_candidates(supply), 0.05))
    # the largest cap that passes is 9 (10 of 46 would be a shortcut at CONSTANT_ALPHA); only 1 and 2 are cut
    assert kept == {1: 9, 2: 9, 3: 7, 4: 1, 5: 7, 6: 8, 7: 3}
    assert not constant_shortcut(9 / 44, 44, 1 / 12, tries=12, alpha=CONSTANT_ALPHA)[0]
    assert constant_shortcut(10 / 46, 46, 1 / 12, tries=12, alpha=CONSTANT_ALPHA)[0]


def test_counts_too_rare_for_a_uniform_split_are_dropped():
    from scipy.stats import chisquare

    # corpus seed 2's test split: fifteen each of 1-8, then 6 / 1 / 1 of 9-11 (chi-square p = 0.0009); nothing
    # is common enough to cap, so this is drop_rarest alone
    supply = {**{count: 15 for count in range(1, 9)}, 9: 6, 10: 1, 11: 1}
    assert cap_commonest(_candidates(supply)) == _candidates(supply)
    kept = Counter(entry[3] for entry in even_out_counts(_candidates(supply), 0.05))
    assert kept == {**{count: 15 for count in range(1, 9)}, 9: 6}
    assert chisquare(list(kept.values())).pvalue >= 0.05


def test_equally_rare_counts_go_larger_first():
    # 9 and 10 are equally rare: dropping 10 alone makes the rest uniform enough, so 9 stays
    supply = {**{count: 12 for count in range(1, 9)}, 9: 1, 10: 1}  # chi-square p = 0.019; without 10, 0.27
    kept = Counter(entry[3] for entry in drop_rarest(_candidates(supply), 0.05))
    assert 10 not in kept and kept[9] == 1


def test_cap_and_drop_alternate_until_neither_cuts():
    # one round (cap to 7, then drop the single piles) leaves 11 and 3 too common among fewer items: a second
    # round caps them again
    supply = {4: 1, 12: 1, 11: 10, 8: 3, 7: 6, 3: 8, 5: 1}
    one_round = Counter(entry[3] for entry in drop_rarest(cap_commonest(_candidates(supply)), 0.05))
    assert one_round[11] == 7 and one_round[3] == 7
    kept = even_out_counts(_candidates(supply), 0.05)
    assert Counter(entry[3] for entry in kept)[11] == 6
    assert even_out_counts(kept, 0.05) == kept  # stable


def test_the_first_items_of_each_count_are_kept_in_order():
    # 20 each of 1, 2, 3 interleaved, then 3 of 4: a cap of 6 (7 of 24 would be a shortcut) keeps the first
    # six of each, which are the first eighteen items, and the three 4s
    chosen = [("rec", index, "ball", 1 + index % 3) for index in range(60)] + [("rec", 99, "ball", 4)] * 3
    assert cap_commonest(chosen) == chosen[:18] + chosen[60:]


def test_degenerate_splits():
    assert even_out_counts([], 0.05) == []
    one = [("rec", None, "ball", 4)]
    assert even_out_counts(one, 0.05) == one
    single_count = _candidates({5: 30})
    assert Counter(entry[3] for entry in even_out_counts(single_count, 0.05)) == {5: 2}  # the floor of two


def test_a_flat_split_is_left_as_it_is():
    chosen = _candidates({count: 13 for count in range(1, 12)})
    assert even_out_counts(chosen, 0.05) == chosen


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


def test_counterbalanced_couples_leave_the_pictures_statistics_nothing_to_tell():
    """Candidates whose right picture is the brighter and busier one 80 % of the time; the chosen couples
    mirror each other, so neither the sign of a difference nor a picture's own values tell the right one."""
    import numpy as np

    from babyvlm.plugins.devcv.options import counterbalanced_pairs

    rng = np.random.default_rng(0)
    candidates = []
    for k in range(600):
        low, high = rng.normal(100, 20, 3), rng.normal(130, 20, 3)
        right, other = (high, low) if rng.random() < 0.8 else (low, high)
        candidates.append((k, right, other))
    before = np.mean([c[1][0] > c[2][0] for c in candidates])
    chosen = counterbalanced_pairs(candidates, lambda c: (c[1], c[2]), 200, random.Random(0))
    assert len(chosen) == 200 and len({c[0] for c in chosen}) == 200
    after = np.mean([c[1][0] > c[2][0] for c in chosen])
    assert before > 0.7 and abs(after - 0.5) < 0.08
    rights, others = np.stack([c[1] for c in chosen]), np.stack([c[2] for c in chosen])
    assert np.abs(rights.mean(axis=0) - others.mean(axis=0)).max() < 3  # the two sides' levels match too


def test_each_words_answers_are_evened_out_before_the_entry_is_balanced():
    from babyvlm.plugins.devcv.options import balanced_within

    candidates = ([("car", "right")] * 7 + [("cup", "left")] * 8 + [("cup", "right")] * 3
                  + [("dog", "left")] * 4 + [("dog", "right")] * 5)
    kept = Counter(balanced_within(candidates, lambda c: c[0], lambda c: c[1], random.Random(0)))
    assert kept == {("car", "right"): 1, ("cup", "left"): 3, ("cup", "right"): 3, ("dog", "left"): 4,
                    ("dog", "right"): 4}


def test_cross_validation_folds_keep_each_recording_on_one_side():
    from babyvlm.core.records import TaskItem
    from babyvlm.plugins.devcv.probes import FOLDS, cross_validation_folds

    items = [TaskItem(item_id=f"x_{k}", task="baby_pv", images=[], conversations=[], answer="A",
                      extras={"recording": f"rec{k % 8}"}) for k in range(160)]
    folds, kind = cross_validation_folds(items, seed=0)
    assert kind == "recording" and len(folds) == FOLDS
    assert sorted(k for fold in folds for k in fold) == list(range(160))
    for fold in folds:
        recordings_in = {items[k].extras["recording"] for k in fold}
        recordings_out = {items[k].extras["recording"] for k in range(160) if k not in fold}
        assert recordings_in and not recordings_in & recordings_out
    few = [TaskItem(item_id=f"y_{k}", task="baby_pv", images=[], conversations=[], answer="A",
                    extras={"recording": f"rec{k % 3}"}) for k in range(30)]
    # too few recordings to group by: the clusters fall back (here: items sharing no picture, one per item)
    assert cross_validation_folds(few, seed=0)[1] != "recording"


def test_quadratic_decorrelation_takes_a_count_told_by_a_middling_statistic_out():
    """Larger counts mostly far out on either side of a statistic, smaller ones mostly in its middle (a U
    shape): a straight-line fit of the count on the statistic sees nothing and leaves it; with the squares
    the choice takes it out."""
    import numpy as np

    from babyvlm.plugins.devcv.options import decorrelated_pick

    rng = np.random.default_rng(0)
    candidates = []
    for k in range(2000):
        count = 1 + k % 4
        far = rng.random() < (0.8 if count > 2 else 0.2)
        value = rng.normal(0, 0.3) + (rng.choice([-2.0, 2.0]) if far else 0.0)
        candidates.append((count, np.asarray([value, rng.normal()])))

    def told(picked):  # correlation of the count with the statistic's distance from the middle
        return abs(np.corrcoef([abs(c[1][0]) for c in picked], [c[0] for c in picked])[0, 1])

    linear = decorrelated_pick(candidates, lambda c: c[0], lambda c: c[1], 400, random.Random(0))
    squared = decorrelated_pick(candidates, lambda c: c[0], lambda c: c[1], 400, random.Random(0), quadratic=True)
    assert told(linear) > 0.3 and told(squared) < 0.12, (told(linear), told(squared))  # 0.36 vs 0.08
    assert Counter(c[0] for c in squared) == {1: 100, 2: 100, 3: 100, 4: 100}


def test_binary_vdr_counts_a_corner_exit_as_its_side():
    """An object leaving through the top-left corner leaves through the left side: a binary item answered
    "left"; the open entry keeps the corner, and an exit through the top alone is no binary item."""
    from babyvlm.plugins.devcv.tracks import Exit
    from babyvlm.plugins.devcv.vdr_binary import VDRBinary
    from babyvlm.plugins.devcv.vdr_open import VDROpen

    def leaving(direction: str) -> Exit:
        return Exit("ball", 7, direction, (1, 2, 3, 4), 5)

    binary, open_ = VDRBinary(), VDROpen()
    assert [binary._as_asked(leaving(d)).direction for d in ("top left", "bottom right", "left", "top")] == \
        ["left", "right", "left", "top"]
    assert "top" not in binary.directions
    assert open_._as_asked(leaving("top left")).direction == "top left"


def test_stratified_pick_takes_a_quadrant_told_by_half_frame_statistics_out():
    """Quadrant items whose row shows in one statistic and whose column in another (as half-frame luminance
    shows a bright object's place): a quadrant-balanced random choice leaves both told; the stratified
    choice balances the quadrants within bins of what the statistics predict of each."""
    import numpy as np

    from babyvlm.plugins.devcv.options import balanced_pick, stratified_pick

    rng = np.random.default_rng(1)
    candidates = []
    for _ in range(3000):
        quadrant = int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1]))  # a skewed supply, as a world gives it
        row, column = quadrant // 2, quadrant % 2
        candidates.append((quadrant, np.asarray([row + rng.normal(0, 0.6), column + rng.normal(0, 0.6),
                                                 rng.normal()])))

    def told(picked):  # the larger correlation of a part of the answer with its statistic
        return max(abs(np.corrcoef([c[1][part] for c in picked], [c[0] // 2 if part == 0 else c[0] % 2
                                                                 for c in picked])[0, 1]) for part in (0, 1))

    plain = balanced_pick(candidates, lambda c: c[0], 400, random.Random(0))
    stratified = stratified_pick(candidates, lambda c: c[0], lambda c: (c[0] // 2, c[0] % 2), lambda c: c[1], 400,
                                 random.Random(0))
    assert told(plain) > 0.5 and told(stratified) < 0.2, (told(plain), told(stratified))  # 0.63 vs 0.09
    assert Counter(c[0] for c in stratified) == {0: 100, 1: 100, 2: 100, 3: 100}
