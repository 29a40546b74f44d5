"""``baby_count`` — Object Counting: one frame; "How many {objs} do you see?" answered with a number.

The answer space is fixed for every split and domain: ``COUNT_SPACE`` = 1-12, which covers the released
files' answers (1-12) and the built ones, so chance is 1/12 everywhere. A (frame, category) is asked
only when every object of the category on the frame is countable (inside the frame, mostly unoccluded, at
least 8 px: ``SplitMaterial.whole_counts``): the count is then unambiguous. Frames are considered every
``every_sec`` seconds. Only categories that appear at least ``min_pile`` times on
some keyframe of the split are asked about (a word that only ever appears alone would give its answer
away). Items are chosen so that the frames' cheap statistics (file size, luminance, colour) predict nothing
of the count (``options.decorrelated_pick``: counts taken round-robin within bins of a linear prediction
from those statistics), with at most ``max_items / 20`` items per count, so the golds are as flat over the
answer space as the video allows. Home video holds few piles of some sizes (a small val split may hold one
pile of four; another seed's test split one pile of ten), so each split's golds are then evened out
(``even_out_counts``): the commonest counts are cut until a constant guess of one is no shortcut by the
validity suite's own test (``probes.constant_shortcut`` at ``CONSTANT_ALPHA``, five times the check's
alpha: a margin), and a count too rare for the golds to pass a test of uniformity over the counts kept
(chi-square p >= ``balance_p``) is dropped from that split. What that guarantees is that the check cannot tell a
constant guess from chance on the split as built — on a split holding few distinct counts (a val split of
home video) that is bought with items: such a split is cut small, and every item cut is counted in the
manifest (``count_evened_out``). Chance stays 1/12; the balance check tests the counts the split holds.
"""

from __future__ import annotations

from babyvlm.plugins.devcv.base import Draft, NumberTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import decorrelated_pick
from babyvlm.plugins.devcv.probes import picture_statistics
from babyvlm.plugins.devcv.words import plural

CONSTANT_ALPHA = 0.05  # the constant check fails at p < 0.01: a builder keeping p >= 0.05 stays clear of it
PROMPT = "<image>\nHow many {objs} do you see?"
COUNT_SPACE = tuple(range(1, 13))


class ObjectCounting(NumberTask):
    name, short = "baby_count", "count"
    leaderboard_position, published_chance = 10, 0.08  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "1 image, an object word", "1-12"
    default_space = COUNT_SPACE
    min_pile = 3
    every_sec = 0.2  # frames considered (piles change by one object at a time: denser than keyframes)
    # at most max_items / 20 items per count (15 of 300): with the piles a 16-minute demo corpus holds, that
    # gives the test split >= 100 items while the most frequent count stays far below a guesser's threshold
    items_per_count_divisor = 20
    # a split's golds must pass a uniformity test over the counts it keeps at this level (the check's
    # gold_balance fails only below 0.001: the builder keeps a wide margin)
    balance_p = 0.05

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        found = [entry for entry in material.whole_counts(self.every_sec) if entry[3] in COUNT_SPACE]
        most: dict[str, int] = {}
        for _, _, category, count in found:
            most[category] = max(count, most.get(category, 0))
        countable = [entry for entry in found if most[entry[2]] >= self.min_pile]
        wanted: dict[int, tuple] = {}
        for recording, frame, _, _ in countable:  # one decoding pass per recording, not one per frame
            wanted.setdefault(id(recording), (recording, set()))[1].add(frame.frame_index)
        for recording, indices in wanted.values():
            recording.images(indices)
        statistics: dict[tuple, object] = {}

        def features(entry: tuple) -> object:
            recording, frame = entry[0], entry[1]
            key = (recording.recording_id, frame.frame_index)
            if key not in statistics:
                statistics[key] = picture_statistics(recording.image(frame), self.jpeg_quality, self.jpeg_bytes)
            return statistics[key]

        cap = max(2, -(-self.max_items // self.items_per_count_divisor))
        chosen = decorrelated_pick(countable, lambda entry: entry[3], features, self.max_items, rng, per_answer=cap)
        evened = even_out_counts(chosen, self.balance_p)
        kept = {id(entry) for entry in evened}
        for recording, frame, category, count in (entry for entry in chosen if id(entry) not in kept):
            # counted in the manifest: a split cut to even out its counts says how much it lost
            self.report.skip("count_evened_out", f"{split}:{recording.recording_id}@{frame.frame_index}:{category}={count}")
        chosen = evened
        space = [str(n) for n in COUNT_SPACE]
        return [Draft(images=[recording.image(frame)], turns=[(PROMPT.format(objs=plural(category)), str(count))],
                      choices=space, extras={"object": category, **provenance([(recording, frame)])})
                for recording, frame, category, count in chosen]

    def gold_positions(self, items):
        from collections import Counter

        counts = Counter(item.answer for item in items)
        return counts, [str(n) for n in COUNT_SPACE if counts[str(n)]]


def even_out_counts(chosen: list[tuple], balance_p: float) -> list[tuple]:
    """``chosen`` (in its shuffled order; ``entry[3]`` is the count) cut until no constant guess is a
    shortcut (``cap_commonest``) and the counts kept pass a uniformity test (``drop_rarest``), alternating
    until neither cuts more: dropping a rare count raises the others' shares."""
    while True:
        evened = drop_rarest(cap_commonest(chosen), balance_p)
        if len(evened) == len(chosen):
            return evened
        chosen = evened


def cap_commonest(chosen: list[tuple]) -> list[tuple]:
    """``chosen`` with at most ``cap`` items per count (first come, first kept), ``cap`` the largest at which
    a constant guess of the commonest count is no shortcut by ``probes.constant_shortcut`` over the items
    kept, Bonferroni-corrected over the answer space as the ``constant`` check does, at ``CONSTANT_ALPHA``
    (five times the check's: a margin), at least 2 per count."""
    from collections import Counter

    from babyvlm.plugins.devcv.probes import constant_shortcut

    per_count = Counter(entry[3] for entry in chosen)
    if not per_count:
        return chosen
    chance = 1 / len(COUNT_SPACE)

    def shortcut(cap: int) -> bool:
        total = sum(min(n, cap) for n in per_count.values())
        return constant_shortcut(cap / total, total, chance, tries=len(COUNT_SPACE), alpha=CONSTANT_ALPHA)[0]

    cap = max(per_count.values())
    while cap > 2 and shortcut(cap):
        cap -= 1
    kept, taken = [], Counter()
    for entry in chosen:
        if taken[entry[3]] < cap:
            kept.append(entry)
            taken[entry[3]] += 1
    return kept


def drop_rarest(chosen: list[tuple], balance_p: float) -> list[tuple]:
    """``chosen`` without its rarest counts (the larger count first among equally rare ones), dropped one at
    a time while the counts kept fail a chi-square test of uniformity at ``balance_p`` (two counts at least)."""
    from collections import Counter

    from scipy.stats import chisquare

    per_count = Counter(entry[3] for entry in chosen)
    while len(per_count) > 2 and chisquare(list(per_count.values())).pvalue < balance_p:
        del per_count[min(per_count, key=lambda count: (per_count[count], -count))]
    return [entry for entry in chosen if entry[3] in per_count]
