"""Eval adapter ``shuffled``: any adapter with each item's images swapped in from another item of the same
task — the control that tells "uses the right image" from "uses any image".

A model that scores the same with shuffled images as with its own uses images only as generic input (or
their distribution); one that drops to its blind baseline needs the item's own pictures. The donor of
each item is fixed by the seed (a cyclic shift of a seeded order of the task's items, so no item keeps its
own images), and a donor with fewer images than the item lends them again in turn; multi-round items
keep their donor across rounds. Needs the engine to show it the items (``see_items``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from babyvlm import registry
from babyvlm.core.contracts import show_items
from babyvlm.core.errors import ConfigError
from babyvlm.core.records import Request, TaskItem
from babyvlm.core.specs import is_spec

ROUND_MARK = "#"  # a task may give the requests of an item's rounds ids "<item id>#round<n>"


class ShuffledAdapter:
    name = "shuffled"

    def __init__(self, adapter: Any = "random", seed: int = 0):
        self.inner = registry.build("eval_adapter", adapter) if is_spec(adapter) else adapter
        self.seed = int(seed)
        self._donors: dict[tuple[str, str], list[bytes]] = {}

    def fingerprint(self) -> str:
        return f"shuffled({self.inner.fingerprint()},seed={self.seed})"

    def see_items(self, task_name: str, items: Sequence[TaskItem], task: Any = None, mode: str = "generate") -> None:
        order = sorted(items, key=lambda item: item.item_id)
        random.Random(f"shuffled:{self.seed}:{task_name}").shuffle(order)
        for position, item in enumerate(order):
            donor = order[(position + 1) % len(order)]
            self._donors[(task_name, item.item_id)] = list(donor.images)
        show_items(self.inner, task_name, items, task=task, mode=mode)

    def swapped(self, requests: Sequence[Request]) -> list[Request]:
        """The requests as the inner adapter receives them."""
        return [replace(r, images=self._images(r)) for r in requests]

    def _images(self, request: Request) -> list[bytes]:
        item_id = request.item_id.split(ROUND_MARK, 1)[0]
        donor = self._donors.get((request.task, item_id))
        if donor is None:
            raise ConfigError(f"eval adapter 'shuffled': {request.task} item {item_id!r} was not shown to it; "
                              f"it needs the evaluator's see_items (use it through `babyvlm eval`)")
        if not donor:
            return []
        return [donor[k % len(donor)] for k in range(len(request.images))]

    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        return self.inner.generate_until(self.swapped(requests))

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        return self.inner.loglikelihood(self.swapped(requests))

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        return self.inner.generate_until_multi_round(self.swapped(requests))
