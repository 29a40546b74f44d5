"""Where the Triton kernels may run, and the launch heuristics they share.

Kernels run on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` (the CPU interpreter used
by the tests). Anything else takes each module's PyTorch reference path, so a patched model still
works on CPU before it is moved to the GPU.
"""

from __future__ import annotations

import functools
import os

import torch


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (read at call time, as triton does)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def kernels_can_run(*tensors: torch.Tensor) -> bool:
    """Whether the Triton path can take these tensors (all on CUDA, or the interpreter is on)."""
    if interpreting():
        return all(t.device.type == "cpu" for t in tensors)
    return all(t.is_cuda for t in tensors)


def next_power_of_2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def warps_for_block(block: int) -> int:
    """More warps for wider rows so each thread holds ~8-16 elements (registers, not spills)."""
    if block >= 16384:
        return 16
    if block >= 4096:
        return 8
    if block >= 1024:
        return 4
    return 2


@functools.lru_cache(maxsize=8)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def persistent_programs(device: torch.device, work_items: int, per_sm: int = 4) -> int:
    """Programs for a grid-stride kernel: a few per SM on a GPU, a handful in the interpreter."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return max(1, min(work_items, _sm_count(index) * per_sm))
    return max(1, min(work_items, 4))
