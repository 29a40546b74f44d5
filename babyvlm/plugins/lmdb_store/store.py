"""The ``lmdb`` sample store: a folder of LMDB shards (msgpack records, JPEG images) + manifest.json.

Layout::

    STORE/manifest.json                  # written atomically when a build ends
    STORE/build_config.json              # the resolved build settings
    STORE/shards/00000-of-00002/data.mdb # named DBs: samples, progress, meta

Readers open each shard lazily, once per process (so each DataLoader worker gets its own handle),
``readonly=True, lock=False``; opening checks the manifest's record counts against the shards. An
LMDB error while reading (a corrupted page, ...) becomes a ``DataError`` naming the store, the shard
and, when known, the key.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lmdb
import numpy as np

from babyvlm.core.errors import DataError
from babyvlm.core.records import Sample
from babyvlm.plugins.lmdb_store.codec import decode_sample, parse_key
from babyvlm.plugins.lmdb_store.envs import reader, release_reader
from babyvlm.plugins.lmdb_store.manifest import (
    MANIFEST_NAME,
    SHARDS_DIR,
    merge_manifests,
    read_manifest,
    write_manifest,
)
from babyvlm.plugins.lmdb_store.verify import VerifyReport, verify_store
from babyvlm.plugins.lmdb_store.writer import SAMPLES_DB, ShardWriter

STORE_NAME = "lmdb"


class LMDBStore:
    """Handle on one store folder. Cheap to create and to pickle: nothing is opened until used."""

    def __init__(self, path: str | os.PathLike, map_size: int = 1 << 28):
        self.path = Path(path)
        self.map_size = int(map_size)
        self._manifest: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"LMDBStore({str(self.path)!r})"

    # ---- writing --------------------------------------------------------------------------
    def writer(self, *, settings: dict[str, Any], shard_index: int = 0, shard_count: int = 1,
               commit_every: int = 256, on_commit: Callable[[int], None] | None = None) -> ShardWriter:
        return ShardWriter(self.path, shard_index, shard_count, settings=settings, store_name=STORE_NAME,
                           commit_every=commit_every, map_size=self.map_size, on_commit=on_commit)

    # ---- reading --------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """The manifest, checked once against the shards' record counts."""
        if self._manifest is None:
            manifest = read_manifest(self.path)
            for shard in manifest["shards"]:
                env, db = reader(self.path / shard["path"], SAMPLES_DB)
                with _read_errors(f"{self.path}: shard {shard['name']}"), env.begin() as txn:
                    present = txn.stat(db)["entries"]
                if present != shard["records"]:
                    raise DataError(f"{self.path / MANIFEST_NAME}: shard {shard['name']} holds {present} records "
                                    f"but the manifest says {shard['records']} (manifest does not match its shards)")
            self._manifest = manifest
        return self._manifest

    def _handle(self, index: int) -> tuple[lmdb.Environment, Any]:
        """This process's handle on shard ``index`` (opened on first use, per process)."""
        return reader(self.path / self.manifest()["shards"][index]["path"], SAMPLES_DB)

    def __len__(self) -> int:
        return sum(shard["records"] for shard in self.manifest()["shards"])

    def list_keys(self, formats: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(shard_index[int32], key[bytes])`` arrays of every record (of ``formats``), in store order."""
        wanted = {f.encode() for f in formats} if formats else None
        shard_ids: list[int] = []
        keys: list[bytes] = []
        for index in range(len(self.manifest()["shards"])):
            found = self._shard_keys(index, wanted)
            keys += found
            shard_ids += [index] * len(found)
        width = max((len(k) for k in keys), default=1)
        return np.asarray(shard_ids, dtype=np.int32), np.asarray(keys, dtype=f"S{width}")

    def _shard_keys(self, index: int, wanted: set[bytes] | None) -> list[bytes]:
        keys: list[bytes] = []
        env, db = self._handle(index)
        with _read_errors(f"{self.path}: shard {self.manifest()['shards'][index]['name']}", lambda: keys), \
                env.begin() as txn:
            for key in txn.cursor(db=db).iternext(keys=True, values=False):
                if wanted is None or key.split(b"/")[1] in wanted:
                    keys.append(key)
        return keys

    def get_raw(self, shard: int, key: bytes) -> bytes:
        env, db = self._handle(shard)
        name = self.manifest()["shards"][shard]["name"]
        with _read_errors(f"{self.path}: shard {name} key {key.decode(errors='replace')!r}"), \
                env.begin(buffers=False) as txn:
            raw = txn.get(key, db=db)
        if raw is None:
            raise DataError(f"{self.path}: shard {name} has no record {key.decode(errors='replace')!r}")
        return raw

    def get(self, shard: int, key: bytes) -> Sample:
        raw = self.get_raw(shard, key)
        try:
            return decode_sample(raw, "")
        except DataError:  # decode again to name the record (rare path)
            return decode_sample(raw, f"{self.path}:{self.manifest()['shards'][shard]['name']}:{key.decode(errors='replace')}")

    def iter_samples(self, formats: Sequence[str] | None = None) -> Iterator[tuple[bytes, Sample]]:
        """Every record in store order, read with one cursor per shard."""
        wanted = set(formats) if formats else None
        for index in range(len(self.manifest()["shards"])):
            yield from self._shard_samples(index, wanted)

    def _shard_samples(self, index: int, wanted: set[str] | None) -> Iterator[tuple[bytes, Sample]]:
        name = self.manifest()["shards"][index]["name"]
        env, db = self._handle(index)
        last: list[bytes] = []
        with _read_errors(f"{self.path}: shard {name}", lambda: last), env.begin() as txn:
            for key, raw in txn.cursor(db=db):
                last[:] = [key]
                if wanted is None or parse_key(key)[1] in wanted:
                    yield key, decode_sample(raw, f"{self.path}:{name}:{key.decode(errors='replace')}")

    def stats(self) -> dict[str, Any]:
        manifest = self.manifest()
        return {"store": str(self.path), "type": manifest["store"], "shards": len(manifest["shards"]),
                "shard_count": manifest["shard_count"], "counts": manifest["counts"],
                "hours_of_video": round(manifest["video_seconds"] / 3600, 4),
                "hours_in_video_clips": round(manifest["video_clip_seconds"] / 3600, 4),
                "skips": manifest["skips"], "source": manifest["source"].get("name")}

    def verify(self, decode_images: bool = True) -> VerifyReport:
        return verify_store(self.path, decode_images=decode_images)

    def close(self) -> None:
        """Release this process's handles on the store's shards (other handles on them reopen lazily)."""
        if (self.path / MANIFEST_NAME).is_file():
            for shard in read_manifest(self.path)["shards"]:
                release_reader(self.path / shard["path"])
        self._manifest = None

    # ---- merging --------------------------------------------------------------------------
    @classmethod
    def merge(cls, inputs: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
        """Join finished shard builds into one store at ``out`` (copies the shard files)."""
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            raise DataError(f"merge: output {out} exists and is not empty")
        manifests = [(Path(p), cls(p).manifest()) for p in inputs]
        merged, pairs = merge_manifests(manifests)
        staging = out.with_name(f".{out.name}.merging")
        shutil.rmtree(staging, ignore_errors=True)
        for src_dir, shard in pairs:
            target = staging / SHARDS_DIR / shard["name"]
            target.mkdir(parents=True)
            env, _ = reader(src_dir / shard["path"], SAMPLES_DB)
            with _read_errors(f"{src_dir}: shard {shard['name']} (copying it)"):
                env.copy(str(target), compact=True)
        for shard in merged["shards"]:
            shard["path"] = f"{SHARDS_DIR}/{shard['name']}"
        write_manifest(staging, merged)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
        return cls(out).manifest()


@contextlib.contextmanager
def _read_errors(where: str, last_key: Callable[[], list[bytes]] = list) -> Iterator[None]:
    """LMDB errors (a corrupted page, ...) -> DataError naming ``where`` and the last key read, if any."""
    try:
        yield
    except lmdb.Error as exc:
        after = last_key()
        position = f" after key {after[-1].decode(errors='replace')!r}" if after else ""
        raise DataError(f"{where}: LMDB read failed{position} ({type(exc).__name__}: {exc}); the shard is damaged: "
                        "`babyvlm data verify` lists what is readable, rebuild or restore the shard") from exc
