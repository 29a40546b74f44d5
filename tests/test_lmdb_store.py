"""The ``lmdb`` store: round trip, resumable groups, map growth, verify, manifest checks, merge."""

from __future__ import annotations

import json

import lmdb
import msgpack
import numpy as np
import pytest

from babyvlm import registry
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.records import Sample
from babyvlm.media import encode_jpeg
from babyvlm.plugins.lmdb_store import LMDBStore
from babyvlm.plugins.lmdb_store.codec import make_key, parse_key

SETTINGS = {"source": "unit", "image_size": 32}


def _sample(sample_id: str, colour: int = 100, child: str = "S", age: float = 7.2, noise: int = 0) -> Sample:
    pixels = np.full((16 + noise, 16 + noise, 3), colour % 256, dtype=np.uint8)
    if noise:  # incompressible pixels make big records
        pixels = np.random.default_rng(colour).integers(0, 256, pixels.shape, dtype=np.uint8)
    image = encode_jpeg(pixels)
    turns = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": f"text {sample_id}"}]
    return Sample(sample_id, "image", [image], turns, {"child": child, "age_months": age})


def _write(path, groups: dict[str, int], *, shard=(0, 1), commit_every=2, map_size=1 << 20, settings=SETTINGS,
           noise=0):
    store = LMDBStore(path, map_size=map_size)
    writer = store.writer(settings=settings, shard_index=shard[0], shard_count=shard[1], commit_every=commit_every)
    for group, count in groups.items():
        writer.begin_group(group)
        for n in range(count):
            writer.add("image", f"{n:06d}", _sample(f"{group}/image/{n:06d}", colour=10 * n, noise=noise))
        writer.finish_group({"video_seconds": 60.0})
    manifest = writer.finalize(build={**settings, "shard": f"{shard[0]}/{shard[1]}"},
                               source={"name": "unit", "recordings_total": 3, "recordings_digest": "x"})
    writer.close()
    return store, manifest


def test_registered_and_round_trip(tmp_path):
    assert registry.get("store", "lmdb") is LMDBStore
    store, manifest = _write(tmp_path / "s", {"recA": 3, "recB": 2})
    assert manifest["counts"] == {"total": 5, "by_format": {"image": 5}, "by_child": {"S": 5},
                                  "by_age_month": {"7": 5}}
    assert manifest["video_seconds"] == 120.0 and manifest["shards"][0]["groups"] == ["recA", "recB"]
    shard_ids, keys = store.list_keys()
    assert [k.decode() for k in keys] == [f"recA/image/{n:06d}" for n in range(3)] + [f"recB/image/{n:06d}" for n in range(2)]
    sample = store.get(int(shard_ids[1]), bytes(keys[1]))
    assert sample.sample_id == "recA/image/000001" and sample.conversations[1]["value"] == "text recA/image/000001"
    assert [s.sample_id for _, s in store.iter_samples()] == [k.decode() for k in keys]
    assert store.verify().ok


def test_keys_are_zero_padded_and_validated():
    assert make_key("rec", "video", "000012") == b"rec/video/000012"
    assert parse_key(b"rec/interleaved/000003") == ("rec", "interleaved", "000003")
    with pytest.raises(DataError, match="malformed sample key"):
        parse_key(b"rec/audio/1")
    with pytest.raises(DataError, match="invalid group"):
        make_key("a/b", "image", "000001")


def test_map_grows_on_map_full(tmp_path):
    store, manifest = _write(tmp_path / "s", {"rec": 40}, map_size=64 * 1024, commit_every=40, noise=48)
    env = lmdb.open(str(tmp_path / "s" / "shards" / "00000-of-00001"), readonly=True, lock=False, max_dbs=4)
    assert env.info()["map_size"] > 64 * 1024
    env.close()
    assert manifest["counts"]["total"] == 40 and store.verify().ok


def test_restarted_group_drops_leftovers_and_done_groups_are_kept(tmp_path):
    path = tmp_path / "s"
    writer = LMDBStore(path).writer(settings=SETTINGS, commit_every=2)
    writer.begin_group("recA")
    for n in range(2):
        writer.add("image", f"{n:06d}", _sample(f"recA/image/{n:06d}"))
    writer.finish_group({})
    writer.begin_group("recB")
    for n in range(5):  # 4 of these get committed, then the "crash"
        writer.add("image", f"{n:06d}", _sample(f"recB/image/{n:06d}"))
    writer.close()

    writer = LMDBStore(path).writer(settings=SETTINGS, commit_every=2)
    assert writer.done_groups() == {"recA"}
    writer.begin_group("recB")  # the retry makes only 3 samples this time
    for n in range(3):
        writer.add("image", f"{n:06d}", _sample(f"recB/image/{n:06d}"))
    writer.finish_group({})
    manifest = writer.finalize(build=SETTINGS, source={"name": "unit"})
    writer.close()
    assert manifest["counts"]["total"] == 5
    report = LMDBStore(path).verify()
    assert report.ok and report.orphans == 0 and report.records == 5


def test_finalize_deletes_leftovers_of_a_group_the_source_no_longer_yields(tmp_path):
    path = tmp_path / "s"
    writer = LMDBStore(path).writer(settings=SETTINGS, commit_every=2)
    writer.begin_group("recA")
    writer.add("image", "000000", _sample("recA/image/000000"))
    writer.finish_group({})
    writer.begin_group("gone")
    for n in range(5):  # 4 of these get committed, then the "kill -9": no progress record for "gone"
        writer.add("image", f"{n:06d}", _sample(f"gone/image/{n:06d}"))
    writer.close()

    writer = LMDBStore(path).writer(settings=SETTINGS, commit_every=2)
    assert writer.done_groups() == {"recA"}
    manifest = writer.finalize(build=SETTINGS, source={"name": "unit"}, expected_groups={"recA"})
    writer.close()
    assert writer.removed_leftovers == {"gone": 4}
    assert manifest["counts"]["total"] == 1 and manifest["shards"][0]["groups"] == ["recA"]
    report = LMDBStore(path).verify()
    assert report.ok and report.orphans == 0 and report.records == 1


def test_a_redone_group_keeps_its_old_samples_until_its_first_new_commit(tmp_path):
    path = tmp_path / "s"
    _write(path, {"recA": 3})
    writer = LMDBStore(path).writer(settings=SETTINGS, commit_every=2)
    assert writer.done_fingerprints() == {"recA": None}
    writer.begin_group("recA", fingerprint="sha256:new")
    writer.add("image", "000000", _sample("recA/image/000000", colour=1))
    writer.close()  # killed before the first commit: the old version is intact and still complete
    writer = LMDBStore(path).writer(settings=SETTINGS, commit_every=2)
    assert writer.done_fingerprints() == {"recA": None} and writer.committed == 3
    writer.begin_group("recA", fingerprint="sha256:new")
    for n in range(2):  # one commit: the old keys and progress record go in the same transaction
        writer.add("image", f"{n:06d}", _sample(f"recA/image/{n:06d}", colour=1))
    assert writer.committed == 2 and writer.done_fingerprints() == {}
    writer.finish_group({})
    assert writer.done_fingerprints() == {"recA": "sha256:new"}
    writer.finalize(build=SETTINGS, source={"name": "unit"}, expected_groups={"recA"})
    writer.close()
    assert LMDBStore(path).verify().ok and len(LMDBStore(path)) == 2


def test_resume_with_other_settings_is_refused(tmp_path):
    LMDBStore(tmp_path / "s").writer(settings=SETTINGS).close()
    with pytest.raises(ConfigError, match="image_size: 32 -> 64"):
        LMDBStore(tmp_path / "s").writer(settings={**SETTINGS, "image_size": 64})


def test_store_without_manifest_says_build_unfinished(tmp_path):
    LMDBStore(tmp_path / "s").writer(settings=SETTINGS).close()
    with pytest.raises(DataError, match="build has not finished"):
        LMDBStore(tmp_path / "s").manifest()
    report = LMDBStore(tmp_path / "s").verify()
    assert not report.ok and "no manifest" in report.problems[0]


def _corrupt(path, key: bytes, value: bytes) -> None:
    env = lmdb.open(str(path / "shards" / "00000-of-00001"), max_dbs=4)
    with env.begin(write=True) as txn:
        txn.put(key, value, db=env.open_db(b"samples", txn=txn))
    env.close()


def test_verify_names_corrupted_records(tmp_path):
    path = tmp_path / "s"
    _write(path, {"recA": 3, "recB": 2})
    _corrupt(path, b"recA/image/000001", b"\xc1 not msgpack")
    good = _sample("recB/image/000000")
    broken = Sample(good.sample_id, good.format, [good.images[0][:40]], good.conversations, good.meta)
    _corrupt(path, b"recB/image/000000", msgpack.packb(broken.to_dict(), use_bin_type=True))
    report = LMDBStore(path).verify()
    assert not report.ok
    text = "\n".join(report.lines())
    assert "recA/image/000001" in text and "recB/image/000000" in text and "FAILED" in text
    assert report.missing == 0 and report.duplicates == 0


def test_verify_decodes_jpegs_even_when_digests_match(tmp_path):
    path = tmp_path / "s"
    store = LMDBStore(path)
    writer = store.writer(settings=SETTINGS)
    writer.begin_group("rec")
    bad = _sample("rec/image/000000")
    writer.add("image", "000000", Sample(bad.sample_id, "image", [b"\xff\xd8\xff garbage"], bad.conversations, {}))
    writer.finish_group({})
    writer.finalize(build=SETTINGS, source={"name": "unit"})
    writer.close()
    report = store.verify()
    assert any("rec/image/000000" in c and "image 0" in c and "JPEG" in c for c in report.corrupted)


def damage_pages_holding(store_path, marker: bytes) -> None:
    """Overwrite every LMDB page that contains ``marker`` (a corrupted disk page under a record)."""
    data_file = store_path / "shards" / "00000-of-00001" / "data.mdb"
    env = lmdb.open(str(data_file.parent), readonly=True, lock=False, max_dbs=4)
    page_size = env.stat()["psize"]
    env.close()
    data = bytearray(data_file.read_bytes())
    found = data.find(marker)
    assert found >= 0
    while found >= 0:
        page = found // page_size * page_size
        data[page:page + page_size] = b"\xab" * page_size
        found = data.find(marker, page + page_size)
    data_file.write_bytes(bytes(data))


def test_lmdb_read_errors_become_data_errors_naming_shard_and_key(tmp_path):
    path = tmp_path / "s"
    _write(path, {"recA": 30, "recB": 30}, commit_every=10)
    damage_pages_holding(path, b"text recB/image/000020")
    store = LMDBStore(path)
    with pytest.raises(DataError, match=r"s: shard 00000-of-00001: LMDB read failed after key 'rec.*'.*Corrupted"):
        store.list_keys()
    with pytest.raises(DataError, match=r"s: shard 00000-of-00001: LMDB read failed after key 'rec.*'"):
        list(store.iter_samples())
    with pytest.raises(DataError, match=r"s: shard 00000-of-00001 key 'recB/image/000020': LMDB read failed"):
        store.get(0, b"recB/image/000020")


def test_manifest_that_does_not_match_its_shards(tmp_path):
    path = tmp_path / "s"
    _write(path, {"recA": 3})
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["records"] = 7
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"manifest.json: shard 00000-of-00001 holds 3 records but the manifest says 7"):
        LMDBStore(path).manifest()
    manifest["shards"][0]["records"] = 3
    manifest["shards"][0]["checksum"] = "sha256:0"
    manifest_path.write_text(json.dumps(manifest))
    report = LMDBStore(path).verify()
    assert any("checksum" in p and "00000-of-00001" in p for p in report.problems)


def test_merge_joins_disjoint_shards_and_refuses_overlaps(tmp_path):
    _write(tmp_path / "a", {"recA": 2}, shard=(0, 2))
    _write(tmp_path / "b", {"recB": 3}, shard=(1, 2))
    merged = LMDBStore.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "ab")
    assert merged["counts"]["total"] == 5 and [s["index"] for s in merged["shards"]] == [0, 1]
    store = LMDBStore(tmp_path / "ab")
    assert store.verify().ok and len(store) == 5

    _write(tmp_path / "c", {"recC": 1}, shard=(1, 2))
    with pytest.raises(DataError, match=r"shard 1/2 is in both .*b and .*c"):
        LMDBStore.merge([tmp_path / "a", tmp_path / "b", tmp_path / "c"], tmp_path / "abc")
    _write(tmp_path / "d", {"recA": 1}, shard=(1, 2))
    with pytest.raises(DataError, match="recording 'recA' is in both"):
        LMDBStore.merge([tmp_path / "a", tmp_path / "d"], tmp_path / "ad")
    _write(tmp_path / "e", {"recE": 1}, shard=(1, 2), settings={**SETTINGS, "image_size": 64})
    with pytest.raises(DataError, match="different settings: image_size"):
        LMDBStore.merge([tmp_path / "a", tmp_path / "e"], tmp_path / "ae")
    _write(tmp_path / "f", {"recF": 1}, shard=(1, 3))
    with pytest.raises(DataError, match="one of 3 shards"):
        LMDBStore.merge([tmp_path / "a", tmp_path / "f"], tmp_path / "af")
    with pytest.raises(DataError, match="not empty"):
        LMDBStore.merge([tmp_path / "a"], tmp_path / "b")


def test_one_store_folder_holds_one_shard_build(tmp_path):
    _write(tmp_path / "s", {"recA": 1}, shard=(0, 2))
    with pytest.raises(ConfigError, match="already holds shard 00000-of-00002"):
        LMDBStore(tmp_path / "s").writer(settings=SETTINGS, shard_index=1, shard_count=2)
