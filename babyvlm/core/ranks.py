"""Which process of a multi-process (``torchrun``) job this is, read from the launcher's environment
once here, so "only rank 0 writes" means the same everywhere."""

from __future__ import annotations

import os


def process_rank() -> int:
    """This process's global rank (``RANK``; 0 when not launched by a distributed launcher)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Rank 0: the process that writes shared files."""
    return process_rank() == 0
