"""Resumable writing of one LMDB shard.

Samples are buffered and committed every ``commit_every`` records. A group (a recording) is
complete only when its progress record — the list of its keys with content digests, and the
fingerprint of its inputs — is committed, and that record goes in the same transaction as the group's
last samples. On a rerun, complete groups are skipped (or redone when their inputs changed); a
(re)started group's old keys and progress record are deleted in the transaction that commits its
first new samples, so a kill at any point leaves either the old group or a group without a progress
record, which the next run redoes. Keys are deterministic, so a build killed at any point and rerun
ends with no duplicate and no missing sample. ``finalize`` deletes the samples of groups that have no
progress record (interrupted, and no longer in the source) and writes the manifest atomically.

One writer per store: the writer holds ``STORE/.babyvlm.lock`` (``core.io.WriterLock``) from its creation
to ``close()``, so a second build, import or resume into the same store is refused, naming the holder;
the lock of a killed writer is taken over. A full disk during a commit becomes "no space left on
device ..." and aborts only that transaction, so the store stays resumable.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import WriterLock, disk_errors
from babyvlm.core.records import Sample, SkipReport
from babyvlm.plugins.lmdb_store.codec import check_group_id, digest, encode_sample, make_key
from babyvlm.plugins.lmdb_store.envs import open_writer_env
from babyvlm.plugins.lmdb_store.manifest import SHARDS_DIR, Tally, assemble, shard_name, write_manifest

SAMPLES_DB = b"samples"
PROGRESS_DB = b"progress"
META_DB = b"meta"
SETTINGS_KEY = b"settings"
DONE, FAILED = "done", "failed"
# settings a store may lack because it was started before they were recorded: not a difference
LATER_SETTINGS = ("root",)


def pack(value: Any) -> bytes:
    """msgpack; values msgpack cannot hold (paths, ...) are stored as their text."""
    return msgpack.packb(value, use_bin_type=True, default=str)


def unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False)


class ShardChecksum:
    """SHA-256 over groups in id order, each a SHA-256 over its ``key NUL digest`` lines in key order.

    Streams in both places it is computed: from progress records (group by group) and from an LMDB
    cursor (a group's keys share the prefix ``GROUP/``, so they are contiguous and in key order).
    """

    def __init__(self) -> None:
        self._groups: dict[bytes, Any] = {}

    def add(self, key: bytes, value_digest: str) -> None:
        group = key.split(b"/", 1)[0]
        hasher = self._groups.get(group)
        if hasher is None:
            hasher = self._groups[group] = hashlib.sha256()
        hasher.update(key + b"\x00" + value_digest.encode() + b"\n")

    def hexdigest(self) -> str:
        total = hashlib.sha256()
        for group in sorted(self._groups):
            total.update(group + b":" + self._groups[group].hexdigest().encode() + b"\n")
        return "sha256:" + total.hexdigest()


class ShardWriter:
    """Writes one shard of a store; use ``begin_group`` / ``add`` / ``finish_group`` per recording."""

    def __init__(self, store_dir: Path, shard_index: int, shard_count: int, *, settings: dict[str, Any],
                 store_name: str, commit_every: int = 256, map_size: int = 1 << 28,
                 on_commit: Callable[[int], None] | None = None):
        if commit_every < 1:
            raise ConfigError(f"commit_every must be >= 1, got {commit_every}")
        if not 0 <= shard_index < shard_count:
            raise ConfigError(f"shard {shard_index}/{shard_count}: index must be in 0..{shard_count - 1}")
        self.store_dir, self.store_name = Path(store_dir), store_name
        self.shard_index, self.shard_count = shard_index, shard_count
        self.name = shard_name(shard_index, shard_count)
        self.commit_every, self.on_commit = commit_every, on_commit
        self.path = self.store_dir / SHARDS_DIR / self.name
        self.lock = WriterLock(self.store_dir, "writing the store").acquire()
        self.notes = [note] if (note := self.lock.stale_note()) else []  # for the caller to log
        self.env: lmdb.Environment | None = None
        try:
            self._check_no_other_shards()
            with disk_errors(self.path):
                self.env = open_writer_env(self.path, map_size)
                self.samples = self.env.open_db(SAMPLES_DB)
                self.progress = self.env.open_db(PROGRESS_DB)
                self.meta = self.env.open_db(META_DB)
                self._check_settings(settings)
            self.committed = self._count_samples()
        except BaseException:
            self.close()
            raise
        self._group: str | None = None
        self._fingerprint: str | None = None
        self._replacing: str | None = None  # a group whose old keys the next commit deletes
        self.removed_leftovers: dict[str, int] = {}  # group -> samples deleted by finalize
        self._pending: list[tuple[bytes, bytes]] = []
        self._entries: list[tuple[bytes, str]] = []
        self._keys: set[bytes] = set()
        self._tally = Tally()

    # ---- setup --------------------------------------------------------------------------
    def _check_no_other_shards(self) -> None:
        shards = self.store_dir / SHARDS_DIR
        others = sorted(p.name for p in shards.iterdir() if p.is_dir() and p.name != self.name) if shards.is_dir() else []
        if others:
            raise ConfigError(f"{self.store_dir} already holds shard {others[0]}; build each shard into its own "
                              f"--out folder and join them with `babyvlm data merge`")

    def _check_settings(self, settings: dict[str, Any]) -> None:
        """A resumed build must use the settings it started with, or samples would mix two configs."""
        settings = unpack(pack(settings))  # compare as stored (tuples become lists)
        with self.env.begin(write=True) as txn:
            stored = txn.get(SETTINGS_KEY, db=self.meta)
            if stored is None:
                txn.put(SETTINGS_KEY, pack(settings), db=self.meta)
                return
        previous = unpack(stored)
        differing = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k)
                           and not (k in LATER_SETTINGS and k not in previous))
        if differing:
            details = "; ".join(f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}" for k in differing[:5])
            raise ConfigError(f"{self.store_dir} was started with different settings ({details}); nothing was "
                              "written: rerun with the original options (same --source, --root and settings) "
                              "or use a new --out")

    def _count_samples(self) -> int:
        with self.env.begin() as txn:
            return txn.stat(self.samples)["entries"]

    # ---- progress -------------------------------------------------------------------------
    def progress_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(group, record)`` in group order, one at a time (records list every key of their group)."""
        with self.env.begin() as txn:
            for key, value in txn.cursor(db=self.progress):
                yield key.decode(), unpack(value)

    def done_groups(self) -> set[str]:
        return set(self.done_fingerprints())

    def done_fingerprints(self) -> dict[str, str | None]:
        """Complete groups -> the input fingerprint given to ``begin_group`` (None if there was none)."""
        return {group: record.get("fingerprint") for group, record in self.progress_records()
                if record["status"] == DONE}

    # ---- writing --------------------------------------------------------------------------
    def begin_group(self, group: str, fingerprint: str | None = None) -> None:
        """Start (or redo) a group; ``fingerprint`` identifies its inputs (stored in its progress record).

        Whatever the group holds (an interrupted attempt, or a complete old version) is deleted by the
        commit that writes its first new samples, in the same transaction.
        """
        if self._group is not None:
            raise RuntimeError(f"group {self._group!r} is still open")
        self._group = self._replacing = check_group_id(group, str(self.store_dir))
        self._fingerprint = fingerprint
        self._pending, self._entries, self._tally, self._keys = [], [], Tally(), set()

    def add(self, fmt: str, local: str, sample: Sample) -> bytes:
        """Buffer one sample under ``GROUP/fmt/local``; commits when the buffer is full."""
        if self._group is None:
            raise RuntimeError("add() outside begin_group()/finish_group()")
        key = make_key(self._group, fmt, local)
        if key in self._keys:
            raise DataError(f"{self.store_dir}: key {key.decode()!r} written twice in one group")
        self._keys.add(key)
        value = encode_sample(sample)
        self._pending.append((key, value))
        self._entries.append((key, digest(value)))
        self._tally.add_sample(fmt, sample.meta)
        if len(self._pending) >= self.commit_every:
            self._commit()
        return key

    def finish_group(self, summary: dict[str, Any] | None = None) -> None:
        """Commit the remaining samples together with the group's progress record."""
        summary = dict(summary or {})
        self._tally.video_seconds += float(summary.pop("video_seconds", 0.0))
        record = {"status": DONE, "entries": [[k, d] for k, d in self._entries], "fingerprint": self._fingerprint,
                  "tally": self._tally.to_dict(), "skips": summary.pop("skips", None), "summary": summary}
        self._commit(progress=record)
        self._group = None

    def fail_group(self, error: str, summary: dict[str, Any] | None = None) -> None:
        """Drop everything of the open group and record why, so the build can report it."""
        self._pending, self._entries, self._replacing = [], [], self._group  # the commit drops all of it
        summary = dict(summary or {})
        record = {"status": FAILED, "error": error, "entries": [], "tally": Tally().to_dict(),
                  "fingerprint": self._fingerprint, "skips": summary.pop("skips", None), "summary": summary}
        self._commit(progress=record)
        self._group = None

    def _commit(self, *, progress: dict[str, Any] | None = None) -> None:
        pending, replacing = self._pending, self._replacing

        def write(txn: lmdb.Transaction) -> None:
            if replacing is not None:
                _delete_group(txn, self.samples, replacing)
                txn.delete(replacing.encode(), db=self.progress)
            for key, value in pending:
                txn.put(key, value, db=self.samples)
            if progress is not None:
                txn.put(self._group.encode(), pack(progress), db=self.progress)

        self._write(write)
        self._pending, self._replacing = [], None
        self.committed = self._count_samples()
        if pending and self.on_commit is not None:
            self.on_commit(self.committed)

    def _write(self, write: Callable[[lmdb.Transaction], Any]) -> Any:
        """Run ``write`` in one write transaction, growing the map (and retrying) when it is full."""
        while True:
            try:
                with disk_errors(self.path), self.env.begin(write=True) as txn:
                    return write(txn)
            except lmdb.MapFullError:
                self._grow()

    def _grow(self) -> None:
        """Double the map: LMDB files are sparse, so a generous map costs address space, not disk."""
        self.env.set_mapsize(self.env.info()["map_size"] * 2)

    # ---- finishing ------------------------------------------------------------------------
    def finalize(self, *, build: dict[str, Any], source: dict[str, Any],
                 expected_groups: set[str] | None = None) -> dict[str, Any]:
        """Write the manifest from the progress records; refuse if groups are missing or unexpected."""
        if self._group is not None:
            raise RuntimeError(f"group {self._group!r} is still open")
        self.removed_leftovers = self._write(self._delete_leftovers)
        shard = self.shard_entry()
        if expected_groups is not None:
            self._check_groups(set(shard["groups"]) | set(shard["failed_groups"]), expected_groups)
        manifest = assemble([shard], store=self.store_name, build=build, source=source)
        with disk_errors(self.store_dir):
            write_manifest(self.store_dir, manifest)
        return manifest

    def _delete_leftovers(self, txn: lmdb.Transaction) -> dict[str, int]:
        """Delete samples of groups without a progress record: begun, never finished, and not redone
        (the source no longer yields them). Returns the number of samples deleted per group."""
        recorded = set(txn.cursor(db=self.progress).iternext(keys=True, values=False))
        removed: Counter = Counter()
        cursor = txn.cursor(db=self.samples)
        positioned = cursor.first()
        while positioned:
            group = bytes(cursor.key()).split(b"/", 1)[0]
            if group in recorded:  # skip the whole group: b"0" sorts right after b"/"
                positioned = cursor.set_range(group + b"0")
            else:
                removed[group.decode(errors="replace")] += 1
                positioned = cursor.delete() and bool(cursor.key())
        return dict(removed)

    def _check_groups(self, recorded: set[str], expected: set[str]) -> None:
        extra = sorted(recorded - expected)
        missing = sorted(expected - recorded)
        if extra:
            raise DataError(f"{self.store_dir}: holds recordings the source no longer yields ({', '.join(extra[:3])}"
                            f"{' ...' if len(extra) > 3 else ''}); the corpus changed since this build started")
        if missing:
            raise DataError(f"{self.store_dir}: recordings not built: {', '.join(missing[:3])}")

    def shard_entry(self) -> dict[str, Any]:
        """This shard's manifest entry, aggregated from the progress records."""
        tally, skips, checksum = Tally(), SkipReport(), ShardChecksum()
        done, failed, errors, listed = [], [], {}, 0
        for group, record in self.progress_records():
            tally.merge(Tally.from_dict(record["tally"]))
            skips.merge(SkipReport.from_dict(record.get("skips")))
            for key, value_digest in sorted(record["entries"]):  # written in build order, hashed in key order
                checksum.add(bytes(key), value_digest)
            listed += len(record["entries"])
            (done if record["status"] == DONE else failed).append(group)
            if record["status"] == FAILED:
                errors[group] = record.get("error", "")
        with self.env.begin() as txn:
            present = txn.stat(self.samples)["entries"]
        if present != listed:
            raise DataError(f"{self.store_dir / SHARDS_DIR / self.name}: {present} records but progress lists "
                            f"{listed}; an interrupted group was left behind (rerun the build)")
        return {"name": self.name, "path": f"{SHARDS_DIR}/{self.name}", "index": self.shard_index,
                "count": self.shard_count, "records": listed, "groups": done, "failed_groups": failed,
                "errors": errors, "checksum": checksum.hexdigest(), "tally": tally.to_dict(), "skips": skips.to_dict()}

    def close(self) -> None:
        """Close the shard and release the store's writer lock (safe to call twice)."""
        try:
            if self.env is not None:
                self.env.close()
                self.env = None
        finally:
            self.lock.release()


def _delete_group(txn: lmdb.Transaction, samples: Any, group: str) -> None:
    prefix = group.encode() + b"/"
    cursor = txn.cursor(db=samples)
    if cursor.set_range(prefix):
        while cursor.key().startswith(prefix):
            if not cursor.delete():
                break
