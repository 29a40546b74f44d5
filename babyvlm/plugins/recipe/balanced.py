"""``TaskBalancedDataset``: one map-style dataset over several tasks' samples in which every task gets
the same share of draws, whatever its size.

Why: mixed instruction tuning from scratch drawn in proportion to task size lets the big tasks (and their
answer priors) dominate, and a tiny model then sits on the answer-prior plateau. Balancing the draw is
done in the dataset's index space, so it works under any sampler that draws indices uniformly
(a shuffled permutation, ``ResumableSampler``, a DDP sampler) and keeps exact resume: index ``i`` maps
to task ``i % T`` and to that task's sample ``perm_t[(i // T) % n_t]``, a fixed seeded permutation per
task. One pass over the dataset (``len`` = ``T * per_task``) holds ``per_task`` draws of every task;
a small task repeats, a large one is subsampled differently on each pass of the permutation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from babyvlm.core.errors import ConfigError, DataError


class TaskBalancedDataset:
    """``{task: samples}`` -> a dataset of ``len(tasks) * per_task`` indices, tasks interleaved evenly.

    ``per_task`` defaults to the largest task's size (every sample of every task appears in one pass).
    ``weights`` (optional, ``{task: w}``) gives task ``t`` a share proportional to ``w`` instead of an
    equal one, by repeating it in the interleaving order (integers >= 1).
    """

    def __init__(self, samples: Mapping[str, Sequence[Any]], per_task: int | None = None, seed: int = 0,
                 weights: Mapping[str, int] | None = None):
        if not isinstance(samples, Mapping) or not samples:
            raise ConfigError("TaskBalancedDataset needs a non-empty mapping {task name: samples}")
        empty = sorted(name for name, items in samples.items() if len(items) == 0)
        if empty:
            raise DataError(f"TaskBalancedDataset: task(s) {', '.join(empty)} have no samples; drop them from the "
                            "mix or build their items first")
        if per_task is not None and (not isinstance(per_task, int) or per_task < 1):
            raise ConfigError(f"TaskBalancedDataset: per_task must be an integer >= 1, got {per_task!r}")
        self.tasks = sorted(samples)
        self.samples = {name: samples[name] for name in self.tasks}
        self.slots = self._slots(weights or {})
        self.per_task = per_task or max(len(items) for items in self.samples.values())
        self.seed = seed
        self._orders = {name: self._order(name) for name in self.tasks}

    def _slots(self, weights: Mapping[str, int]) -> list[str]:
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown:
            raise ConfigError(f"TaskBalancedDataset: weights name unknown task(s) {', '.join(unknown)}; "
                              f"tasks are {', '.join(self.tasks)}")
        slots = []
        for name in self.tasks:
            weight = weights.get(name, 1)
            if not isinstance(weight, int) or weight < 1:
                raise ConfigError(f"TaskBalancedDataset: weight of {name!r} must be an integer >= 1, got {weight!r}")
            slots += [name] * weight
        return slots

    def _order(self, name: str) -> list[int]:
        order = list(range(len(self.samples[name])))
        # string seeds are hashed deterministically (sha512), unlike hash(), which varies per process
        random.Random(f"{self.seed}:{name}").shuffle(order)
        return order

    def __len__(self) -> int:
        return len(self.slots) * self.per_task

    def locate(self, index: int) -> tuple[str, int]:
        """``(task, position in that task's samples)`` of a dataset index."""
        if not 0 <= index < len(self):
            raise IndexError(f"TaskBalancedDataset index {index} out of range 0..{len(self) - 1}")
        name = self.slots[index % len(self.slots)]
        draw = index // len(self.slots)
        order = self._orders[name]
        return name, order[draw % len(order)]

    def __getitem__(self, index: int) -> Any:
        name, position = self.locate(index)
        return self.samples[name][position]

    def shares(self) -> dict[str, float]:
        """Each task's share of the draws in one pass."""
        return {name: self.slots.count(name) / len(self.slots) for name in self.tasks}


def balanced_records(records: Sequence[Mapping[str, Any]], per_task: int | None = None, seed: int = 0,
                     key: str = "task", where: str = "instructions") -> list[dict[str, Any]]:
    """A mixed LLaVA instruction set (records with a ``task`` field) rewritten as one balanced pass.

    For pipelines that draw uniformly from a file (phase 3's ``data=dict(llava_json=PATH)``): every task
    appears ``per_task`` times (default: the largest task's count), small tasks repeated with ids
    suffixed ``#r<k>`` so ids stay unique; the order interleaves tasks, then is shuffled with ``seed``.
    """
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for number, record in enumerate(records):
        task = record.get(key) if isinstance(record, Mapping) else None
        if not isinstance(task, str) or not task:
            raise DataError(f"{where}: record {number} has no {key!r} string, so it cannot be balanced by task")
        grouped.setdefault(task, []).append(record)
    dataset = TaskBalancedDataset(grouped, per_task=per_task, seed=seed)
    seen: dict[str, int] = {}
    out = []
    for index in range(len(dataset)):
        record = dict(dataset[index])
        rid = str(record.get("id", index))
        seen[rid] = seen.get(rid, 0) + 1
        if seen[rid] > 1:
            record["id"] = f"{rid}#r{seen[rid]}"
        out.append(record)
    random.Random(seed).shuffle(out)
    return out
