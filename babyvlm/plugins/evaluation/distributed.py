"""Multi-process evaluation under ``torchrun``: which items this process answers, and the meeting points.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) a gloo process group is started; each rank
answers every ``world``-th item still to do (after resume), writes its own progress file, and rank 0
merges all of them once every rank has finished. Without ``torchrun`` everything is a no-op.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, TypeVar

from babyvlm.core.ranks import process_rank

T = TypeVar("T")


class Processes:
    """This process's rank and the world size; ``barrier``/``share`` are no-ops for one process."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = process_rank()
        self.started_group = False
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo")
                self.started_group = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        return list(items[self.rank::self.world])

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def share(self, value: Any) -> Any:
        """Rank 0's JSON-serialisable ``value`` on every rank (sent as JSON text, never as pickled objects)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [json.dumps(value) if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return json.loads(box[0])

    def gather_errors(self, error: str | None) -> list[str]:
        """Every rank's error message (None where it succeeded), so all ranks stop together."""
        if self.world == 1:
            return [error] if error else []
        import torch.distributed as dist

        errors: list[str | None] = [None] * self.world
        dist.all_gather_object(errors, error)
        return [e for e in errors if e]

    def close(self) -> None:
        if self.started_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started_group = False
