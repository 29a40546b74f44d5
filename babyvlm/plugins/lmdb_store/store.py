"""The ``lmdb`` sample store: a folder of LMDB shards (msgpack records, JPEG images) + manifest.json.

Layout::

    STORE/manifest.json                  # written atomically when a build ends
    STORE/build_config.json              # the resolved build settings
    STORE/shards/00000-of-00002/data.mdb # named DBs: samples, progress, meta

Readers open each shard lazily, once per process (so each DataLoader worker gets its own handle),
``readonly=True, lock=False``; opening checks the manifest's record counts against the shards, and
each ``data.mdb``'s size against its LMDB header (a truncated file is a ``DataError``, never a SIGBUS).
An LMDB error while reading (a corrupted page, ...) becomes a ``DataError`` naming the store, the shard
and, when known, the key.

Options: ``verify_on_read`` checks every record read against the content digest committed with it
(a flipped byte fails the read that meets it, naming the record); ``follow_symlinks`` allows shard
folders that are symlinks leading out of the store (refused by default).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lmdb
import numpy as np

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import WriterLock, disk_errors, replaced_folder
from babyvlm.core.records import Sample
from babyvlm.plugins.lmdb_store.codec import decode_sample, digest, parse_key
from babyvlm.plugins.lmdb_store.envs import reader, release_reader, shard_folder
from babyvlm.plugins.lmdb_store.manifest import (
    MANIFEST_NAME,
    SHARDS_DIR,
    Tally,
    merge_manifests,
    read_manifest,
    write_manifest,
)
from babyvlm.plugins.lmdb_store.verify import VerifyReport, verify_store
from babyvlm.plugins.lmdb_store.writer import DONE, PROGRESS_DB, SAMPLES_DB, ShardWriter, unpack

STORE_NAME = "lmdb"


class LMDBStore:
    """Handle on one store folder. Cheap to create and to pickle: nothing is opened until used."""

    def __init__(self, path: str | os.PathLike, map_size: int = 1 << 28, verify_on_read: bool = False,
                 follow_symlinks: bool = False):
        for name, value in (("verify_on_read", verify_on_read), ("follow_symlinks", follow_symlinks)):
            if not isinstance(value, bool):
                raise ConfigError(f"store 'lmdb': {name} must be true or false, got {value!r}")
        self.path = Path(path)
        self.map_size = int(map_size)
        self.verify_on_read, self.follow_symlinks = verify_on_read, follow_symlinks
        self._manifest: dict[str, Any] | None = None
        self._digests: dict[tuple[int, bytes], dict[bytes, str]] = {}  # (shard, group) -> key -> digest

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
                env, db = reader(self._folder(shard), SAMPLES_DB)
                with _read_errors(f"{self.path}: shard {shard['name']}"), env.begin() as txn:
                    present = txn.stat(db)["entries"]
                if present != shard["records"]:
                    raise DataError(f"{self.path / MANIFEST_NAME}: shard {shard['name']} holds {present} records "
                                    f"but the manifest says {shard['records']} (manifest does not match its shards)")
            self._manifest = manifest
        return self._manifest

    def _folder(self, shard: dict[str, Any]) -> Path:
        return shard_folder(self.path, shard["path"], self.follow_symlinks)

    def _handle(self, index: int, db_name: bytes = SAMPLES_DB) -> tuple[lmdb.Environment, Any]:
        """This process's handle on shard ``index`` (opened on first use, per process)."""
        return reader(self._folder(self.manifest()["shards"][index]), db_name)

    def __len__(self) -> int:
        return sum(shard["records"] for shard in self.manifest()["shards"])

    def list_keys(self, formats: Sequence[str] | None = None, groups: Iterable[str] | None = None,
                  exclude_groups: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(shard_index[int32], key[bytes])`` arrays of every record (of ``formats``; of the groups
        ``groups`` — recordings, for built stores — and not of ``exclude_groups``), in store order."""
        wanted = {f.encode() for f in formats} if formats else None
        keep = None if groups is None else {g.encode() for g in groups}
        drop = {g.encode() for g in exclude_groups or ()}
        shard_ids: list[int] = []
        keys: list[bytes] = []
        for index in range(len(self.manifest()["shards"])):
            found = [k for k in self._shard_keys(index, wanted)
                     if (keep is None or k.split(b"/", 1)[0] in keep) and k.split(b"/", 1)[0] not in drop]
            keys += found
            shard_ids += [index] * len(found)
        width = max((len(k) for k in keys), default=1)
        return np.asarray(shard_ids, dtype=np.int32), np.asarray(keys, dtype=f"S{width}")

    def recording_ids(self) -> set[str]:
        """The groups (recordings, for built stores) whose samples are complete in the store."""
        return {group for shard in self.manifest()["shards"] for group in shard["groups"]}

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
        if self.verify_on_read:
            self._check_digest(shard, key, raw)
        return raw

    def _check_digest(self, shard: int, key: bytes, raw: bytes) -> None:
        """``verify_on_read``: the record must equal what its group's progress record committed."""
        group = key.split(b"/", 1)[0]
        expected = self._digests.get((shard, group))
        if expected is None:
            expected = self._digests[(shard, group)] = self._group_digests(shard, group)
        name = self.manifest()["shards"][shard]["name"]
        where = f"{self.path}: shard {name} record {key.decode(errors='replace')!r}"
        if key not in expected:
            raise DataError(f"{where}: not listed by a completed group (verify_on_read); run `babyvlm data verify`")
        if digest(raw) != expected[key]:
            raise DataError(f"{where}: content differs from the checksum committed with it (verify_on_read); "
                            "the shard is damaged: run `babyvlm data verify`, then rebuild or restore the shard")

    def _group_digests(self, shard: int, group: bytes) -> dict[bytes, str]:
        env, db = self._handle(shard, PROGRESS_DB)
        with _read_errors(f"{self.path}: shard {self.manifest()['shards'][shard]['name']} progress"), \
                env.begin(buffers=False) as txn:
            raw = txn.get(group, db=db)
        record = unpack(raw) if raw is not None else {}
        if record.get("status") != DONE:
            return {}
        return {bytes(k): d for k, d in record["entries"]}

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
                    if self.verify_on_read:
                        self._check_digest(index, bytes(key), bytes(raw))
                    yield key, decode_sample(raw, f"{self.path}:{name}:{key.decode(errors='replace')}")

    def stats(self) -> dict[str, Any]:
        """Counts per format/child/age month taken from the shards' own progress records (committed with
        the samples), compared with the manifest's: ``manifest_verified`` says whether they agree, and
        ``problems`` what differs (an edited or stale manifest). ``verify()`` re-reads every record."""
        manifest = self.manifest()
        tally, problems = Tally(), []
        for index, shard in enumerate(manifest["shards"]):
            shard_tally = self._shard_tally(index)
            if shard_tally.counts_only() != Tally.from_dict(shard["tally"]).counts_only():
                problems.append(f"shard {shard['name']}: counts in the manifest differ from the shard's")
            tally.merge(shard_tally)
        counts = tally.counts_only()
        if counts != manifest["counts"]:
            problems.append(f"{self.path / MANIFEST_NAME}: counts {manifest['counts']} differ from the shards' "
                            f"{counts} (the manifest was edited or is stale; `babyvlm data verify` checks every record)")
        return {"store": str(self.path), "type": manifest["store"], "shards": len(manifest["shards"]),
                "shard_count": manifest["shard_count"], "counts": counts,
                "manifest_verified": not problems, "problems": problems,
                "hours_of_video": round(tally.video_seconds / 3600, 4),
                "hours_in_video_clips": round(tally.video_clip_seconds / 3600, 4),
                "skips": manifest["skips"], "source": manifest["source"].get("name")}

    def _shard_tally(self, index: int) -> Tally:
        tally = Tally()
        env, db = self._handle(index, PROGRESS_DB)
        with _read_errors(f"{self.path}: shard {self.manifest()['shards'][index]['name']} progress"), \
                env.begin() as txn:
            for _, raw in txn.cursor(db=db):
                record = unpack(raw)
                if record.get("status") == DONE:
                    tally.merge(Tally.from_dict(record["tally"]))
        return tally

    def verify(self, decode_images: bool = True) -> VerifyReport:
        return verify_store(self.path, decode_images=decode_images, follow_symlinks=self.follow_symlinks)

    def close(self) -> None:
        """Release this process's handles on the store's shards (other handles on them reopen lazily)."""
        if (self.path / MANIFEST_NAME).is_file():
            for shard in read_manifest(self.path)["shards"]:
                release_reader(self.path / shard["path"])
        self._manifest = None
        self._digests.clear()

    # ---- merging --------------------------------------------------------------------------
    @classmethod
    def merge(cls, inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
              log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        """Join finished shard builds into one store at ``out`` (a new or empty folder).

        Every input shard must pass ``verify`` (digests, keys, counts; JPEGs are not decoded) before
        anything is copied. The copy is built in a temp folder beside ``out`` and swapped in when
        complete (``core.io.replaced_folder``), under a writer lock beside ``out``.
        """
        out = Path(out)
        with WriterLock(out, "merging into it", beside=True) as lock:
            if lock.stale_note():
                log(lock.stale_note())
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise DataError(f"merge: output {out} exists and is not empty")
            manifests = [(Path(p), cls(p).manifest()) for p in inputs]
            merged, pairs = merge_manifests(manifests)
            for src_dir, _ in manifests:
                report = verify_store(src_dir, decode_images=False)
                if not report.ok:
                    first = (report.problems + report.corrupted + report.missing_keys + ["records missing, "
                             "duplicated or orphaned"])[0]
                    raise DataError(f"merge: {src_dir} fails verify ({first}); nothing was merged: "
                                    f"run `babyvlm data verify {src_dir}`, rebuild or restore it")
            with disk_errors(out, then="nothing was merged"), replaced_folder(out, what="merged store") as stage:
                for src_dir, shard in pairs:
                    target = stage / SHARDS_DIR / shard["name"]
                    target.mkdir(parents=True)
                    env, _ = reader(shard_folder(src_dir, shard["path"]), SAMPLES_DB)
                    with _read_errors(f"{src_dir}: shard {shard['name']} (copying it)"):
                        env.copy(str(target), compact=True)
                for shard in merged["shards"]:
                    shard["path"] = f"{SHARDS_DIR}/{shard['name']}"
                write_manifest(stage, merged)
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
