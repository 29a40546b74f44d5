"""The pretraining-set builder over a fake source of colour-coded videos (one colour per second)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import test_builder_support as support

from babyvlm import registry
from babyvlm.core.errors import DataError
from babyvlm.core.records import SkipReport, Utterance
from babyvlm.media import decode_jpeg, write_video
from babyvlm.plugins.pretraining_set import builder as builder_module
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set, shard_of
from babyvlm.plugins.pretraining_set.clips import BuildSettings, PlannedClip, plan_clips, plan_windows
from babyvlm.plugins.pretraining_set.stores import open_store

# shared fixtures: the fake source registered for every test (autouse), one corpus per module
corpus = support.corpus
fake_source = support.fake_source


def _build(root, out, quiet=True, **plan_options):
    plan = BuildPlan(source="fake", root=root, out=out, **plan_options)
    return build_pretraining_set(plan, log=(lambda line: None) if quiet else print)


def _offset(recording_id: str) -> int:
    return int(recording_id.split("_")[1][-1])  # write_corpus gives recording n colour offset n


def test_frames_are_routed_by_time(corpus, tmp_path):
    result = _build(corpus, tmp_path / "s")
    assert result.manifest["counts"]["by_format"] == {"image": 24, "interleaved": 3, "video": 12}
    for sample_id, (fmt, images, turns, meta) in support.store_contents(tmp_path / "s").items():
        offset = _offset(meta["recording_id"])
        times = [meta["frame_time"]] if fmt == "image" else meta["frame_times"]
        assert len(times) == len(images)
        for image, time in zip(images, times, strict=True):
            assert support.nearest_colour(decode_jpeg(image, sample_id)) == (offset + int(time)) % len(support.PALETTE)
        if fmt == "image":
            start, end = meta["clip"]
            number = int(sample_id.rsplit(".", 1)[1])
            count = max(1, round(end - start))
            target = start + (number + 0.5) * (end - start) / count
            assert time <= target + 1e-6 < time + 1 / support.FPS  # the last frame shown at the target time
            assert turns == [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": turns[1]["value"]}]
        if fmt == "video":
            start, end = meta["clip"]
            assert all(start - 1e-6 <= t < end for t in times) and times == sorted(times)
            assert turns[0]["value"].split("\n") == ["<image>"] * len(images)
        if fmt == "interleaved":
            assert len(images) == 4 and [t["from"] for t in turns] == ["human", "gpt"] * 4
            for (start, end), time in zip(meta["clips"], times, strict=True):  # scorer none: middle frames
                assert time <= (start + end) / 2 < time + 1 / support.FPS
    assert open_store(tmp_path / "s").verify().ok


def test_each_video_is_decoded_once(corpus, tmp_path, monkeypatch):
    opened = []
    real = builder_module.iter_lazy_frames

    def counting(path, **kwargs):
        opened.append(Path(path).name)
        return real(path, **kwargs)

    monkeypatch.setattr(builder_module, "iter_lazy_frames", counting)
    _build(corpus, tmp_path / "s")
    assert sorted(opened) == sorted(p.name for p in (corpus / "videos").glob("*.mp4"))


def test_manifest_reports_counts_provenance_and_source_skips(corpus, tmp_path):
    manifest = _build(corpus, tmp_path / "s", commit_every=5).manifest
    assert manifest["counts"]["by_child"] == {"A": 13, "S": 13, "Y": 13}
    assert manifest["counts"]["by_age_month"] == {"6": 13, "7": 13, "8": 13}
    assert manifest["skips"]["counts"] == {"bad_transcript_row": 1}  # the source's own report, merged
    assert manifest["source"]["name"] == "fake" and manifest["source"]["recordings_total"] == 3
    assert manifest["build"]["max_clip_sec"] == 10.0 and manifest["build"]["shard"] == "0/1"
    assert math.isclose(manifest["video_seconds"], 18.0, abs_tol=0.5)
    config = json.loads((tmp_path / "s" / "build_config.json").read_text())
    assert config["commit_every"] == 5 and config["source"] == "fake"


def _one_recording_corpus(root: Path, utterances: list, seconds: int = 6) -> Path:
    support.write_colour_video(root / "v.mp4", seconds)
    entry = {"id": "S_20140101_0600_01", "video": "v.mp4", "utterances": utterances, "child": "S", "age_months": 6}
    (root / "fake.json").write_text(json.dumps({"recordings": [entry]}))
    return root


def test_rejected_utterances_are_counted_by_reason(tmp_path):
    utterances = [[0.0, 0.4, "too short"], [0.5, 11.0, "too long"], [1.0, None, "   "], [2.0, 1.0, "backwards"],
                  [2.0, 4.0, "kept"], [7.0, None, "after the end"]]
    root = _one_recording_corpus(tmp_path / "c", utterances)
    result = _build(root, tmp_path / "s")
    assert dict(result.report.counts) == {"clip_too_short": 1, "clip_too_long": 1, "empty_utterance": 1,
                                          "bad_utterance_time": 1, "utterance_after_video_end": 1}
    assert result.manifest["counts"]["by_format"] == {"image": 2, "video": 1}  # one clip: no interleaved window


def test_unreadable_videos_are_counted_by_name_or_raised_when_strict(corpus, tmp_path):
    root = tmp_path / "c"
    support.write_corpus(root)
    videos = sorted((root / "videos").glob("*.mp4"))
    data = videos[0].read_bytes()
    videos[0].write_bytes(data[: len(data) // 2])  # truncated: the index at the end of the file is gone
    videos[1].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)  # garbage after a valid header
    result = _build(root, tmp_path / "s")
    assert result.report.counts["unreadable_video"] == 2 and result.failed == 2
    examples = " ".join(result.report.examples["unreadable_video"])
    assert videos[0].name in examples and videos[1].name in examples
    assert result.manifest["counts"]["total"] == 13  # the third recording is built
    assert open_store(tmp_path / "s").verify().ok
    with pytest.raises(DataError, match=videos[0].name):
        _build(root, tmp_path / "strict", strict=True)


def test_shards_merged_equal_a_single_build(corpus, tmp_path):
    _build(corpus, tmp_path / "single")
    ids = sorted(json.loads((corpus / "fake.json").read_text())["recordings"], key=lambda r: r["id"])
    assert sorted(shard_of(r["id"], 3) for r in ids) == [0, 1, 1]  # two shards used, one left empty
    for index in range(3):
        _build(corpus, tmp_path / f"part{index}", shard=(index, 3))
    groups = [open_store(tmp_path / f"part{i}").manifest()["shards"][0]["groups"] for i in range(3)]
    assert sorted(g for part in groups for g in part) == [r["id"] for r in ids] and groups[2] == []
    store_class = registry.get("store", "lmdb")
    parts = [tmp_path / "part2", tmp_path / "part1", tmp_path / "part0"]
    merged = store_class.merge(parts, tmp_path / "merged")
    assert support.store_contents(tmp_path / "merged") == support.store_contents(tmp_path / "single")
    assert merged["counts"] == open_store(tmp_path / "single").manifest()["counts"]
    assert open_store(tmp_path / "merged").verify().ok


def test_interrupted_build_resumes_to_the_same_store(corpus, tmp_path):
    _build(corpus, tmp_path / "reference")
    commits = []

    def crash_on_fifth_commit(line: str) -> None:
        if line.startswith("commit:"):
            commits.append(line)
            if len(commits) == 5:  # recording 1 is done (13 samples in 4 commits), recording 2 half-written
                raise KeyboardInterrupt  # stands in for a crash between two transactions

    plan = BuildPlan(source="fake", root=corpus, out=tmp_path / "s", commit_every=4)
    with pytest.raises(KeyboardInterrupt):
        build_pretraining_set(plan, log=crash_on_fifth_commit)
    assert not (tmp_path / "s" / "manifest.json").exists()
    interrupted = open_store(tmp_path / "s").verify()
    assert interrupted.orphans == 4 and interrupted.missing == 0 and not interrupted.ok
    result = _build(corpus, tmp_path / "s", commit_every=4)
    assert (result.resumed, result.built) == (1, 2)
    assert support.store_contents(tmp_path / "s") == support.store_contents(tmp_path / "reference")
    assert result.manifest["shards"][0]["checksum"] == open_store(tmp_path / "reference").manifest()["shards"][0]["checksum"]


def test_leftovers_of_a_recording_gone_from_the_source_are_removed(tmp_path):
    root = support.write_corpus(tmp_path / "c")
    commits = []

    def crash_on_fifth_commit(line: str) -> None:
        if line.startswith("commit:"):
            commits.append(line)
            if len(commits) == 5:  # recording 1 is done, recording 2 half-written (4 samples committed)
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_pretraining_set(BuildPlan(source="fake", root=root, out=tmp_path / "s", commit_every=4),
                              log=crash_on_fifth_commit)
    spec = json.loads((root / "fake.json").read_text())
    interrupted = spec["recordings"].pop(1)["id"]  # the half-written recording disappears from the source
    (root / "fake.json").write_text(json.dumps(spec))
    lines = []
    result = build_pretraining_set(BuildPlan(source="fake", root=root, out=tmp_path / "s", commit_every=4),
                                   log=lines.append)
    assert result.removed_leftovers == 4 and (result.resumed, result.built) == (1, 1)
    assert f"removed 4 leftover samples of 1 interrupted recording(s) the source no longer yields: {interrupted}" in lines
    assert "4 leftover samples removed" in result.summary()
    assert open_store(tmp_path / "s").verify().ok
    assert not any(meta["recording_id"] == interrupted for *_, meta in support.store_contents(tmp_path / "s").values())


def test_formats_and_window_settings(corpus, tmp_path):
    settings = BuildSettings(formats=("interleaved",), window_min=2, window_max=2, stride=1)
    result = _build(corpus, tmp_path / "s", settings=settings)
    assert result.manifest["counts"]["by_format"] == {"interleaved": 9}  # 4 clips -> windows at 0, 1, 2


def _clip(index: int, start: float, end: float) -> PlannedClip:
    return PlannedClip(index, start, end, "t", "", (start,), (start,), start)


def test_windows_slide_with_stride_and_stop_at_long_silences():
    settings = BuildSettings(window_min=4, window_max=8, stride=3, max_gap_sec=30)
    clips = [_clip(i, 2.0 * i, 2.0 * i + 1) for i in range(10)]
    windows = plan_windows(clips, settings, "rec")
    assert [w[0] for w in windows] == [0, 3, 6]
    assert all(4 <= len(w) <= 8 and w == list(range(w[0], w[0] + len(w))) for w in windows)
    assert windows == plan_windows(clips, settings, "rec")  # deterministic
    gapped = clips[:5] + [_clip(i, 100.0 + 2 * i, 101.0 + 2 * i) for i in range(5, 10)]
    assert all(max(w) < 5 or min(w) >= 5 for w in plan_windows(gapped, settings, "rec"))


def test_open_ended_utterances_run_to_the_next_one_capped():
    settings = BuildSettings(min_clip_sec=1.0, max_clip_sec=3.0, video_frames=8)
    utterances = [Utterance(0.0, None, "a"), Utterance(2.0, None, "b"), Utterance(8.0, None, "c")]
    clips = plan_clips(utterances, duration=9.5, fps=5, settings=settings, report=SkipReport(), where="rec")
    assert [(c.start, c.end) for c in clips] == [(0.0, 2.0), (2.0, 5.0), (8.0, 9.5)]
    assert [len(c.video_times) for c in clips] == [8, 8, 7] and [len(c.image_times) for c in clips] == [2, 3, 2]


def test_frames_are_scaled_and_rotated_as_configured(tmp_path):
    top, bottom = support.PALETTE[0], support.PALETTE[2]
    frame = np.zeros((64, 48, 3), np.uint8)
    frame[:32], frame[32:] = top, bottom
    write_video(tmp_path / "c" / "v.mp4", [frame] * 20, support.FPS)
    entry = {"id": "S_20140101_0600_01", "video": "v.mp4", "child": "S", "age_months": 6,
             "utterances": [[0.5, 3.5, "half and half"]]}
    (tmp_path / "c" / "fake.json").write_text(json.dumps({"recordings": [entry]}))
    settings = BuildSettings(formats=("image",), image_size=32)
    for rotation, expected_top in ((0, 0), (180, 2)):
        out = tmp_path / f"s{rotation}"
        _build(tmp_path / "c", out, settings=settings, source_options={"rotation": rotation})
        for _, sample in open_store(out).iter_samples():
            pixels = decode_jpeg(sample.images[0], sample.sample_id)
            assert pixels.shape == (32, 24, 3)  # longer side 32, aspect kept
            assert support.nearest_colour(pixels[:12]) == expected_top
