"""The DevCV task sets as a ``task_builder`` component (``contracts.TaskBuilder``): what a run's task
stage calls, the typed Python face of ``babyvlm tasks build`` and ``babyvlm tasks instructions``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from babyvlm.core.contracts import Log
from babyvlm.core.records import TaskBuildRequest, TaskBuildResult

DEFAULT_MAX_ITEMS = 200  # items per task and split, as `babyvlm tasks build --max-items` defaults


class DevCVTaskBuilder:
    """Builds one domain's DevCV item files (``runner.build_tasks``) and the instruction files of its
    train split (``instructions.write_instructions``)."""

    def build(self, request: TaskBuildRequest, log: Log = print) -> TaskBuildResult:
        from babyvlm.core.specs import spec_dict
        from babyvlm.plugins.devcv.runner import BuildRequest, build_tasks

        source = spec_dict(request.source, "task build source")
        max_items = DEFAULT_MAX_ITEMS if request.max_items is None else request.max_items
        manifest = build_tasks(BuildRequest(
            source=source["type"], root=request.root, out=request.out, domain=request.domain,
            tasks=tuple(request.tasks), splits=tuple(request.splits), seed=request.seed,
            source_options={k: v for k, v in source.items() if k != "type"},
            task_options={"max_items": max_items, **request.task_options},
            split_fractions=dict(request.split_fractions), domain_splits=tuple(request.domain_splits)), log=log)
        folder = Path(request.out) / request.domain
        written: list[Path] = []
        if request.instructions and "train" in (request.splits or request.domain_splits):
            written = self.write_instructions(folder, log=log, seed=request.seed)
        return TaskBuildResult(folder=folder, split_of=dict(manifest.get("split_of", {})), instructions=written)

    def write_instructions(self, folder: str | os.PathLike, log: Log = print, **options: Any) -> list[Path]:
        """LLaVA-JSON instruction files from a built folder; ``options`` as ``write_instructions`` takes
        them (``tasks``, ``split``, ``per_task``, ``include_held_out``, ``seed``, ``easy_match``)."""
        from babyvlm.plugins.devcv.instructions import write_instructions

        return write_instructions(folder, log=log, **options)
