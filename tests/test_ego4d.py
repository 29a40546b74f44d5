"""The ``ego4d`` source: narration files, text rules, windows, matching, skips and malformed JSON."""

import json

import pytest
from fixtures_media import ego4d_video_entry, tiny_video, write_ego4d_root, write_json

import babyvlm
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.records import Utterance
from babyvlm.plugins.ego4d import Ego4DSource
from babyvlm.plugins.ego4d.narration import clean_narration, is_summary

UID = "0a1b2c3d-uid"


def read(root, **options):
    source = Ego4DSource(root, **options)
    return source, list(source.recordings())


@pytest.mark.parametrize("raw, text", [
    ("#C C picks up a cup", "the person picks up a cup"),
    ("#c C opens the fridge.", "the person opens the fridge."),
    ("#C C's hand holds the knife", "the person's hand holds the knife"),
    ("#O man X gives C a cup", "the man gives the person a cup"),
    ("#O The woman Y talks to C", "The woman talks to the person"),
    ("#O a boy B runs", "a boy runs"),
    ("#C C looks around #unsure", "the person looks around"),
    ("#Unsure #C C stirs", "the person stirs"),
    ("#unsure", ""),
    ("#C", ""),
    ("C C", "the person the person"),
    ("vitamin C tablet", "vitamin the person tablet"),  # a known cost of the C rule, documented
])
def test_narration_text_rules(raw, text):
    assert clean_narration(raw) == text


def test_camera_wearer_phrase_and_summaries():
    assert clean_narration("#C C waves", camera_wearer="the child") == "the child waves"
    assert is_summary("#Summary C cooked dinner") and is_summary("  #summary x")
    assert not is_summary("#C C sums up the bill")


def test_narrations_become_clamped_windows(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(1.9, "#O man X waves #unsure"), (0.5, "#C C picks up a cup"),
                                      (3.0, "#C C puts it down")]}, durations={UID: 4.0}, seconds=4.0)
    source, [recording] = read(tmp_path)
    assert recording.recording_id == UID
    assert recording.video_path == tmp_path / "full_scale" / f"{UID}.mp4"
    assert (recording.source, recording.rotation, recording.child, recording.age_months) == ("ego4d", 0, "", None)
    assert recording.utterances == [
        Utterance(0.0, 2.5, "the person picks up a cup", "narrator"),  # start clamped to 0
        Utterance(0.9, 3.9, "the man waves", "narrator"),
        Utterance(2.0, 4.0, "the person puts it down", "narrator"),  # end clamped to the duration
    ]
    assert recording.meta == {"video": f"full_scale/{UID}.mp4", "scenarios": ["Cooking"], "duration_sec": 4.0,
                              "fps": 5.0, "width": 32, "height": 32, "narration_passes": ["narration_pass_1"]}
    assert source.report.total == 0


def test_window_option(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(1.0, "#C C sits"), (2.0, "#C C stands")]})
    source, [recording] = read(tmp_path, window=(0.25, 0.5))
    assert recording.utterances == [Utterance(0.75, 1.5, "the person sits", "narrator"),
                                    Utterance(1.75, 2.0, "the person stands", "narrator")]
    source, [recording] = read(tmp_path, window=(0, 1))
    assert recording.utterances == [Utterance(1.0, 2.0, "the person sits", "narrator")]
    assert source.report.examples == {"timestamp_out_of_range": [
        f"annotations/narration.json:{UID}.narration_pass_1.narrations[1] (2 s leaves an empty window)"]}
    for bad in ((1.0,), (-1.0, 1.0), (0, 0), "wide"):
        with pytest.raises(ConfigError, match="window must be"):
            Ego4DSource(tmp_path, window=bad)


def test_skipped_narrations_are_counted_with_key_paths(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(0.5, "#C C ok"), (1.0, "#Summary C cooks"), (1.2, "#unsure"),
                                      (9.0, "#C C too late")]})
    narration = tmp_path / "annotations" / "narration.json"
    data = json.loads(narration.read_text())
    data[UID]["narration_pass_1"]["narrations"].append({"timestamp_sec": "soon", "narration_text": "#C C x"})
    write_json(narration, data)
    source, [recording] = read(tmp_path)
    assert [u.text for u in recording.utterances] == ["the person ok"]
    key = f"annotations/narration.json:{UID}.narration_pass_1.narrations"
    assert source.report.examples == {
        "summary_narration": [f"{key}[1] ('#Summary C cooks')"],
        "empty_narration": [f"{key}[2] ('#unsure')"],
        "timestamp_out_of_range": [f"{key}[3] (9 s not in [0, 2])"],
        "bad_narration": [f"{key}[4] (timestamp_sec: expected a number, got 'soon')"],
    }
    with pytest.raises(DataError) as info:
        read(tmp_path, strict=True)
    assert str(info.value) == (f"{tmp_path}/{key}[4]: malformed narration: timestamp_sec: expected a number, "
                               "got 'soon' (strict=True; strict=False counts it and goes on)")


def test_narration_passes(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(1.5, "#C C one")]})
    narration = tmp_path / "annotations" / "narration.json"
    data = json.loads(narration.read_text())
    data[UID]["narration_pass_2"] = {"narrations": [{"timestamp_sec": 1.1, "narration_text": "#C C two"}]}
    write_json(narration, data)
    texts = {}
    for passes in ("narration_pass_1", ("narration_pass_2",), ("narration_pass_1", "narration_pass_2")):
        _, [recording] = read(tmp_path, narration_passes=passes)
        texts[str(passes)] = [u.text for u in recording.utterances]
    assert texts == {
        "narration_pass_1": ["the person one"],
        "('narration_pass_2',)": ["the person two"],
        "('narration_pass_1', 'narration_pass_2')": ["the person two", "the person one"],  # sorted by start
    }
    source, recordings = read(tmp_path, narration_passes=("narration_pass_3",))
    assert recordings == []
    assert source.report.examples == {"video_without_narrations": [f"full_scale/{UID}.mp4 (no narration_pass_3)"]}


def test_missing_and_unknown_videos(tmp_path):
    write_ego4d_root(tmp_path, {"has-video": [(0.5, "#C C a")], "no-video": [(0.5, "#C C b")]},
                     videos=["has-video", "stray"])
    narration = tmp_path / "annotations" / "narration.json"
    data = json.loads(narration.read_text())
    data["unlisted"] = {"narration_pass_1": {"narrations": [{"timestamp_sec": 0.1, "narration_text": "#C C c"}]}}
    write_json(narration, data)
    source, recordings = read(tmp_path)
    assert [r.recording_id for r in recordings] == ["has-video"]
    assert source.report.examples == {
        "narrations_without_video": ["annotations/narration.json:no-video (no no-video.mp4 under the root)"],
        "unknown_video_uid": ["annotations/narration.json:unlisted (not listed in ego4d.json)"],
        "video_without_narrations": ["full_scale/stray.mp4 (no narration_pass_1)"],
    }
    with pytest.raises(DataError, match=f"^{tmp_path}/annotations/narration.json:no-video: narrated video is missing"):
        read(tmp_path, strict=True)


@pytest.mark.parametrize("which, content, message", [
    ("ego4d.json", '{"videos": [', "invalid JSON at line 1, column 13: Expecting value"),
    ("ego4d.json", '{"videos": {}}', "key 'videos': expected a list of video entries"),
    ("ego4d.json", '{"videos": [{"duration_sec": 3}]}', "videos[0].video_uid: expected a non-empty string, got None"),
    ("ego4d.json", '{"videos": [{"video_uid": "u", "duration_sec": "long"}]}',
     "videos[0].duration_sec: expected a number, got 'long'"),
    ("ego4d.json", '{"videos": [{"video_uid": "u", "video_metadata": {"fps": "x"}}]}',
     "videos[0].video_metadata.fps: expected a number, got 'x'"),
    ("annotations/narration.json", "[]", "expected an object mapping video_uid to narration passes"),
    ("annotations/narration.json", '{"u": []}', "key u: expected an object of narration passes"),
    ("annotations/narration.json", '{"u": {"narration_pass_1": {"narrations": 5}}}',
     "key u.narration_pass_1.narrations: expected a list"),
    ("annotations/narration.json", '{"u": {"narration_pass_1": "x"}}',
     "key u.narration_pass_1: expected an object with a 'narrations' list"),
])
def test_malformed_json_names_file_and_key(tmp_path, which, content, message):
    write_ego4d_root(tmp_path, {"u": [(0.5, "#C C a")]})
    (tmp_path / which).write_text(content)
    with pytest.raises(DataError) as info:
        read(tmp_path)
    assert str(info.value) == f"{tmp_path / which}: {message}"


def test_files_are_found_in_the_usual_places(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(0.5, "#C C a")]}, annotations_dir="v1/annotations")
    (tmp_path / "ego4d.json").rename(tmp_path / "v1" / "annotations" / "ego4d.json")
    source, [recording] = read(tmp_path)
    assert source.describe()["narrations"] == "v1/annotations/narration.json"
    assert source.describe()["metadata"] == "v1/annotations/ego4d.json"
    (tmp_path / "v1" / "annotations" / "narration.json").rename(tmp_path / "narr.json")
    _, [again] = read(tmp_path, narration_path="narr.json")
    assert again.utterances == recording.utterances
    with pytest.raises(DataError) as info:
        read(tmp_path)
    assert str(info.value) == (f"{tmp_path}: no narration.json found (looked in narration.json, "
                               "annotations/narration.json, v1/annotations/narration.json, v1/narration.json, "
                               "v2/annotations/narration.json, v2/narration.json)")


def test_duration_from_frames_and_annotations(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(1.5, "#C C a")]})
    entry = ego4d_video_entry(UID, 2.0)
    del entry["duration_sec"]
    entry["video_metadata"]["num_frames"] = 8  # 1.6 s at 5 fps
    write_json(tmp_path / "ego4d.json", {"videos": [entry]})
    objects = write_json(tmp_path / "annotations" / "objects" / f"{UID}.objects.json", {"images": []})
    _, [recording] = read(tmp_path)
    assert recording.utterances == [Utterance(0.5, 1.6, "the person a", "narrator")]
    assert recording.annotations_path == objects


def test_probe_and_validate_report_corrupt_videos(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(0.5, "#C C a")], "broken": [(0.5, "#C C b")]})
    (tmp_path / "full_scale" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    source = Ego4DSource(tmp_path)
    report = source.validate()
    assert report.examples["unreadable_video"][0].startswith("full_scale/broken.mp4 (cannot open video")
    source, recordings = read(tmp_path, probe=True)
    assert [r.recording_id for r in recordings] == [UID]
    assert recordings[0].meta["probed_num_frames"] == 10
    assert source.report.counts["unreadable_video"] == 1


def test_duplicate_videos_and_registry(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(0.5, "#C C a")]})
    tiny_video(tmp_path / "mirror" / f"{UID}.mp4")
    source = babyvlm.build("source", "ego4d", root=tmp_path, window=[0.5, 0.5])
    assert isinstance(source, Ego4DSource)
    [recording] = source.recordings()
    assert recording.video_path == tmp_path / "full_scale" / f"{UID}.mp4"
    assert recording.utterances == [Utterance(0.0, 1.0, "the person a", "narrator")]
    assert source.report.examples == {"duplicate_video": [f"mirror/{UID}.mp4 (same uid as full_scale/{UID}.mp4)"]}
    assert source.summary().startswith(f"ego4d {tmp_path}: 1 recordings, 1 narrations")
    with pytest.raises(ConfigError, match="narration_passes must name one or more passes"):
        Ego4DSource(tmp_path, narration_passes=())
