"""``babyvlm data``: build, stats, verify, export/import, merge, and clear errors for bad input."""

from __future__ import annotations

import json

import lmdb
import numpy as np
import pytest
import test_builder_support as support
from click.testing import CliRunner
from fixtures_media import tiny_video, write_csv
from test_lmdb_store import damage_pages_holding

from babyvlm.cli import cli
from babyvlm.media import encode_jpeg
from babyvlm.plugins.pretraining_set.stores import open_store

# shared fixtures: the fake source registered for every test (autouse), one corpus per module
corpus = support.corpus
fake_source = support.fake_source


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert (result.exit_code == 0) == ok, result.output
    assert "Traceback" not in result.output
    return result


def test_build_stats_verify(corpus, tmp_path):
    out = tmp_path / "s"
    built = run("data", "build", "--source", "fake", "--root", corpus, "--out", out, "--commit-every", "8")
    assert "39 samples (image 24, interleaved 3, video 12)" in built.output
    assert "bad_transcript_row: 1" in built.output  # the source's skips are reported
    stats = run("data", "stats", out)
    assert "samples: 39" in stats.output and "by child: A: 13, S: 13, Y: 13" in stats.output
    assert "by age month: 6: 13, 7: 13, 8: 13" in stats.output and "hours of video: 0.005" in stats.output
    data = json.loads(run("data", "stats", out, "--json").output)
    assert data["counts"]["by_format"] == {"image": 24, "interleaved": 3, "video": 12}
    verified = run("data", "verify", out)
    assert "missing: 0  duplicates: 0  orphans: 0  corrupted: 0" in verified.output and "OK" in verified.output


def test_verify_names_a_corrupted_key_and_fails(corpus, tmp_path):
    out = tmp_path / "s"
    run("data", "build", "--source", "fake", "--root", corpus, "--out", out)
    env = lmdb.open(str(out / "shards" / "00000-of-00001"), max_dbs=4)
    key = b"S_20140101_0700_01/image/000002.001"
    with env.begin(write=True) as txn:
        db = env.open_db(b"samples", txn=txn)
        value = bytearray(txn.get(key, db=db))
        value[-200:-100] = bytes(100)  # zero a stretch inside the JPEG
        txn.put(key, bytes(value), db=db)
    env.close()
    result = run("data", "verify", out, ok=False)
    assert "corrupted record: shard 00000-of-00001 key 'S_20140101_0700_01/image/000002.001'" in result.output
    assert "FAILED" in result.output


def test_export_of_a_damaged_store_fails_cleanly(corpus, tmp_path):
    run("data", "build", "--source", "fake", "--root", corpus, "--out", tmp_path / "s")
    damage_pages_holding(tmp_path / "s", b"utterance 2 of S_20140101_0700_01")
    result = run("data", "export", tmp_path / "s", tmp_path / "llava", ok=False)
    assert isinstance(result.exception, SystemExit)  # a DataError the CLI printed, not a crash
    # which page the damage lands on moves with the store's layout (paths of other lengths under another
    # temp folder): LMDB's own page check or the record's checksum/decoding names it, both as one line
    assert result.output.startswith(f"Error: {tmp_path / 's'}") and "00000-of-00001" in result.output
    assert ("LMDB read failed after key" in result.output or "does not decode" in result.output
            or "checksum" in result.output), result.output
    assert "Traceback" not in result.output
    assert not list((tmp_path / "llava").glob(".data.json*")) and not (tmp_path / "llava" / "data.json").exists()


def test_export_import_round_trip(corpus, tmp_path):
    run("data", "build", "--source", "fake", "--root", corpus, "--out", tmp_path / "s")
    run("data", "export", tmp_path / "s", "--format", "llava", tmp_path / "llava")
    records = json.loads((tmp_path / "llava" / "data.json").read_text())
    assert len(records) == 39
    first = records[0]
    assert set(first) == {"id", "image", "conversations", "format", "meta"}
    for record in records:  # one image: a path string (LLaVA-1.5's form); several: a list
        paths = [record["image"]] if record["format"] == "image" else record["image"]
        assert isinstance(record["image"], str) == (record["format"] == "image")
        assert all((tmp_path / "llava" / p).is_file() for p in paths)
    assert json.loads((tmp_path / "llava" / "export.json").read_text())["samples"] == 39
    run("data", "import", "--format", "llava", tmp_path / "llava" / "data.json", "--out", tmp_path / "back")
    assert support.store_contents(tmp_path / "back") == support.store_contents(tmp_path / "s")
    assert run("data", "verify", tmp_path / "back").exit_code == 0


def _llava_json(folder, image_path: str, record_id: str = "rec-7"):
    folder.mkdir(parents=True, exist_ok=True)
    records = [{"id": record_id, "image": image_path,
                "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "a ball"}]}]
    path = folder / "data.json"
    path.write_text(json.dumps(records))
    return path


def test_import_refuses_paths_that_leave_the_json_folder(tmp_path):
    (tmp_path / "outside.jpg").write_bytes(b"\xff\xd8\xff")
    escaping = _llava_json(tmp_path / "llava", "../outside.jpg")
    result = run("data", "import", "--format", "llava", escaping, "--out", tmp_path / "s", ok=False)
    assert "record 'rec-7'" in result.output and "'../outside.jpg' leaves its root" in result.output
    absolute = _llava_json(tmp_path / "llava2", str(tmp_path / "outside.jpg"), "rec-8")
    result = run("data", "import", "--format", "llava", absolute, "--out", tmp_path / "s2", ok=False)
    assert "record 'rec-8'" in result.output and "absolute" in result.output
    (tmp_path / "llava3").mkdir()
    (tmp_path / "llava3" / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    linked = _llava_json(tmp_path / "llava3", "link.jpg", "rec-9")
    result = run("data", "import", "--format", "llava", linked, "--out", tmp_path / "s3", ok=False)
    assert "record 'rec-9'" in result.output and "leaves" in result.output


@pytest.mark.parametrize("content", [b"\xff\xd8\xff\xe0 only a JPEG header", b"name,age\nball,2\n"])
def test_import_decodes_every_image_before_writing_anything(tmp_path, content):
    good = tmp_path / "llava" / "good.jpg"
    good.parent.mkdir()
    good.write_bytes(encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    (tmp_path / "llava" / "bad.jpg").write_bytes(content)
    turns = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "a ball"}]
    records = [{"id": "fine", "image": "good.jpg", "conversations": turns},
               {"id": "rec-5", "image": "bad.jpg", "conversations": turns}]
    (tmp_path / "llava" / "data.json").write_text(json.dumps(records))
    result = run("data", "import", "--format", "llava", tmp_path / "llava" / "data.json", "--out", tmp_path / "s",
                 ok=False)
    assert "record 'rec-5' (#1): image 'bad.jpg'" in result.output and "does not decode as an image" in result.output
    assert not (tmp_path / "s").exists()


def test_import_reports_bad_records_by_id(tmp_path):
    path = _llava_json(tmp_path / "llava", "missing.jpg", "rec-3")
    result = run("data", "import", "--format", "llava", path, "--out", tmp_path / "s", ok=False)
    assert "record 'rec-3'" in result.output and "'missing.jpg' not found" in result.output
    records = json.loads(path.read_text())
    records[0]["conversations"][0]["value"] = "<image><image>"
    (tmp_path / "llava" / "missing.jpg").write_bytes(b"\xff\xd8\xff")
    path.write_text(json.dumps(records))
    result = run("data", "import", "--format", "llava", path, "--out", tmp_path / "s", ok=False)
    assert "2 <image> tokens but 1 image paths" in result.output


def test_shard_merge_and_refusals(corpus, tmp_path):
    for index in range(3):
        run("data", "build", "--source", "fake", "--root", corpus, "--out", tmp_path / f"p{index}",
            "--shard", f"{index}/3")
    merged = run("data", "merge", tmp_path / "p0", tmp_path / "p1", tmp_path / "p2", "--out", tmp_path / "m")
    assert "merged 3 shards, 39 samples" in merged.output
    refused = run("data", "merge", tmp_path / "p0", tmp_path / "p0", "--out", tmp_path / "x", ok=False)
    assert "shard 0/3 is in both" in refused.output
    partial = run("data", "merge", tmp_path / "p0", tmp_path / "p2", "--out", tmp_path / "partial", ok=False)
    assert "shard(s) 1/3 missing" in partial.output
    assert not (tmp_path / "partial" / "manifest.json").exists()
    run("data", "build", "--source", "fake", "--root", corpus, "--out", tmp_path / "q1", "--shard", "1/3",
        "--stride", "2")
    refused = run("data", "merge", tmp_path / "p0", tmp_path / "q1", "--out", tmp_path / "y", ok=False)
    assert "different settings: stride" in refused.output
    bad = run("data", "build", "--source", "fake", "--root", corpus, "--out", tmp_path / "z", "--shard", "3/3", ok=False)
    assert "--shard expects i/N with 0 <= i < N" in bad.output


def test_manifest_mismatch_is_reported(corpus, tmp_path):
    out = tmp_path / "s"
    run("data", "build", "--source", "fake", "--root", corpus, "--out", out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["counts"]["by_format"]["video"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = run("data", "verify", out, ok=False)
    assert "manifest.json: counts" in result.output and "FAILED" in result.output


def test_resumed_build_with_other_settings_is_refused(corpus, tmp_path):
    out = tmp_path / "s"
    run("data", "build", "--source", "fake", "--root", corpus, "--out", out)
    result = run("data", "build", "--source", "fake", "--root", corpus, "--out", out, "--max-clip-sec", "5", ok=False)
    assert "max_clip_sec: 10.0 -> 5.0" in result.output


def test_synthetic_corpus_end_to_end(tmp_path):
    """synth -> build -> verify -> stats with the real (bundled) saycam source and synthetic generator."""
    run("synth", "saycam", tmp_path / "corpus", "--minutes", "0.5", "--seed", "3", "--size", "96", "--quiet")
    run("data", "build", "--source", "saycam", "--root", tmp_path / "corpus", "--out", tmp_path / "s")
    assert "OK" in run("data", "verify", tmp_path / "s").output
    stats = json.loads(run("data", "stats", tmp_path / "s", "--json").output)
    assert stats["counts"]["total"] > 0 and stats["counts"]["by_format"]["image"] > 0
    assert set(stats["counts"]["by_child"]) <= {"S", "A", "Y"} and stats["hours_of_video"] > 0
    first = next(open_store(tmp_path / "s").iter_samples(["image"]))[1]
    assert first.meta["recording_id"] in {p.stem for p in (tmp_path / "corpus").rglob("*.mp4")}


def _saycam_corpus(root, texts: dict[str, str]):
    for stem, text in texts.items():
        tiny_video(root / "videos" / f"{stem}.mp4")
        write_csv(root / "transcripts" / f"{stem}.csv", [("0:00", f"{stem}.mp4", text, "M")])
    return root


def test_rerun_rebuilds_a_recording_whose_transcript_changed(tmp_path):
    edited, untouched = "S_20141029_2412_02", "A_20150101_0805_01"
    root = _saycam_corpus(tmp_path / "corpus", {edited: "look at the red ball", untouched: "hello there"})
    args = ("data", "build", "--source", "saycam", "--root", root, "--out", tmp_path / "s")
    run(*args)
    write_csv(root / "transcripts" / f"{edited}.csv", [("0:00", f"{edited}.mp4", "look at the blue ball", "M")])
    rerun = run(*args)
    assert f"rebuilding {edited}: its transcript, video or metadata changed" in rerun.output
    assert "recordings: 1 built, 1 already done" in rerun.output and "1 redone because their inputs changed" in rerun.output
    texts = {s.sample_id: s.conversations[-1]["value"] for _, s in open_store(tmp_path / "s").iter_samples()}
    assert {t for i, t in texts.items() if i.startswith(edited)} == {"look at the blue ball"}  # no stale sample
    assert {t for i, t in texts.items() if i.startswith(untouched)} == {"hello there"}
    assert "OK" in run("data", "verify", tmp_path / "s").output


def test_build_from_a_root_without_recordings_fails_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("data", "build", "--source", "saycam", "--root", tmp_path / "empty", "--out", tmp_path / "s", ok=False)
    assert "the 'saycam' source found no recordings, so nothing was built (skipped: 0)" in result.output
    unmatched = tmp_path / "unmatched"
    write_csv(unmatched / "S_20141029_2412_02.csv", [("0:01", "", "hello", "M")])
    result = run("data", "build", "--source", "saycam", "--root", unmatched, "--out", tmp_path / "s", ok=False)
    assert "found no recordings" in result.output and "transcript_without_video: 1" in result.output
    assert not (tmp_path / "s").exists()
