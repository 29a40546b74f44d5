"""``ResumableSampler``: an endless, seeded index stream that shards across processes and restarts at
any position without reading the data it skips (exact resume, including data order).

Global draw ``g`` walks the permutations ``perm(seed, pass)`` of the dataset; process ``r`` of ``W``
with per-process batch ``b`` takes draws ``(k*W + r)*b .. +b`` for its k-th batch, so W processes at
batch b see exactly the samples 1 process sees at batch W*b, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ResumableSampler(torch.utils.data.Sampler):
    def __init__(self, size: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 with_draw: bool = False):
        self.size, self.batch_size, self.seed, self.shuffle = size, batch_size, seed, shuffle
        self.with_draw = with_draw  # yield (index, global draw) so augmentations can be keyed by the draw
        self.position = 0  # local draws already consumed
        self._cached: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.size

    def set_position(self, local_draws: int) -> None:
        self.position = int(local_draws)

    def state_dict(self) -> dict[str, Any]:
        rank, world = _dist_info()
        return {"position": self.position, "seed": self.seed, "size": self.size, "batch_size": self.batch_size,
                "world_size": world}

    def _order(self, epoch: int) -> torch.Tensor:
        if self._cached is None or self._cached[0] != epoch:
            if self.shuffle:
                order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
            else:
                order = torch.arange(self.size)
            self._cached = (epoch, order)
        return self._cached[1]

    def __iter__(self) -> Iterator[Any]:
        rank, world = _dist_info()
        local = self.position
        while True:
            batch, offset = divmod(local, self.batch_size)
            draw = (batch * world + rank) * self.batch_size + offset
            epoch, slot = divmod(draw, self.size)
            index = int(self._order(epoch)[slot])
            local += 1
            yield (index, draw) if self.with_draw else index
