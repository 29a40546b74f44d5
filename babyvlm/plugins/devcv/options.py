"""Seeded randomness for the builders and the scorers: per-task generators, option shuffling with
balanced gold positions, balanced answer selection, and the tie-break drawn from the item id.

Everything uses ``random.Random`` seeded from strings (stable across Python versions and processes, unlike
``hash()``), so the same seed builds byte-identical files.
"""

from __future__ import annotations

import hashlib
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


def place_gold(gold: T, distractors: Sequence[T], position: int, rng: random.Random) -> list[T]:
    """The distractors in a seeded order with ``gold`` inserted at ``position``."""
    others = list(distractors)
    rng.shuffle(others)
    return others[:position] + [gold] + others[position:]


def balanced_pick(candidates: Sequence[Any], answer_of: Callable[[Any], Hashable], limit: int,
                  rng: random.Random, until_one_left: bool = True) -> list[Any]:
    """Up to ``limit`` candidates taken round-robin over their answers (each answer's pool shuffled), so a
    skewed supply gives as flat an answer distribution as it allows. ``until_one_left``: stop when a single
    answer still has candidates, rather than filling up with it (a constant answer must not win)."""
    pools: dict[Hashable, list[Any]] = {}
    for candidate in candidates:
        pools.setdefault(answer_of(candidate), []).append(candidate)
    for answer in sorted(pools, key=str):
        rng.shuffle(pools[answer])
    order = sorted(pools, key=str)
    chosen: list[Any] = []
    while len(chosen) < limit and sum(bool(pool) for pool in pools.values()) > (1 if until_one_left and len(pools) > 1 else 0):
        for answer in order:
            if pools[answer] and len(chosen) < limit:
                chosen.append(pools[answer].pop())
    rng.shuffle(chosen)
    return chosen


def least_used(options: Sequence[T], used: Counter) -> T:
    """The option used least so far (first in ``options`` among equals)."""
    return min(options, key=lambda option: used[option])
