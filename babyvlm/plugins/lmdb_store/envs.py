"""LMDB environments: one shared read-only handle per shard per process, and the writer's handle.

py-lmdb refuses to open the same environment twice in a process, and a forked DataLoader worker
inherits its parent's handles (which LMDB forbids using after fork). So every reader in a process
goes through ``reader()``: handles are shared, and a process that finds inherited ones closes them
(which only affects itself) and opens its own. A writer first releases this process's reader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lmdb

from babyvlm.core.errors import DataError

MAX_DBS = 4
_readers: dict[str, tuple[lmdb.Environment, dict[bytes, Any]]] = {}
_real_paths: dict[str, str] = {}  # path as given -> resolved path (resolving costs syscalls per read)
_readers_pid = os.getpid()


def _own_readers() -> dict[str, tuple[lmdb.Environment, dict[bytes, Any]]]:
    global _readers_pid
    if _readers_pid != os.getpid():
        for env, _ in _readers.values():
            try:
                env.close()
            except lmdb.Error:
                pass
        _readers.clear()
        _readers_pid = os.getpid()
    return _readers


def reader(path: Path, db_name: bytes) -> tuple[lmdb.Environment, Any]:
    """This process's read-only handle on a finished shard (``readonly=True, lock=False``) and a named DB."""
    readers = _own_readers()
    given = str(path)
    key = _real_paths.get(given)
    if key is None:
        key = _real_paths[given] = os.path.realpath(path)
    if key not in readers:
        if not (Path(path) / "data.mdb").is_file():
            raise DataError(f"{path}: shard data missing (no data.mdb)")
        try:
            env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=MAX_DBS, readahead=False, subdir=True)
        except lmdb.Error as exc:
            raise DataError(f"{path}: unreadable shard ({exc})") from exc
        readers[key] = (env, {})
    env, dbs = readers[key]
    if db_name not in dbs:
        try:
            dbs[db_name] = env.open_db(db_name, create=False)
        except lmdb.Error as exc:
            raise DataError(f"{path}: shard has no {db_name.decode()!r} table ({exc})") from exc
    return env, dbs[db_name]


def release_reader(path: Path) -> None:
    entry = _own_readers().pop(os.path.realpath(path), None)
    if entry is not None:
        entry[0].close()


def open_writer_env(path: Path, map_size: int) -> lmdb.Environment:
    release_reader(path)
    path.mkdir(parents=True, exist_ok=True)
    return lmdb.open(str(path), map_size=map_size, max_dbs=MAX_DBS, subdir=True, meminit=False)
