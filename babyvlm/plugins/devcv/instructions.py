"""LLaVA-JSON instruction sets from built train splits, for training phase 3.

Mixed (one ``devcv_instructions_<split>.json``, items of every task shuffled with a seed) or per task
(``devcv_instructions_<short>_<split>.json``), written beside the task files so image paths stay relative
(``images/...``). Looking While Listening and Subitizing are held out by default, as in the paper.
Records: ``{"id", "image": [paths], "conversations": [...], "task"}``. ``easy_match=N`` adds N easy
match-to-sample items to every task whose items have that shape (``easy_match.py``), in files named
``devcv_instructions_easy<N>_<split>.json`` (``..._<short>_easy<N>_<split>.json`` per task), beside the plain ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_text, load_json
from babyvlm.plugins.devcv.easy_match import add_easy_items
from babyvlm.plugins.devcv.itemio import dumps, item_file


def write_instructions(folder: str | Path, tasks: Sequence[str] = (), split: str = "train", per_task: bool = False,
                       include_held_out: bool = False, seed: int = 0, easy_match: int = 0,
                       log: Callable[[str], None] = print) -> list[Path]:
    import babyvlm

    folder = Path(folder)
    chosen = {}
    for name in tasks or babyvlm.registry.names("task"):  # the registry is the only task list
        task = babyvlm.build("task", name)
        if task.held_out and not include_held_out and not tasks:
            continue
        if split not in task.builds_splits:
            log(f"instructions: {name} has no {split} split (held out), left out")
            continue
        path = item_file(folder, task.short, split)
        if not path.is_file():
            log(f"instructions: {path.name} not built, left out")
            continue
        chosen[task.short] = [{"id": r["id"], "image": r["image"], "conversations": r["conversations"], "task": name}
                              for r in load_json(path)]
    if not chosen:
        raise DataError(f"{folder}: no {split} task files to make instructions from")
    chosen = add_easy_items(chosen, easy_match, seed, log)
    easy = f"easy{easy_match}_" if easy_match else ""
    if per_task:
        return [atomic_write_text(folder / f"devcv_instructions_{short}_{easy}{split}.json", dumps(records))
                for short, records in chosen.items()]
    mixed = [record for records in chosen.values() for record in records]
    random.Random(f"devcv-instructions:{seed}").shuffle(mixed)
    log(f"instructions: {len(mixed)} items from {', '.join(chosen)}")
    return [atomic_write_text(folder / f"devcv_instructions_{easy}{split}.json", dumps(mixed))]
