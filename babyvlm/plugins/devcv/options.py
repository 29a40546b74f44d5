"""Seeded randomness for the builders and the scorers: per-task generators, option shuffling with
balanced gold positions, balanced answer selection, and the tie-break drawn from the item id.

Everything uses ``random.Random`` seeded from strings (stable across Python versions and processes, unlike
``hash()``), so the same seed builds byte-identical files.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def task_rng(seed: int, task: str, split: str) -> random.Random:
    return random.Random(f"devcv:{seed}:{task}:{split}")


def item_rng(item_id: str) -> random.Random:
    """The generator a tie between options is broken with: fixed per item, independent of the run."""
    return random.Random(int.from_bytes(hashlib.sha256(item_id.encode("utf-8")).digest()[:8], "big"))


class BalancedPositions:
    """Gold positions drawn from shuffled blocks of ``range(n)``: every block of ``n`` items uses each
    position once, so over a split the gold letters differ in count by at most one."""

    def __init__(self, n: int, rng: random.Random):
        self.n, self.rng, self._block = n, rng, []

    def next(self) -> int:
        if not self._block:
            self._block = list(range(self.n))
            self.rng.shuffle(self._block)
        return self._block.pop()


def balanced_sequence(length: int, values: int, rng: random.Random) -> list[int]:
    """``length`` draws from ``range(values)``, each value used equally often (to within one), in a shuffled
    order: a column of answers balanced over a whole item set with no pattern along it."""
    sequence = [k % values for k in range(length)]
    rng.shuffle(sequence)
    return sequence


def place_gold(gold: T, distractors: Sequence[T], position: int, rng: random.Random) -> list[T]:
    """The distractors in a seeded order with ``gold`` inserted at ``position``."""
    others = list(distractors)
    rng.shuffle(others)
    return others[:position] + [gold] + others[position:]


def balanced_pick(candidates: Sequence[Any], answer_of: Callable[[Any], Hashable], limit: int,
                  rng: random.Random, until_one_left: bool = True, spread: float | None = None) -> list[Any]:
    """Up to ``limit`` candidates taken round-robin over their answers (each answer's pool shuffled), so a
    skewed supply gives as flat an answer distribution as it allows. ``until_one_left``: stop when a single
    answer still has candidates, rather than filling up with it (a constant answer must not win).
    ``spread``: no answer gets more than ``spread`` times the rarest answer's supply (a flatter set of
    fewer items)."""
    pools: dict[Hashable, list[Any]] = {}
    for candidate in candidates:
        pools.setdefault(answer_of(candidate), []).append(candidate)
    for answer in sorted(pools, key=str):
        rng.shuffle(pools[answer])
    if spread is not None and pools:
        cap = math.ceil(spread * min(len(pool) for pool in pools.values()))
        pools = {answer: pool[:cap] for answer, pool in pools.items()}
    order = sorted(pools, key=str)
    chosen: list[Any] = []
    while len(chosen) < limit and sum(bool(pool) for pool in pools.values()) > (1 if until_one_left and len(pools) > 1 else 0):
        for answer in order:
            if pools[answer] and len(chosen) < limit:
                chosen.append(pools[answer].pop())
    rng.shuffle(chosen)
    return chosen


def balanced_within(candidates: Sequence[Any], group_of: Callable[[Any], Hashable],
                    answer_of: Callable[[Any], Hashable], rng: random.Random) -> list[Any]:
    """``candidates`` with each group's answers evened out: within a group (e.g. the object word the question
    names), no answer keeps more candidates than the group's rarest answer present, and a group with one
    answer keeps one. Without this a question's word tells its answer wherever the supply happens to be
    skewed (the cars of one set all leaving to the right): a text-only probe learns it."""
    cells: dict[tuple[Hashable, Hashable], list[Any]] = {}
    for candidate in candidates:
        cells.setdefault((group_of(candidate), answer_of(candidate)), []).append(candidate)
    supply: dict[Hashable, int] = {}
    answers: Counter = Counter()
    for (group, _), members in cells.items():
        supply[group] = min(supply.get(group, len(members)), len(members))
        answers[group] += 1
    supply = {group: count if answers[group] > 1 else 1 for group, count in supply.items()}
    kept: list[Any] = []
    for key in sorted(cells, key=str):
        members = cells[key]
        rng.shuffle(members)
        kept += members[: supply[key[0]]]
    return kept


def adversarially_balanced(candidates: Sequence[Any], statistics_of: Callable[[Any], tuple[Any, Any]], limit: int,
                           rng: random.Random, bands: int = 4,
                           group_of: Callable[[Any], Hashable] | None = None) -> list[Any]:
    """Up to ``limit`` two-option candidates chosen so that a probe of the checks' own kinds, learning from
    cheap picture statistics, is right on exactly as many of them as it is wrong (adversarial filtering,
    as SWAG's, Zellers et al. 2018). ``statistics_of(c)``: the statistics of c's right picture and of the
    other one. The probe sees what ``tasks check``'s does: each picture's own statistics as well as their
    difference (a scene's colour may tell its count as well as a difference does). Two-fold cross-fitted
    logistic regression and gradient-boosted trees (trained on both orders of each pair) score every
    candidate; ``group_of(c)`` (e.g. the recording) keeps a group on one side of the folds, so the belief is
    what carries over to unseen recordings, not a memory of near-identical pairs. Within each of ``bands``
    confidence bands the chosen candidates are half ones the probe gets right and half ones it gets wrong."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if len(candidates) < 4:
        return []
    pairs = [statistics_of(c) for c in candidates]
    right = np.asarray([pair[0] for pair in pairs], dtype=np.float64)
    other = np.asarray([pair[1] for pair in pairs], dtype=np.float64)
    forward = np.concatenate([right, other, right - other], axis=1)
    backward = np.concatenate([other, right, other - right], axis=1)
    order = list(range(len(candidates)))
    rng.shuffle(order)
    folds = _two_folds(order, [group_of(candidates[k]) for k in order] if group_of else None, rng)
    belief = np.zeros(len(candidates))
    for held, fit in ((folds[0], folds[1]), (folds[1], folds[0])):
        train = np.concatenate([forward[fit], backward[fit]])
        labels = np.r_[np.ones(len(fit)), np.zeros(len(fit))]
        models = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                  HistGradientBoostingClassifier(max_iter=80, max_depth=3, random_state=0)]
        with threadpool_limits(limits=1):  # a few hundred rows: OpenMP's thread start-up costs more than it saves
            for model in models:
                model.fit(train, labels)
                # the probe picks the picture it believes more in: both orders, averaged
                belief[held] += (model.predict_proba(forward[held])[:, 1] + model.predict_proba(backward[held])[:, 0]) / 4
    band_of = np.minimum((np.abs(belief - 0.5) * 2 * bands).astype(int), bands - 1)
    pools: list[tuple[list[int], list[int]]] = []
    for band in range(bands):
        members = [k for k in order if band_of[k] == band]
        pools.append(([k for k in members if belief[k] > 0.5], [k for k in members if belief[k] <= 0.5]))
    chosen: list[int] = []
    while len(chosen) + 2 <= limit and any(right and wrong for right, wrong in pools):
        for right_pool, wrong_pool in pools:
            if right_pool and wrong_pool and len(chosen) + 2 <= limit:
                chosen += [right_pool.pop(), wrong_pool.pop()]
    rng.shuffle(chosen)
    return [candidates[k] for k in chosen]


def counterbalanced_pairs(candidates: Sequence[Any], statistics_of: Callable[[Any], tuple[Any, Any]], limit: int,
                          rng: random.Random, neighbours: int = 8) -> list[Any]:
    """Up to ``limit`` two-option candidates in *counterbalanced couples*: each chosen candidate (right
    picture R, other O) comes with one whose right picture matches O's cheap statistics and whose other
    picture matches R's (nearest neighbours in standardised statistics). Any rule on the pictures'
    statistics — own values, differences, nonlinear — then answers the two members of a couple oppositely,
    so it is right about half the time; the classic control of number studies (a distractor set matched to
    the target set), applied where natural frames cannot be drawn to order. Couples are taken best-matched
    first, each candidate in at most one couple. ``statistics_of(c)``: (R's statistics, O's)."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    if len(candidates) < 2 or limit < 2:
        return []
    pairs = [statistics_of(c) for c in candidates]
    right = np.asarray([pair[0] for pair in pairs], dtype=np.float64)
    other = np.asarray([pair[1] for pair in pairs], dtype=np.float64)
    pooled = np.concatenate([right, other])
    centre, scale = pooled.mean(axis=0), np.where(pooled.std(axis=0) > 0, pooled.std(axis=0), 1.0)
    right, other = (right - centre) / scale, (other - centre) / scale
    keys, mirrored = np.concatenate([right, other], axis=1), np.concatenate([other, right], axis=1)
    count = min(neighbours + 1, len(candidates))
    distances, found = NearestNeighbors(n_neighbors=count).fit(keys).kneighbors(mirrored)
    couples = sorted((float(d), k, int(j)) for k in range(len(candidates))
                     for d, j in zip(distances[k], found[k], strict=True) if j != k)
    used: set[int] = set()
    chosen: list[int] = []
    for _, k, j in couples:
        if len(chosen) + 2 > limit:
            break
        if k not in used and j not in used:
            used.update((k, j))
            chosen += [k, j]
    rng.shuffle(chosen)
    return [candidates[k] for k in chosen]


def _two_folds(order: list[int], groups: list[Hashable] | None, rng: random.Random) -> tuple[list[int], list[int]]:
    """``order`` halved: alternately, or (with ``groups``, one per entry of ``order``) whole groups to the
    smaller half, so that no group is on both sides (one group only: alternately)."""
    if groups is None or len(set(groups)) < 2:
        return order[0::2], order[1::2]
    members: dict[Hashable, list[int]] = {}
    for index, group in zip(order, groups, strict=True):
        members.setdefault(group, []).append(index)
    keys = sorted(members, key=str)
    rng.shuffle(keys)
    halves: tuple[list[int], list[int]] = ([], [])
    for key in sorted(keys, key=lambda k: len(members[k]), reverse=True):
        min(halves, key=len).extend(members[key])
    return halves


def stratified_pick(candidates: Sequence[Any], answer_of: Callable[[Any], Hashable],
                    parts_of: Callable[[Any], Sequence[float]], features_of: Callable[[Any], Any], limit: int,
                    rng: random.Random, bins: int = 4, keep: float = 0.5) -> list[Any]:
    """Up to ``limit`` candidates chosen so that cheap features say nothing of an answer with several parts
    (a quadrant's row and column): for each part, a least-squares fit on the standardised features and
    their squares ranks the candidates into ``bins`` quantile bins; each cell of those bins' product gives as
    many candidates of every answer as its rarest answer has (none where one is missing), and those are
    taken round-robin over the answers up to ``limit``. A small set, where the cells would keep less than
    ``keep`` of what a plain ``balanced_pick`` keeps, gets fewer bins (down to that plain pick).
    ``decorrelated_pick`` is the one-number case."""
    plain = len(balanced_pick(candidates, answer_of, limit, random.Random(0)))  # its own rng: rng is untouched
    for level in range(bins, 1, -1):
        chosen = _stratified_cells(candidates, answer_of, parts_of, features_of, limit, rng, level)
        if len(chosen) >= keep * plain:
            return chosen
    return balanced_pick(candidates, answer_of, limit, rng)


def _stratified_cells(candidates: Sequence[Any], answer_of: Callable[[Any], Hashable],
                      parts_of: Callable[[Any], Sequence[float]], features_of: Callable[[Any], Any], limit: int,
                      rng: random.Random, bins: int) -> list[Any]:
    import numpy as np

    if not candidates:
        return []
    features = [features_of(c) for c in candidates]
    parts = np.asarray([list(parts_of(c)) for c in candidates], dtype=np.float64)
    cells = np.zeros((len(candidates), parts.shape[1]), dtype=np.int64)
    for column in range(parts.shape[1]):
        predicted = _least_squares_fit(features, parts[:, column], quadratic=True)
        edges = np.quantile(predicted, np.linspace(0, 1, bins + 1)[1:-1])
        cells[:, column] = np.searchsorted(edges, predicted, side="right")
    by_cell: dict[tuple[int, ...], list[Any]] = {}
    for candidate, cell in zip(candidates, cells, strict=True):
        by_cell.setdefault(tuple(int(v) for v in cell), []).append(candidate)
    answers = sorted({answer_of(c) for c in candidates}, key=str)
    pooled: list[Any] = []
    for cell in sorted(by_cell):
        pools: dict[Hashable, list[Any]] = {answer: [] for answer in answers}
        for candidate in by_cell[cell]:
            pools[answer_of(candidate)].append(candidate)
        take = min(len(pool) for pool in pools.values())  # a cell short of any answer gives none: it would tell it
        for answer in answers:
            rng.shuffle(pools[answer])
            pooled += pools[answer][:take]
    return balanced_pick(pooled, answer_of, limit, rng)


def _least_squares_fit(features: Sequence[Any], target: Any, quadratic: bool) -> Any:
    """What a least-squares fit of ``target`` on the standardised features (and, with ``quadratic``, their
    squares) predicts for each row: the linear part of what a probe could read from them."""
    import numpy as np

    x = np.asarray(features, dtype=np.float64)
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    ones = np.ones(len(x))
    design = np.column_stack([x, x ** 2, ones] if quadratic else [x, ones])
    return design @ np.linalg.lstsq(design, np.asarray(target, dtype=np.float64), rcond=None)[0]


def decorrelated_pick(candidates: Sequence[Any], answer_of: Callable[[Any], float], features_of: Callable[[Any], Any],
                      limit: int, rng: random.Random, bins: int = 5, per_answer: int | None = None,
                      quadratic: bool = False) -> list[Any]:
    """Up to ``limit`` candidates chosen so that cheap features say nothing of the answer: a least-squares
    fit of the answer on the (standardised) features — with ``quadratic`` also their squares, for answers
    told by an extreme or a middling value — ranks the candidates, and within each of ``bins`` quantile
    bins of that prediction the answers are taken round-robin (``balanced_pick``); ``per_answer`` caps how
    many items any one answer gets."""
    import numpy as np

    if not candidates:
        return []
    y = np.asarray([float(answer_of(c)) for c in candidates])
    predicted = _least_squares_fit([features_of(c) for c in candidates], y, quadratic)
    order = np.argsort(predicted, kind="stable")
    groups = [list(part) for part in np.array_split(order, bins)]
    share = -(-limit // bins)
    chosen: list[Any] = []
    taken: Counter = Counter()
    for group in groups:
        pool = [candidates[k] for k in group
                if per_answer is None or taken[answer_of(candidates[k])] < per_answer]
        picked = balanced_pick(pool, answer_of, share, rng, until_one_left=True)
        for candidate in picked:
            if per_answer is None or taken[answer_of(candidate)] < per_answer:
                chosen.append(candidate)
                taken[answer_of(candidate)] += 1
    rng.shuffle(chosen)
    return chosen[:limit]
