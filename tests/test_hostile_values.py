"""Values that are not data: NaN/inf times and durations, negative durations, NUL bytes, overlong
utterances, duplicate Ego4D video_uids, and a SAYCam transcript whose Video Name names another video.
Each is a counted skip with a reason and an example, and an error under ``strict``."""

from __future__ import annotations

import json

import pytest
from fixtures_media import tiny_video, write_asr, write_csv, write_ego4d_root, write_json

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins.ego4d import Ego4DSource
from babyvlm.plugins.saycam import SaycamSource

STEM = "S_20141029_2412_02"
OTHER = "A_20150101_0805_01"
UID, SECOND, THIRD = "uid-a", "uid-b", "uid-c"


def saycam_with_rows(root, rows):
    tiny_video(root / "videos" / f"{STEM}.mp4", seconds=4)
    tiny_video(root / "videos" / f"{OTHER}.mp4", seconds=4)
    write_csv(root / "transcripts" / f"{STEM}.csv", rows)
    write_csv(root / "transcripts" / f"{OTHER}.csv", [("0:01", "", "the other video", "Mom")])
    return root


def test_saycam_rows_that_are_not_data_are_counted(tmp_path):
    root = saycam_with_rows(tmp_path, [
        ("0:01", f"{STEM}.mp4", "look at the ball", "Mom"),
        ("0:02", "", "a NUL\x00byte", "Mom"),  # line 3
        ("9" * 400, "", "an infinite time", "Mom"),  # line 4: 400 digits overflow a float
        ("0:03", "", "word " * 20, "Mom"),  # line 5: over the limit below
        ("0:03", f"{OTHER}.mp4", "said in the other video", "Mom"),  # line 6: names another video
        ("0:04", f"{STEM}", "all done", "Mom"),
    ])
    source = SaycamSource(root, max_utterance_chars=60)
    recordings = {r.recording_id: r for r in source.recordings()}
    assert [u.text for u in recordings[STEM].utterances] == ["look at the ball", "all done"]
    assert [u.text for u in recordings[OTHER].utterances] == ["the other video"]  # not given the stray row
    where = f"transcripts/{STEM}.csv"
    report = source.report
    assert {reason: report.counts[reason] for reason in
            ("nul_byte", "unparsable_time", "utterance_too_long", "video_name_mismatch")} == dict.fromkeys(
        ("nul_byte", "unparsable_time", "utterance_too_long", "video_name_mismatch"), 1)
    assert report.examples["nul_byte"] == [f"{where}:3 (a cell holds a NUL byte)"]
    assert "not a finite number of seconds" in report.examples["unparsable_time"][0]
    assert report.examples["utterance_too_long"] == [f"{where}:5 (99 characters, over max_utterance_chars=60)"]
    assert report.examples["video_name_mismatch"] == [
        f"{where}:6 (Video Name '{OTHER}.mp4', but the file is {STEM}'s transcript)"]
    with pytest.raises(DataError, match=f"{root}/{where}:6 \\(Video Name .*names another video .*strict=True"):
        list(SaycamSource(root, strict=True).recordings())  # rows are routed to videos before they are read
    write_csv(root / "transcripts" / f"{STEM}.csv", [("0:01", "", "a NUL\x00byte", "Mom")])
    with pytest.raises(DataError, match=f"{where}:2 \\(a cell holds a NUL byte\\): text contains a NUL byte"):
        list(SaycamSource(root, strict=True).recordings())
    with pytest.raises(ConfigError, match="max_utterance_chars must be a whole number >= 1"):
        SaycamSource(root, max_utterance_chars=0)


def test_asr_nan_and_infinite_times_are_counted(tmp_path):
    tiny_video(tmp_path / "videos" / f"{STEM}.mp4", seconds=4)
    write_asr(tmp_path / "asr" / f"{STEM}.asr.json", f"{STEM}.mp4", [
        {"start_ms": 500, "end_ms": 1500, "text": "look"},
        {"start_ms": float("nan"), "end_ms": 2000, "text": "when?"},
        {"start_ms": 2000, "end_ms": float("inf"), "text": "forever"},
        {"start_ms": 2500, "end_ms": 3000, "text": "a\x00b"},
    ])
    assert "NaN" in (tmp_path / "asr" / f"{STEM}.asr.json").read_text()  # what Python's json writes and reads
    source = SaycamSource(tmp_path)
    [recording] = list(source.recordings())
    assert [u.text for u in recording.utterances] == ["look"]
    where = f"asr/{STEM}.asr.json"
    assert source.report.examples["bad_time"] == [f"{where}:utterances[1] (start_ms nan is not a finite number)",
                                                  f"{where}:utterances[2] (end_ms inf is not a finite number)"]
    assert source.report.examples["nul_byte"] == [f"{where}:utterances[3] (NUL byte at character 1)"]


def ego4d_root(tmp_path, edit):
    write_ego4d_root(tmp_path, {UID: [(0.5, "#C C picks up a cup"), (1.0, "#C C waits"),
                                      (1.0, "#C C drops\x00it"), (1.5, "#C C " + "runs " * 30)],
                                SECOND: [(0.5, "#C C sits")], THIRD: [(0.5, "#C C stands")]})
    narration = json.loads((tmp_path / "annotations" / "narration.json").read_text())
    narration[UID]["narration_pass_1"]["narrations"][1]["timestamp_sec"] = float("inf")
    write_json(tmp_path / "annotations" / "narration.json", narration)
    metadata = json.loads((tmp_path / "ego4d.json").read_text())
    edit(metadata["videos"])
    write_json(tmp_path / "ego4d.json", metadata)
    return tmp_path


def test_ego4d_values_that_are_not_data_are_counted(tmp_path):
    def edit(videos):
        by_uid = {v["video_uid"]: v for v in videos}
        by_uid[SECOND]["duration_sec"] = float("nan")
        by_uid[THIRD]["duration_sec"] = -4.0
        videos.append(dict(by_uid[UID], duration_sec=99.0))  # the same uid again, disagreeing

    source = Ego4DSource(ego4d_root(tmp_path, edit), max_utterance_chars=100)
    [recording] = list(source.recordings())
    assert recording.recording_id == UID and [u.text for u in recording.utterances] == ["the person picks up a cup"]
    assert recording.meta["duration_sec"] == 2.0  # the first entry of the duplicated uid is used
    examples = source.report.examples
    assert examples["duplicate_video_uid"] == [
        f"ego4d.json:videos[3] (video_uid {UID!r} is listed earlier; the first entry is used)"]
    assert examples["bad_duration"] == [
        "ego4d.json:videos[1] (duration_sec is nan; expected a finite number > 0)",
        "ego4d.json:videos[2] (duration_sec is -4.0; expected a finite number > 0)"]
    narrations = f"annotations/narration.json:{UID}.narration_pass_1.narrations"
    assert examples["bad_time"] == [f"{narrations}[1] (timestamp_sec inf is not a finite number)"]
    assert examples["nul_byte"] == [f"{narrations}[2] (NUL byte at character 10)"]
    assert examples["utterance_too_long"] == [f"{narrations}[3] (155 characters, over max_utterance_chars=100)"]
    assert "unknown_video_uid" not in source.report.counts  # the bad-duration videos are counted once
    with pytest.raises(DataError, match=r"ego4d.json:videos\[1\]: a video's duration .* is nan.*strict=True"):
        list(Ego4DSource(tmp_path, strict=True).recordings())


class _NaNScorer:
    """A scorer whose scores are NaN: NaN passes every ``score < threshold`` test, so it must be caught."""

    video_threshold = image_threshold = 0.0

    def score_video(self, frames, text):
        return float("nan") if "0 of" in text else 1.0

    def score_images(self, images, texts):
        return [float("nan")] * len(images)


@hookimpl
def register_scorers(register):  # registered by the test below only
    register("nan", _NaNScorer)


def test_non_finite_scores_are_counted_not_kept(tmp_path):
    import sys

    import test_builder_support as support

    from babyvlm import registry
    from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
    from babyvlm.plugins.pretraining_set.stores import open_store

    support.register_fake_source()
    registry.register_plugin(sys.modules[__name__], "nan_scorer")
    try:
        root = support.write_corpus(tmp_path / "corpus", recordings=1, seconds=4)
        result = build_pretraining_set(BuildPlan(source="fake", root=root, out=tmp_path / "s", scorer="nan"),
                                       log=lambda _: None)
        counts = open_store(tmp_path / "s").manifest()["counts"]["by_format"]
        assert "image" not in counts and "interleaved" not in counts  # every image score was NaN
        assert counts["video"] == 2  # the clip of "utterance 0 of ..." scored NaN: dropped
        assert result.report.counts["non_finite_score"] >= 1 + 2  # one video, and every image of the kept clips
        assert "(video score nan)" in result.report.examples["non_finite_score"][0]
    finally:
        registry.reset()
