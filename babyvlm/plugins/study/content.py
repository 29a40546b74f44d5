"""What a study shows: the tasks' items in a task folder, the screens of each, the subset every
participant sees and each participant's seeded order.

Every participant sees the same items (``items_per_task`` per task, drawn once with the study seed) so
their answers can be compared item by item; the order is per participant: the task blocks are shuffled
and the items inside each block, from a seed derived from the study seed and the participant id. A
multi-screen item (Memory's 15 rounds) keeps its screens together and in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.records import TaskItem
from babyvlm.plugins.study.stimuli import Screen, screens_for


@dataclass
class StudyItem:
    task: str
    item: TaskItem
    screens: list[Screen]


class StudyContent:
    """The items and screens of a study over ``tasks_dir`` (one domain folder of DevCV item files)."""

    def __init__(self, tasks_dir: str | os.PathLike, tasks: Sequence[str], items_per_task: int | None = 10,
                 split: str = "test", seed: int = 0):
        self.tasks_dir, self.split, self.seed = Path(tasks_dir), split, seed
        if not self.tasks_dir.is_dir():
            raise ConfigError(f"{self.tasks_dir}: not a folder of task items")
        if items_per_task is not None and items_per_task < 1:
            raise ConfigError(f"--items-per-task must be >= 1, got {items_per_task}")
        if not tasks:
            raise ConfigError("no tasks named; pass --tasks baby_pv,baby_memory,... (see `babyvlm tasks list`)")
        self.items_per_task = items_per_task
        self.tasks = {name: registry.build("task", name) for name in tasks}
        self.items: dict[str, list[StudyItem]] = {name: self._select(name, task) for name, task in self.tasks.items()}
        self.by_id = {(entry.task, entry.item.item_id): entry for entries in self.items.values() for entry in entries}

    def _select(self, name: str, task: Any) -> list[StudyItem]:
        items = list(task.load(self.tasks_dir, self.split))
        if not items:
            raise DataError(f"{self.tasks_dir}: task {name} has no {self.split} items")
        if len({item.item_id for item in items}) != len(items):
            raise DataError(f"{self.tasks_dir}: task {name} has duplicate item ids")
        chosen = sorted(range(len(items)), key=lambda i: items[i].item_id)
        random.Random(f"{self.seed}:{name}").shuffle(chosen)
        chosen = sorted(chosen[: self.items_per_task] if self.items_per_task else chosen)
        for index in chosen:
            _check_images(self.tasks_dir, name, items[index])
        return [StudyItem(name, items[i], screens_for(task, items[i])) for i in chosen]

    def settings(self) -> dict[str, Any]:
        """What the database is bound to: a resumed study must show the same items."""
        digest = hashlib.sha256()
        for name, entries in self.items.items():
            for entry in entries:
                digest.update(json.dumps([name, entry.item.item_id, entry.item.answer,
                                          [s.to_dict() for s in entry.screens]], sort_keys=True).encode())
                for image in entry.item.images:
                    digest.update(hashlib.sha256(image).digest())
        return {"tasks_dir": str(self.tasks_dir.resolve()), "tasks": list(self.tasks), "split": self.split,
                "items_per_task": self.items_per_task, "seed": self.seed, "fingerprint": digest.hexdigest()[:24]}

    def order_for(self, participant_id: str) -> tuple[int, list[list[Any]]]:
        """(seed, ``[[task, item_id, screen], ...]``) for one participant."""
        seed = int(hashlib.sha256(f"{self.seed}:{participant_id}".encode()).hexdigest()[:8], 16)
        rng = random.Random(seed)
        blocks = list(self.items)
        rng.shuffle(blocks)
        order: list[list[Any]] = []
        for name in blocks:
            entries = list(self.items[name])
            rng.shuffle(entries)
            for entry in entries:
                order += [[name, entry.item.item_id, screen] for screen in range(len(entry.screens))]
        return seed, order

    def entry(self, task: str, item_id: str) -> StudyItem | None:
        return self.by_id.get((task, item_id))

    def total_trials(self) -> int:
        return sum(len(entry.screens) for entries in self.items.values() for entry in entries)


def _check_images(tasks_dir: Path, task: str, item: TaskItem) -> None:
    """Every stimulus decodes (``media.decode_image``: a corrupt file or a decompression bomb is refused
    here, naming task, item and file, rather than sent to participants' browsers)."""
    from babyvlm.media import decode_image

    paths = item.extras.get("image_paths") or []
    for number, data in enumerate(item.images):
        file = paths[number] if number < len(paths) else f"image {number + 1}"
        decode_image(data, f"{tasks_dir}: task {task} item {item.item_id!r}: {file}")
