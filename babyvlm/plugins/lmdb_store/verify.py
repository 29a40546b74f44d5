"""``verify``: re-read every record of a store and check it against its manifest.

Checks per shard: every record decodes (msgpack, fields, ``<image>`` count, every JPEG); each
record's content digest equals the one committed with it; keys listed by the progress records are
all present (missing) and nothing else is (orphans, e.g. an interrupted build); no sample id occurs
twice (duplicates, also across shards); record counts, counts by format/child/age month and the
shard checksum equal the manifest's. Problems name the shard and the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from babyvlm.core.errors import DataError
from babyvlm.media import decode_jpeg
from babyvlm.plugins.lmdb_store.codec import decode_sample, digest, parse_key
from babyvlm.plugins.lmdb_store.envs import reader, shard_folder
from babyvlm.plugins.lmdb_store.manifest import MANIFEST_NAME, SHARDS_DIR, Tally, read_manifest
from babyvlm.plugins.lmdb_store.writer import (
    DONE,
    PROGRESS_DB,
    SAMPLES_DB,
    ShardChecksum,
    unpack,
)

MAX_LISTED = 20


@dataclass
class VerifyReport:
    store: str
    shards: int = 0
    records: int = 0
    images: int = 0
    expected: int = 0
    missing: int = 0
    duplicates: int = 0
    orphans: int = 0
    corrupted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.orphans or self.corrupted or self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "ok": self.ok, "shards": self.shards, "records": self.records,
                "images": self.images, "expected": self.expected, "missing": self.missing,
                "duplicates": self.duplicates, "orphans": self.orphans, "corrupted": self.corrupted,
                "problems": self.problems, "missing_keys": self.missing_keys}

    def lines(self) -> list[str]:
        out = [f"store: {self.store}", f"shards: {self.shards}  records: {self.records}  images: {self.images}",
               f"missing: {self.missing}  duplicates: {self.duplicates}  orphans: {self.orphans}  "
               f"corrupted: {len(self.corrupted)}"]
        out += [f"corrupted record: {c}" for c in self.corrupted[:MAX_LISTED]]
        out += [f"missing record: {k}" for k in self.missing_keys[:MAX_LISTED]]
        out += [f"problem: {p}" for p in self.problems]
        out.append("OK" if self.ok else "FAILED")
        return out


def verify_store(store_dir: Path, *, decode_images: bool = True, follow_symlinks: bool = False) -> VerifyReport:
    store_dir = Path(store_dir)
    report = VerifyReport(str(store_dir))
    try:
        manifest: dict[str, Any] | None = read_manifest(store_dir)
    except DataError as exc:
        report.problems.append(str(exc))
        manifest = None
    shard_entries = _shards_to_check(store_dir, manifest, report)
    seen_ids: set[bytes] = set()
    total = Tally()
    for entry in shard_entries:
        tally = _verify_shard(store_dir, entry, seen_ids, report, decode_images, follow_symlinks)
        if tally is not None:
            total.merge(tally)
    if manifest is not None and total.counts_only() != manifest["counts"]:
        report.problems.append(f"{store_dir / MANIFEST_NAME}: counts {manifest['counts']} differ from the records' "
                               f"{total.counts_only()}")
    return report


def _shards_to_check(store_dir: Path, manifest: dict | None, report: VerifyReport) -> list[dict[str, Any]]:
    on_disk = sorted(p.name for p in (store_dir / SHARDS_DIR).glob("*") if p.is_dir())
    if manifest is None:
        return [{"name": name, "path": f"{SHARDS_DIR}/{name}"} for name in on_disk]
    listed = {Path(s["path"]).name for s in manifest["shards"]}
    for name in on_disk:
        if name not in listed:
            report.problems.append(f"{store_dir / SHARDS_DIR / name}: shard on disk is not in the manifest")
    return list(manifest["shards"])


def _verify_shard(store_dir: Path, entry: dict[str, Any], seen_ids: set[bytes], report: VerifyReport,
                  decode_images: bool, follow_symlinks: bool) -> Tally | None:
    try:
        path = shard_folder(store_dir, entry["path"], follow_symlinks)
        env, samples = reader(path, SAMPLES_DB)
        _, progress = reader(path, PROGRESS_DB)
    except DataError as exc:
        report.problems.append(f"shard {entry['name']}: {exc}")
        return None
    report.shards += 1
    try:
        with env.begin() as txn:
            expected, done_groups = _expected_entries(txn, progress, entry, report)
            tally, present, checksum = Tally(), set(), ShardChecksum()
            for key, raw in txn.cursor(db=samples):
                value_digest = digest(raw)
                present.add(key)
                checksum.add(key, value_digest)
                _check_record(entry, key, raw, value_digest, expected, seen_ids, tally, report, decode_images)
    except lmdb.Error as exc:
        report.problems.append(f"shard {entry['name']}: unreadable LMDB ({exc})")
        return None
    missing = sorted(set(expected) - present)
    report.missing += len(missing)
    report.missing_keys += [f"{entry['name']}:{k.decode(errors='replace')}" for k in missing[:MAX_LISTED]]
    report.records += len(present)
    _compare_with_manifest(entry, len(present), checksum.hexdigest(), done_groups, tally, report)
    return tally


def _expected_entries(txn, progress, entry, report) -> tuple[dict[bytes, str], list[str]]:
    """Keys and digests the shard's completed groups committed, from its progress records."""
    expected: dict[bytes, str] = {}
    done: list[str] = []
    for group, raw in txn.cursor(db=progress):
        record = unpack(raw)
        if record.get("status") != DONE:
            continue
        done.append(group.decode())
        for key, value_digest in record["entries"]:
            if key in expected:
                report.duplicates += 1
            expected[bytes(key)] = value_digest
    report.expected += len(expected)
    return expected, done


def _check_record(entry, key, raw, value_digest, expected, seen_ids, tally, report, decode_images) -> None:
    where = f"shard {entry['name']} key {key.decode(errors='replace')!r}"
    if key not in expected:
        report.orphans += 1
    elif expected[key] != value_digest:
        report.corrupted.append(f"{where}: content differs from the digest committed with it")
        return
    try:
        parse_key(key)
        sample = decode_sample(raw, where)
        for index, image in enumerate(sample.images):
            if decode_images:
                decode_jpeg(image, f"{where} image {index}")
            report.images += 1
    except DataError as exc:
        report.corrupted.append(str(exc))
        return
    sample_hash = hashlib.blake2b(sample.sample_id.encode(), digest_size=12).digest()
    if sample_hash in seen_ids:
        report.duplicates += 1
    seen_ids.add(sample_hash)
    tally.add_sample(sample.format, sample.meta)


def _compare_with_manifest(entry, records: int, checksum: str, done_groups, tally: Tally, report: VerifyReport) -> None:
    if "records" not in entry:  # no manifest: nothing to compare with
        return
    name = entry["name"]
    if entry["records"] != records:
        report.problems.append(f"shard {name}: {records} records but the manifest says {entry['records']}")
    if entry["checksum"] != checksum:
        report.problems.append(f"shard {name}: checksum {checksum} of the records differs from the manifest's "
                               f"{entry['checksum']}")
    if sorted(entry["groups"]) != sorted(done_groups):
        report.problems.append(f"shard {name}: completed recordings differ from the manifest's list")
    if Tally.from_dict(entry["tally"]).counts_only() != tally.counts_only():
        report.problems.append(f"shard {name}: counts by format/child/age month differ from the manifest's")
