"""A real small disk for full-disk tests: a tmpfs of a given size, mounted where the test says (root or
CAP_SYS_ADMIN needed; the test is skipped otherwise) and unmounted afterwards; ``grow`` remounts it
larger, as a person freeing space would."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("mounting a tmpfs needs root (or CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def grow(folder: Path, size: str = "16m") -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
