"""A resumable, deterministic, DDP-aware sampler and a loader that reports exactly what it consumed.

``ResumableSampler`` shuffles with a generator seeded by ``(seed, epoch)``, so every rank computes
the same permutation; rank ``r`` of ``w`` takes positions ``r, r + w, ...``. Every rank gets equally
many samples — otherwise the rank with one more step waits forever in its all-reduce: by default the
permutation is padded by repeating its start (like ``torch.utils.data.DistributedSampler``), so the
ranks together cover the epoch and a few samples appear twice; ``drop_last`` trims the tail instead
(disjoint ranks, a few samples left out). Its state is ``{epoch, seed, position}``. A DataLoader with workers pulls indices ahead of what the training loop
has consumed, so take the state from ``ResumableLoader.state_dict()``, which counts delivered
samples: restoring it yields exactly the samples not yet delivered, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any

import torch

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.pretraining_set.dataset import collate_samples


class ResumableSampler(torch.utils.data.Sampler[int]):
    def __init__(self, data: Sized | int, *, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, drop_last: bool = False):
        self.num_samples = data if isinstance(data, int) else len(data)
        if rank is None or world_size is None:
            rank, world_size = _distributed_rank_and_size()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"sampler: rank {rank} is not in 0..{world_size - 1}")
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0

    def _total(self) -> int:
        """Samples all ranks draw together: a multiple of the world size (trimmed or padded)."""
        if self.drop_last:
            return self.num_samples - self.num_samples % self.world_size
        return -(-self.num_samples // self.world_size) * self.world_size

    def __len__(self) -> int:
        """Samples this rank draws per epoch (the same on every rank)."""
        return self._total() // self.world_size

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``: the same on every run and every rank's shard of one permutation."""
        if self.shuffle:
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            permutation = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            permutation = list(range(self.num_samples))
        total = self._total()
        while permutation and len(permutation) < total:  # padding may exceed the data (tiny sets, many ranks)
            permutation += permutation[: total - len(permutation)]
        return permutation[:total][self.rank:: self.world_size]

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def __iter__(self) -> Iterator[int]:
        epoch, order = self.epoch, self.order(self.epoch)
        for position in range(self.position, len(order)):
            self.position = position + 1
            yield order[position]
        self.epoch, self.position = epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "position": self.position, "num_samples": self.num_samples,
                "rank": self.rank, "world_size": self.world_size, "shuffle": self.shuffle, "drop_last": self.drop_last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("seed", "num_samples", "world_size", "shuffle", "drop_last"):
            if name in state and state[name] != getattr(self, name):
                raise ConfigError(f"sampler state: {name} is {state[name]!r} in the saved state but "
                                  f"{getattr(self, name)!r} here; resume with the same data and settings")
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise ConfigError(f"sampler state: position {position} outside 0..{len(self)}")
        self.epoch, self.position = int(state["epoch"]), position


def _distributed_rank_and_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ResumableLoader:
    """A DataLoader over a ``ResumableSampler`` whose ``state_dict`` counts samples actually delivered."""

    def __init__(self, dataset: torch.utils.data.Dataset, sampler: ResumableSampler, *, batch_size: int,
                 num_workers: int = 0, collate_fn: Callable[[list], Any] = collate_samples, **loader_options: Any):
        self.dataset, self.sampler = dataset, sampler
        self.batch_size, self.num_workers = batch_size, num_workers
        self.collate_fn, self.loader_options = collate_fn, loader_options
        self.epoch, self.position = sampler.epoch, sampler.position

    def __len__(self) -> int:
        remaining = len(self.sampler) - self.position
        return -(-remaining // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        # the sampler may have run ahead of the last loop (prefetching): rewind it to what was delivered
        self.sampler.epoch, self.sampler.position = self.epoch, self.position
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                                             num_workers=self.num_workers, collate_fn=self.collate_fn,
                                             **self.loader_options)
        epoch = self.epoch
        for batch in loader:
            self.position += _batch_length(batch)
            yield batch
        self.epoch, self.position = epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        state = self.sampler.state_dict()
        state.update(epoch=self.epoch, position=self.position)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        self.epoch, self.position = self.sampler.epoch, self.sampler.position


def _batch_length(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = next(iter(batch.values()))
    return len(batch)
