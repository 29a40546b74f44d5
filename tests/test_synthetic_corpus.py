"""Corpus-level tests of the synthetic writers: layout, truth, determinism, reruns, the real loaders, the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import babyvlm
from babyvlm import registry
from babyvlm.core.constants import DAYS_PER_MONTH
from babyvlm.core.errors import ConfigError
from babyvlm.media import iter_frames, probe_video
from babyvlm.plugins.synthetic import saycam_writer
from babyvlm.plugins.synthetic.ego4d_writer import Ego4DOptions, plan_lengths, write_ego4d
from babyvlm.plugins.synthetic.ego4d_writer import build_world as build_ego4d_world
from babyvlm.plugins.synthetic.saycam_writer import (
    BIRTH_DATES,
    SaycamOptions,
    build_world,
    calendar_age,
    plan_videos,
    write_saycam,
)
from babyvlm.plugins.synthetic.speech import mentioned, normalise

OPTIONS = SaycamOptions(minutes=1.5, seed=7, size=64)
EGO_OPTIONS = Ego4DOptions(minutes=0.5, seed=7, size=64)
MESSY_OPTIONS = SaycamOptions(minutes=30, seed=6, size=32)  # a seed whose corpus shows every messy form (re-picked when the world changes its random draws)
SESSION = re.compile(r"[SAY]_\d{8}_\d{4}")
STEM = re.compile(r"(?P<child>[SAY])_(?P<date>\d{8})_(?P<months>\d{2})(?P<days>\d{2})_(?P<segment>\d{2})")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("saycam") / "corpus"
    return out, write_saycam(out, OPTIONS)


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> tuple[Path, dict]:
    """A bigger corpus of small frames: many sessions, every messy transcript form."""
    out = tmp_path_factory.mktemp("messy") / "corpus"
    return out, write_saycam(out, MESSY_OPTIONS)


@pytest.fixture(scope="module")
def ego_corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ego4d") / "corpus"
    return out, write_ego4d(out, EGO_OPTIONS)


def _registered(kind: str, name: str) -> bool:
    return name in registry.names(kind)


# ---- SAYCam layout and truth --------------------------------------------------------------------
def test_layout_names_and_ages(corpus):
    out, manifest = corpus
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == manifest["totals"]["videos"] >= 3
    assert {v["child"] for v in manifest["videos"]} == {"S", "A", "Y"}
    for path in videos:
        match = STEM.fullmatch(path.stem)
        assert match, path.name
        birth = BIRTH_DATES[match["child"]]
        date = dt.datetime.strptime(match["date"], "%Y%m%d").date()
        assert calendar_age(birth, date) == (int(match["months"]), int(match["days"]))  # name agrees with birth date
        assert 6 <= int(match["months"]) + int(match["days"]) / DAYS_PER_MONTH < 32
        assert (out / "asr" / f"{path.stem}.asr.json").is_file()
        assert (out / "annotations" / f"{path.stem}.objects.json").is_file()
    for entry in manifest["videos"]:
        assert (out / entry["files"]["transcript"]).is_file()
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix in {".tmp", ".partial"}]


def test_videos_decode_to_the_expected_frames(corpus):
    out, manifest = corpus
    for entry in manifest["videos"]:
        info = probe_video(out / entry["files"]["video"])
        assert (info.width, info.height, info.fps) == (64, 64, 5.0)
        frames = [frame for _, frame in iter_frames(out / entry["files"]["video"])]
        assert len(frames) == entry["num_frames"] and frames[0].shape == (64, 64, 3)


def test_annotations_are_inside_frames_and_objects_are_drawn_there(corpus):
    """Decoded pixels inside every box differ from the bare room; outside the boxes they match it."""
    out, manifest = corpus
    plans = {p.stem: p for p in plan_videos(OPTIONS)}
    checked = 0
    for entry in manifest["videos"]:
        data = json.loads((out / entry["files"]["annotations"]).read_text())
        assert (data["width"], data["height"], data["fps"]) == (64, 64, 5)
        assert len(data["images"]) == entry["num_frames"]
        by_frame: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 64 and y + h <= 64
            assert 0 < ann["area"] <= w * h
            by_frame.setdefault(ann["image_id"], []).append(ann)
        world = build_world(plans[entry["stem"]], OPTIONS)
        for index, (_, frame) in enumerate(iter_frames(out / entry["files"]["video"])):
            if index % 7 or index not in by_frame:
                continue
            bare = world.render(index, objects=False)[0].astype(int)
            diff = np.abs(frame.astype(int) - bare).mean(axis=2)
            outside = np.ones((64, 64), bool)
            for ann in by_frame[index]:
                x, y, w, h = ann["bbox"]
                outside[y:y + h, x:x + w] = False
                # at least half of the object's visible pixels really differ from the bare room
                assert (diff[y:y + h, x:x + w] > 12).sum() >= 0.5 * ann["area"], (entry["stem"], index, ann)
                checked += 1
            assert diff[outside].mean() < 8
    assert checked >= 10


def test_asr_and_csv_carry_the_true_times(corpus):
    out, manifest = corpus
    for entry in manifest["videos"]:
        asr = json.loads((out / entry["files"]["asr"]).read_text())
        assert asr["schema"] == "babyvlm.asr/1" and asr["video"] == entry["stem"] + ".mp4"
        truth = [u for u in entry["utterances"] if u["asr_text"]]
        assert [(a["start_ms"], a["end_ms"]) for a in asr["utterances"]] == \
            [(round(u["start"] * 1000), round(u["end"] * 1000)) for u in truth]
        assert [row["Time"] for row in _csv_rows(out, entry) if row["Time"]] == [u["csv"]["time"] for u in entry["utterances"]]


def _csv_rows(out: Path, entry: dict) -> list[dict]:
    """The CSV rows of one video (a whole-session file is split by its Video Name column)."""
    raw = (out / entry["files"]["transcript"]).read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(raw)))
    assert {"Time", "Video Name", "Utterance", "Speaker"} <= set(rows[0])
    if SESSION.fullmatch(Path(entry["files"]["transcript"]).stem):  # one file for the whole session
        return [row for row in rows if row["Video Name"].startswith(entry["stem"])]
    return rows


def test_utterances_mention_visible_objects_more_than_absent_ones(corpus):
    """Checked from the files alone: ASR words against the annotated objects during each utterance."""
    out, manifest = corpus
    visible = absent = 0
    for entry in manifest["videos"]:
        objects = json.loads((out / entry["files"]["annotations"]).read_text())
        names = {c["id"]: c["name"] for c in objects["categories"]}
        per_frame: dict[int, set[str]] = {}
        for ann in objects["annotations"]:
            per_frame.setdefault(ann["image_id"], set()).add(names[ann["category_id"]])
        for u in json.loads((out / entry["files"]["asr"]).read_text())["utterances"]:
            frames = range(u["start_ms"] * 5 // 1000, -(-u["end_ms"] * 5 // 1000))
            seen = set().union(*(per_frame.get(i, set()) for i in frames))
            for word in mentioned(u["text"]):
                visible += word in seen
                absent += word not in seen
    assert visible > 1.5 * absent and visible >= 8


def test_messy_transcripts_really_are_messy(messy):
    """Across a larger corpus every documented messy form appears (checked on the CSV text)."""
    out, manifest = messy
    for entry in manifest["videos"]:
        assert [row["Time"] for row in _csv_rows(out, entry) if row["Time"]] == [u["csv"]["time"] for u in entry["utterances"]]
    cells = [u["csv"] for v in manifest["videos"] for u in v["utterances"]]
    times = [c["time"] for c in cells]
    assert any(re.fullmatch(r"\d:\d", t) for t in times)  # 1:3
    assert any(re.fullmatch(r":\d\d", t) for t in times)  # :45
    assert any(re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", t) for t in times)  # range
    assert any(re.fullmatch(r"\d+\.\d+", t) for t in times)  # float-like
    texts = " ".join(c["text"] for c in cells)
    for mark in ("*", "[", "(to sibling)", "--"):
        assert mark in texts
    speakers = {c["speaker"].strip(" :") for c in cells}
    assert len(speakers) >= 4
    names = [Path(v["files"]["transcript"]).name for v in manifest["videos"]]
    assert any(" part " in n for n in names)
    assert any(SESSION.fullmatch(Path(n).stem) for n in names)  # a whole-session file
    assert any(not c["transcribed"] for c in cells) and any(c["unparsable_time"] for c in cells)
    assert any(c["continuation"] for c in cells)
    ages = {v["child"]: [] for v in manifest["videos"]}
    for v in manifest["videos"]:
        ages[v["child"]].append(v["age_months"])
    assert all(min(a) < 12 and max(a) > 26 for a in ages.values())


# ---- determinism and reruns ---------------------------------------------------------------------
def test_same_seed_same_bytes_different_seed_different_bytes(corpus, tmp_path):
    _, manifest = corpus
    again = write_saycam(tmp_path / "again", OPTIONS)
    assert again["sha256"] == manifest["sha256"]
    other = write_saycam(tmp_path / "other", SaycamOptions(minutes=1.5, seed=8, size=64))
    videos = [v for k, v in manifest["sha256"].items() if k.endswith(".mp4")]
    assert not set(videos) & set(other["sha256"].values())


def test_rerun_skips_a_complete_corpus_and_repairs_a_damaged_one(tmp_path):
    options = SaycamOptions(minutes=0.3, seed=2, size=32, children=("Y",))
    out = tmp_path / "c"
    first = write_saycam(out, options)
    video = out / next(k for k in first["sha256"] if k.endswith(".mp4"))
    stamp = video.stat().st_mtime_ns
    assert write_saycam(out, options)["sha256"] == first["sha256"]
    assert video.stat().st_mtime_ns == stamp  # nothing rewritten
    video.write_bytes(b"broken")
    repaired = write_saycam(out, options)
    assert repaired["sha256"] == first["sha256"] and video.stat().st_size > 6
    with pytest.raises(ConfigError, match="--overwrite"):
        write_saycam(out, SaycamOptions(minutes=0.3, seed=3, size=32, children=("Y",)))
    other = write_saycam(out, SaycamOptions(minutes=0.3, seed=3, size=32, children=("A",)), overwrite=True)
    assert not video.exists()  # the old corpus's files are gone, not mixed in
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted([*other["sha256"], "synthetic.json"])
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        write_saycam(tmp_path / "foreign", options)


def test_an_interrupted_run_is_completed_byte_identically(tmp_path, monkeypatch):
    options = SaycamOptions(minutes=0.3, seed=2, size=32, children=("Y",))
    clean = write_saycam(tmp_path / "clean", options)

    def power_cut(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(saycam_writer, "_write_transcripts", power_cut)
    with pytest.raises(RuntimeError):
        write_saycam(tmp_path / "c", options)
    monkeypatch.undo()
    assert json.loads((tmp_path / "c" / "synthetic.json").read_text())["complete"] is False
    (tmp_path / "c" / "videos" / "Y_20140101_1000_01.mp4.partial").write_bytes(b"half")
    resumed = write_saycam(tmp_path / "c", options)
    assert resumed["complete"] and resumed["sha256"] == clean["sha256"]
    assert not list((tmp_path / "c").rglob("*.partial"))


# ---- the real loaders ---------------------------------------------------------------------------
def _expected_skips(manifest: dict) -> dict[str, int]:
    """What a correct reader with the default caregiver filter must skip, by the saycam source's reasons."""
    counts = {"unparsable_time": 0, "empty_utterance": 0, "excluded_speaker": 0}
    for entry in manifest["videos"]:
        for u in entry["utterances"]:
            if u["csv"]["unparsable_time"]:
                counts["unparsable_time"] += 1
            elif not u["csv"]["transcribed"]:
                counts["empty_utterance"] += 1
            elif u["role"] == "child":
                counts["excluded_speaker"] += 1
    return {k: v for k, v in counts.items() if v}


@pytest.mark.skipif(not _registered("source", "saycam"), reason="the saycam source is not installed")
def test_saycam_source_reads_the_corpus_and_recovers_the_truth(corpus):
    out, manifest = corpus
    source = babyvlm.build("source", "saycam", root=out)
    recordings = {r.recording_id: r for r in source.recordings()}
    assert set(recordings) == {v["stem"] for v in manifest["videos"]}
    assert dict(source.report.counts) == _expected_skips(manifest)  # nothing unexpected skipped
    for entry in manifest["videos"]:
        recording = recordings[entry["stem"]]
        assert recording.child == entry["child"] and recording.segment == entry["segment"]
        assert abs(recording.age_months - entry["age_months"]) < 0.05
        assert recording.annotations_path is not None
        kept = [u for u in entry["utterances"] if u["csv"]["transcribed"] and not u["csv"]["unparsable_time"]
                and u["role"] != "child"]
        assert len(recording.utterances) == len(kept)
        for truth, parsed in zip(kept, recording.utterances, strict=True):
            assert 0 <= truth["start"] - parsed.start < 1.0  # the CSV's 1 s resolution
            assert normalise(parsed.text) == normalise(truth["csv"]["transcribed"])
            assert parsed.speaker == truth["role"]


@pytest.mark.skipif(not _registered("source", "saycam"), reason="the saycam source is not installed")
def test_saycam_source_reads_every_messy_form(messy):
    """All speakers kept: only the injected unreadable times and non-speech rows are skipped."""
    out, manifest = messy
    source = babyvlm.build("source", "saycam", root=out, speakers="all")
    recordings = {r.recording_id: r for r in source.recordings()}
    expected = _expected_skips(manifest)
    expected.pop("excluded_speaker", None)
    assert dict(source.report.counts) == expected
    assert len(recordings) == len(manifest["videos"])
    for entry in manifest["videos"]:
        kept = [u for u in entry["utterances"] if u["csv"]["transcribed"] and not u["csv"]["unparsable_time"]]
        parsed = recordings[entry["stem"]].utterances
        assert [u.speaker for u in parsed] == [u["role"] for u in kept]
        assert all(0 <= t["start"] - p.start < 1.0 for t, p in zip(kept, parsed, strict=True))
        assert [normalise(p.text) for p in parsed] == [normalise(t["csv"]["transcribed"]) for t in kept]


@pytest.mark.skipif(not _registered("source", "saycam"), reason="the saycam source is not installed")
def test_saycam_source_asr_mode_recovers_exact_times(corpus):
    out, manifest = corpus
    source = babyvlm.build("source", "saycam", root=out, transcripts="asr")
    recordings = {r.recording_id: r for r in source.recordings()}
    assert source.report.total == 0
    for entry in manifest["videos"]:
        truth = [u for u in entry["utterances"] if u["asr_text"]]
        parsed = recordings[entry["stem"]].utterances
        assert [(u.start, u.end, u.text) for u in parsed] == [(u["start"], u["end"], u["asr_text"]) for u in truth]


@pytest.mark.skipif(not _registered("source", "saycam"), reason="the saycam source is not installed")
def test_synthetic_source_generates_once_then_reads_with_saycam(tmp_path):
    root = tmp_path / "world"
    source = babyvlm.build("source", "synthetic", root=root, minutes=0.3, seed=4, size=32, children="S,A",
                           speakers="all")
    recordings = list(source.recordings())
    assert len(recordings) == source.manifest["totals"]["videos"] == 2
    assert {r.child for r in recordings} == {"S", "A"}
    assert all(r.utterances for r in recordings)
    assert "excluded_speaker" not in source.report.counts  # speakers="all" went through to the saycam source
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    again = babyvlm.build("source", "synthetic", root=root, minutes=0.3, seed=4, size=32, children="S,A")
    assert [r.recording_id for r in again.recordings()] == [r.recording_id for r in recordings]
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    with pytest.raises(ConfigError):
        babyvlm.build("source", "synthetic", root=root, minutes=0.3, seed=5, size=32, children="S,A")


# ---- Ego4D ----------------------------------------------------------------------------------------
def test_ego4d_layout_and_narrations(ego_corpus):
    out, manifest = ego_corpus
    meta = json.loads((out / "ego4d.json").read_text())
    assert {"date", "version", "description", "videos"} <= set(meta)
    narration = json.loads((out / "annotations" / "narration.json").read_text())
    assert len(meta["videos"]) == len(narration) == manifest["totals"]["videos"] >= 1
    for video in meta["videos"]:
        uid, vm = video["video_uid"], video["video_metadata"]
        assert {"fps", "num_frames", "display_resolution_width", "display_resolution_height"} <= set(vm)
        assert video["scenarios"]
        assert len(list(iter_frames(out / "full_scale" / f"{uid}.mp4"))) == vm["num_frames"]
        objects = json.loads((out / "annotations" / "objects" / f"{uid}.objects.json").read_text())
        assert len(objects["images"]) == vm["num_frames"]
        for name in ("narration_pass_1", "narration_pass_2"):
            entries = narration[uid][name]["narrations"]
            assert entries and narration[uid][name]["summaries"]
            for n in entries:
                assert n["narration_text"].startswith(("#C C ", "#O "))
                assert 0 <= n["timestamp_sec"] <= video["duration_sec"]
                assert n["timestamp_frame"] == round(n["timestamp_sec"] * vm["fps"])
        first = [n["narration_text"] for n in narration[uid]["narration_pass_1"]["narrations"]]
        second = [n["narration_text"] for n in narration[uid]["narration_pass_2"]["narrations"]]
        assert first != second  # a second annotator, not a copy


def test_ego4d_is_deterministic_and_a_different_domain(ego_corpus, corpus, tmp_path):
    _, manifest = ego_corpus
    assert write_ego4d(tmp_path / "again", EGO_OPTIONS)["sha256"] == manifest["sha256"]
    ego_world = build_ego4d_world(0, plan_lengths(EGO_OPTIONS)[0], EGO_OPTIONS)
    home_world = build_world(plan_videos(OPTIONS)[0], OPTIONS)
    ego = np.mean([ego_world.render(i)[0].reshape(-1, 3).mean(0) for i in range(0, ego_world.num_frames, 10)], 0)
    home = np.mean([home_world.render(i)[0].reshape(-1, 3).mean(0) for i in range(0, home_world.num_frames, 10)], 0)
    assert (home[0] - home[2]) - (ego[0] - ego[2]) > 15  # warm homes, cool workplaces


@pytest.mark.skipif(not _registered("source", "ego4d"), reason="the ego4d source is not installed")
def test_ego4d_source_reads_the_corpus(ego_corpus):
    out, manifest = ego_corpus
    source = babyvlm.build("source", "ego4d", root=out, narration_passes=("narration_pass_1", "narration_pass_2"))
    recordings = list(source.recordings())
    assert source.report.total == 0
    assert len(recordings) == manifest["totals"]["videos"]
    truth = {v["video_uid"]: v for v in manifest["videos"]}
    for recording in recordings:
        assert recording.annotations_path is not None
        assert len(recording.utterances) >= len(truth[recording.recording_id]["narrations"])
        assert all("#" not in u.text for u in recording.utterances)


@pytest.mark.skipif(not _registered("source", "ego4d"), reason="the ego4d source is not installed")
def test_synthetic_ego4d_source(tmp_path):
    source = babyvlm.build("source", "synthetic_ego4d", root=tmp_path / "ego", minutes=0.2, seed=1, size=32)
    assert len(list(source.recordings())) == 1 and source.report.total == 0


# ---- CLI ------------------------------------------------------------------------------------------
def _cli() -> str:
    return str(Path(sys.executable).parent / "babyvlm")


def test_cli_writes_a_corpus_and_rejects_bad_options(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = tmp_path / "cli"
    done = subprocess.run([_cli(), "synth", "saycam", str(out), "--minutes", "0.2", "--seed", "1", "--size", "32",
                           "--children", "A", "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 videos" in done.stdout and "per video-minute" in done.stdout
    manifest = json.loads((out / "synthetic.json").read_text())
    assert manifest["complete"] and manifest["options"]["children"] == ["A"]
    assert all((out / rel).is_file() for rel in manifest["sha256"])
    bad = subprocess.run([_cli(), "synth", "saycam", str(tmp_path / "bad"), "--children", "S,Q"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and "children" in bad.stderr and "Traceback" not in bad.stderr
