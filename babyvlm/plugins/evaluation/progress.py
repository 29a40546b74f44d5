"""The resume log: one JSON line per finished item, appended, flushed and fsynced as items finish.

``OUT/progress/rank<k>.jsonl`` per process (each process appends only to its own file, so several
processes never share a file); on start every rank file is read, whatever the number of processes was,
so a run resumes under any ``--nproc-per-node``. A record's key is (task fingerprint, domain, item id,
item content hash, adapter fingerprint): a changed model, task, item or mode has another key and is
never mixed with old results. A line cut short by a kill (no newline) is counted, dropped, and cut
from the file before appending, so a torn line never glues onto the next record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from babyvlm.core.records import SkipReport

PROGRESS_FOLDER = "progress"
Key = tuple[str, str, str, str, str]


def record_key(record: Mapping[str, Any]) -> Key:
    key = record["key"]
    return (str(key[0]), str(key[1]), str(key[2]), str(key[3]), str(key[4]))


class ProgressLog:
    """Append-only per-rank JSONL of finished items under ``OUT/progress``."""

    def __init__(self, out_dir: str | os.PathLike, rank: int = 0):
        self.folder = Path(out_dir) / PROGRESS_FOLDER
        self.path = self.folder / f"rank{rank}.jsonl"
        self.report = SkipReport()

    def read_all(self) -> dict[Key, dict[str, Any]]:
        """Every complete record of every rank file (the first copy of a key wins)."""
        done: dict[Key, dict[str, Any]] = {}
        self.report = SkipReport()
        if not self.folder.is_dir():
            return done
        for path in sorted(self.folder.glob("rank*.jsonl")):
            for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    key = record_key(record)
                except (ValueError, KeyError, TypeError, IndexError):
                    self.report.skip("unreadable_progress_line", f"{path.name}:{number}")
                    continue
                done.setdefault(key, record)
        return done

    def repair(self) -> None:
        """Cut this rank's file back to its last complete line (what a kill mid-write leaves)."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        self.report.skip("torn_progress_line", f"{self.path.name} (cut at byte {keep})")

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        lines = b"".join(json.dumps(record, ensure_ascii=False, default=_jsonable).encode() + b"\n"
                         for record in records)
        if not lines:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays, tuples and sets in task extras become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
