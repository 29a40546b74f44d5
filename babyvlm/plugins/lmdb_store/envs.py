"""LMDB environments: one shared read-only handle per shard per process, and the writer's handle.

py-lmdb refuses to open the same environment twice in a process, and a forked DataLoader worker
inherits its parent's handles (which LMDB forbids using after fork). So every reader in a process
goes through ``reader()``: handles are shared, and a process that finds inherited ones closes them
(which only affects itself) and opens its own. A writer first releases this process's reader.

Before any environment is mapped, ``check_data_file`` compares ``data.mdb``'s size with what LMDB's own
meta pages say it holds: a truncated file would otherwise be mapped and die with SIGBUS on the first
read past its end, printing nothing. ``shard_folder`` keeps shard paths inside their store.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import lmdb

from babyvlm.core.errors import DataError
from babyvlm.core.io import regular_file

DATA_FILE = "data.mdb"
# LMDB's file layout (lmdb 0.9, 64-bit little-endian): pages 0 and 1 are meta pages; each starts with
# a 16-byte page header, then the meta: magic, version, address, map size, two 48-byte DB records (the
# first one's leading field is the page size), the last used page number and the transaction id.
LMDB_MAGIC = 0xBEEFC0DE
_MAGIC_AT, _PAGE_SIZE_AT, _LAST_PAGE_AT, _META_END = 16, 40, 136, 152

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
        if not (Path(path) / DATA_FILE).exists():
            raise DataError(f"{path}: shard data missing (no {DATA_FILE})")
        check_data_file(Path(path))
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
    if (path / DATA_FILE).exists() and (path / DATA_FILE).stat().st_size > 0:  # empty: LMDB starts it afresh
        check_data_file(path, hint="delete this shard folder and rerun the build to redo it")
    try:
        return lmdb.open(str(path), map_size=map_size, max_dbs=MAX_DBS, subdir=True, meminit=False)
    except lmdb.Error as exc:
        raise DataError(f"{path}: cannot open the shard for writing ({exc})") from exc


def check_data_file(folder: Path, hint: str = "rebuild the shard, or restore it from a copy") -> None:
    """Refuse a ``data.mdb`` that is not a regular file, is not LMDB, or is shorter than its meta pages say.

    Mapping a truncated file is what turns a damaged shard into a SIGBUS; reading the two meta pages
    with plain file reads first makes it a ``DataError`` naming the shard.
    """
    path = regular_file(folder / DATA_FILE, f"{folder}: {DATA_FILE}")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        first = handle.read(_META_END)
        if len(first) < _META_END or struct.unpack_from("<I", first, _MAGIC_AT)[0] != LMDB_MAGIC:
            problem = f"only {size} bytes" if len(first) < _META_END else "no LMDB header"
            raise DataError(f"{folder}: {DATA_FILE} is not a complete LMDB file ({problem}); the shard is damaged: {hint}")
        page_size = struct.unpack_from("<I", first, _PAGE_SIZE_AT)[0]
        handle.seek(page_size)
        second = handle.read(_META_END)
    metas = [first] + ([second] if len(second) == _META_END else [])
    needed = _pages_in_use(metas, page_size)
    if page_size < 512 or size < 2 * page_size or size < needed:
        raise DataError(f"{folder}: {DATA_FILE} is truncated ({size} bytes; its LMDB header says "
                        f"{max(needed, 2 * page_size)}); the shard is damaged: {hint}")


def _pages_in_use(metas: list[bytes], page_size: int) -> int:
    """Bytes the newest valid meta page says the file holds ((last page + 1) * page size)."""
    best_txn, best_last = -1, 1
    for meta in metas:
        if struct.unpack_from("<I", meta, _MAGIC_AT)[0] != LMDB_MAGIC:
            continue
        last_page, txn_id = struct.unpack_from("<QQ", meta, _LAST_PAGE_AT)
        if txn_id > best_txn:
            best_txn, best_last = txn_id, last_page
    return (best_last + 1) * page_size


def shard_folder(store_dir: Path, relative: str, follow_symlinks: bool = False) -> Path:
    """A shard's folder inside its store; a shard path (or symlink) leading out of the store is refused
    unless ``follow_symlinks``."""
    folder = Path(store_dir) / relative
    if follow_symlinks:
        return folder
    real, base = Path(os.path.realpath(folder)), Path(os.path.realpath(store_dir))
    if not real.is_relative_to(base):
        raise DataError(f"{folder}: shard folder leads out of the store (to {real}); refused "
                        f"(open the store with follow_symlinks=true to read it anyway)")
    return folder
