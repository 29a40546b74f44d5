"""The ``saycam`` source over generated corpora: transcripts, ASR, matching, skips and strict mode."""

import json

import pytest
from fixtures_media import tiny_video, truncate_file, write_asr, write_asr_frames, write_csv, write_json

import babyvlm
from babyvlm.core.constants import DAYS_PER_MONTH
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.records import Utterance
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
from babyvlm.plugins.pretraining_set.clips import BuildSettings
from babyvlm.plugins.pretraining_set.stores import open_store
from babyvlm.plugins.saycam import SaycamSource

STEM = "S_20141029_2412_02"
OTHER = "A_20150101_0805_01"


def video(root, stem=STEM, folder="videos", **options):
    return tiny_video(root / folder / f"{stem}.mp4", **options)


def transcript(root, rows, name=f"{STEM}.csv", **options):
    return write_csv(root / "transcripts" / name, rows, **options)


def read(root, **options):
    source = SaycamSource(root, **options)
    return source, list(source.recordings())


def test_human_transcript_end_to_end(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [
        ("0:01", f"{STEM}.mp4", "*laughs* look at the ball!", "Mom"),
        ("0:04", f"{STEM}.mp4", "where did it go?", "C"),
        ("0:06-0:09", f"{STEM}.mp4", "here it is [points]", "Dad"),
        ("0:12", f"{STEM}.mp4", "all done", "mother"),
    ])
    source, recordings = read(tmp_path)
    [recording] = recordings
    assert recording.recording_id == STEM
    assert recording.video_path == tmp_path / "videos" / f"{STEM}.mp4"
    assert (recording.source, recording.child, recording.date, recording.segment) == ("saycam", "S", "2014-10-29", 2)
    assert recording.age_months == 24 + 12 / DAYS_PER_MONTH
    assert recording.rotation == 0 and recording.annotations_path is None
    assert recording.meta == {"video": f"videos/{STEM}.mp4", "transcript": "human",
                              "transcript_path": f"transcripts/{STEM}.csv"}
    assert recording.utterances == [
        Utterance(1.0, None, "look at the ball!", "mother"),  # no end given: open (the builder caps it)
        Utterance(6.0, 9.0, "here it is", "father"),  # a range keeps its own end
        Utterance(12.0, None, "all done", "mother"),
    ]
    assert dict(source.report.counts) == {"excluded_speaker": 1}
    assert source.report.examples["excluded_speaker"] == [f"transcripts/{STEM}.csv:3 (speaker 'C' = child)"]


def test_rows_that_cannot_be_used_are_counted_with_file_and_line(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [
        ("", "", "orphan", "M"),  # line 2: blank time on the first row
        ("0:10", "", "first", "M"),
        ("", "", "and more", ""),  # continues line 3 (merged)
        ("1:75", "", "bad time", "M"),
        ("", "", "after a bad row", "M"),  # continues a skipped row
        ("0:05", "", "backwards", "M"),
        ("0:20", "", "*cries*", "M"),
        ("", "", "someone else", "D"),  # blank time, new speaker
        ("0:30", "", "last", "M"),
    ])
    source, [recording] = read(tmp_path)
    assert recording.utterances == [Utterance(10.0, None, "first and more", "mother"),
                                    Utterance(30.0, None, "last", "mother")]
    where = f"transcripts/{STEM}.csv"
    assert dict(source.report.counts) == {"missing_time": 3, "unparsable_time": 1, "time_out_of_order": 1,
                                          "empty_utterance": 1}
    assert source.report.examples == {
        "missing_time": [f"{where}:2 (blank time on the first row)",
                         f"{where}:6 (blank time continues line 5, which was skipped)",
                         f"{where}:9 (blank time, speaker differs from line 8)"],
        "unparsable_time": [f"{where}:5 (time '1:75': seconds must be below 60)"],
        "time_out_of_order": [f"{where}:7 (0:05 after 0:10)"],
        "empty_utterance": [f"{where}:8 ('*cries*')"],
    }
    assert source.describe()["merged_continuations"] == 1


@pytest.mark.parametrize("cell, start", [("1:05", 65.0), ("1:3", 90.0), (":45", 45.0), ("1:02:03", 3723.0),
                                         ("01:05-01:09", 65.0), ("65.0", 65.0), ("0.000752314814814815", 65.0)])
def test_every_time_form_inside_a_csv(tmp_path, cell, start):
    video(tmp_path)
    transcript(tmp_path, [(cell, "", "hello", "M")])
    _, [recording] = read(tmp_path)
    assert recording.utterances[0].start == start


def test_speaker_filter_settings(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "", "hi", "M"), ("0:02", "", "ba", "C"), ("0:03", "", "tv talk", "TV"),
                          ("0:04", "", "who", ""), ("0:05", "", "hey", "Kate")])
    speakers_of = {}
    for setting in ("caregivers", "all", ("mother",), "child,media"):
        source, [recording] = read(tmp_path, speakers=setting)
        speakers_of[str(setting)] = [u.speaker for u in recording.utterances]
    assert speakers_of == {
        "caregivers": ["mother", "unknown", "unknown"],
        "all": ["mother", "child", "media", "unknown", "unknown"],
        "('mother',)": ["mother"],
        "child,media": ["child", "media"],
    }
    source, [recording] = read(tmp_path, speakers=("caregiver",), speaker_aliases={"Kate": "caregiver"})
    assert [u.text for u in recording.utterances] == ["hey"]
    assert SaycamSource(tmp_path).describe()["unrecognized_speakers"] == {"kate": 1}


def test_part_n_names_bom_and_loose_headers(tmp_path):
    video(tmp_path, "S_20141029_2412_03")
    transcript(tmp_path, [("0:01", "hello", "mom", "x")], name="S_20141029_2412 part 3.csv",
               header=(" TIME ", "utterance", "Speaker", "Notes"), bom=True)
    source, [recording] = read(tmp_path)
    assert recording.recording_id == "S_20141029_2412_03"
    assert recording.utterances == [Utterance(1.0, None, "hello", "mother")]
    assert recording.meta["transcript_path"] == "transcripts/S_20141029_2412 part 3.csv"
    assert source.report.total == 0


def test_semicolon_delimited_export(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", STEM, "hi, you", "M")], delimiter=";")
    _, [recording] = read(tmp_path)
    assert recording.utterances == [Utterance(1.0, None, "hi, you", "mother")]


def test_rows_routed_by_video_name_column(tmp_path):
    video(tmp_path, "S_20141029_2412_01")
    video(tmp_path, "S_20141029_2412_02")
    transcript(tmp_path, [
        ("0:01", "S_20141029_2412_01.mp4", "one", "M"),
        ("0:02", "", "still one", "M"),  # blank Video Name continues the video above
        ("0:03", "S_20141029_2412_02.mp4", "two", "M"),
        ("0:04", "mystery.mp4", "lost", "M"),
    ], name="S_20141029_2412 all.csv")
    source, recordings = read(tmp_path)
    assert {r.recording_id: [u.text for u in r.utterances] for r in recordings} == {
        "S_20141029_2412_01": ["one", "still one"], "S_20141029_2412_02": ["two"]}
    assert source.report.examples == {"unknown_video_name": ["transcripts/S_20141029_2412 all.csv:5 ('mystery.mp4')"]}


def test_csv_that_names_no_video_is_counted(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "hello", "M")], name="notes.csv", header=("Time", "Utterance", "Speaker"))
    source, _ = read(tmp_path)
    assert source.report.examples["unreadable_transcript"] == [
        "transcripts/notes.csv (cannot tell which video it transcribes: the name is not {stem}.csv or "
        "'{S}_{date}_{age} part N.csv' and there is no 'Video Name' column)"]


def test_missing_columns_are_named(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "hello")], header=("Tiem", "Utterance"))
    source, _ = read(tmp_path)
    assert source.report.examples["unreadable_transcript"] == [
        f"transcripts/{STEM}.csv (missing column(s) 'Time' (header: 'Tiem', 'Utterance'))"]


def test_non_utf8_csv(tmp_path):
    video(tmp_path)
    path = transcript(tmp_path, [("0:01", STEM, "café time", "M")], encoding="cp1252")
    source, recordings = read(tmp_path)
    assert recordings == []
    offset = path.read_bytes().index(b"\xe9")  # the cp1252 "é"
    assert offset == 62  # 35-byte header line + "0:01,S_20141029_2412_02,caf"
    message = (f"not valid UTF-8 at byte {offset} (line 2, byte 0xe9); pass encoding='cp1252' (or the file's real "
               "encoding) to read it")
    assert source.report.examples["unreadable_transcript"] == [f"transcripts/{STEM}.csv ({message})"]
    assert source.report.counts["video_without_transcript"] == 1
    with pytest.raises(DataError) as info:
        read(tmp_path, strict=True)
    assert str(info.value) == f"{path}: unreadable transcript: {message} (strict=True; strict=False counts it and goes on)"
    _, [recording] = read(tmp_path, encoding="cp1252")
    assert recording.utterances == [Utterance(1.0, None, "café time", "mother")]
    with pytest.raises(ConfigError, match="unknown text encoding 'klingon'"):
        SaycamSource(tmp_path, encoding="klingon")


def test_unmatched_videos_and_transcripts(tmp_path):
    video(tmp_path)
    lonely = transcript(tmp_path, [("0:01", "", "hi", "M")], name=f"{OTHER}.csv")
    source, recordings = read(tmp_path)
    assert recordings == []
    assert source.report.examples == {
        "video_without_transcript": [f"videos/{STEM}.mp4 (no {STEM}.csv, '… part N.csv' or Video Name rows; "
                                     f"no {STEM}.asr.json)"],
        "transcript_without_video": [f"transcripts/{OTHER}.csv (no video {OTHER}.mp4 under the root)"],
    }
    with pytest.raises(DataError, match=f"^{tmp_path / 'videos' / STEM}.mp4: video has no transcript"):
        read(tmp_path, strict=True)
    (tmp_path / "videos" / f"{STEM}.mp4").unlink()
    with pytest.raises(DataError) as info:
        read(tmp_path, strict=True)
    assert str(info.value).startswith(f"{lonely}: transcript has no matching video: no video {OTHER}.mp4")


def test_include_untranscribed_yields_empty_recordings(tmp_path):
    video(tmp_path)
    source, [recording] = read(tmp_path, include_untranscribed=True)
    assert recording.utterances == [] and recording.meta["transcript"] is None
    assert source.report.total == 0


def test_bad_video_names_and_children_filter(tmp_path):
    video(tmp_path)
    video(tmp_path, OTHER)
    tiny_video(tmp_path / "videos" / "clip.mp4")
    tiny_video(tmp_path / "videos" / "S_20141329_2412_01.mp4")
    tiny_video(tmp_path / "extra" / f"{STEM}.mov")
    tiny_video(tmp_path / "copy" / f"{STEM}.mp4")
    (tmp_path / "videos" / "readme.txt").write_text("not a video")
    for stem in (STEM, OTHER):
        transcript(tmp_path, [("0:01", "", "hi", "M")], name=f"{stem}.csv")
    source, recordings = read(tmp_path)
    assert [r.recording_id for r in recordings] == [OTHER, STEM]
    assert source.report.examples == {
        "duplicate_video": [f"videos/{STEM}.mp4 (same name as copy/{STEM}.mp4)"],
        "bad_video_name": [f"extra/{STEM}.mov (only .mp4 videos are read)",
                           "videos/S_20141329_2412_01.mp4 (20141329 is not a calendar date (YYYYMMDD))",
                           "videos/clip.mp4 (name does not match {S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}.mp4)"],
    }
    source, recordings = read(tmp_path, children="A")
    assert [r.recording_id for r in recordings] == [OTHER]
    assert source.describe()["filtered_by_children"] == 2  # the S video and its copy
    assert "transcript_without_video" not in source.report.counts
    with pytest.raises(ConfigError, match="children must be among S, A, Y"):
        SaycamSource(tmp_path, children="Q")


def test_asr_object_form(tmp_path):
    video(tmp_path)
    write_asr(tmp_path / "asr" / f"{STEM}.asr.json", f"{STEM}.mp4", [
        {"start_ms": 1200, "end_ms": 3400, "text": "look at the ball", "speaker": "mother"},
        {"start_ms": 500, "end_ms": 900, "text": "[music] hi"},
        {"start_ms": 4000, "text": "bye"},
        {"start_ms": -1, "end_ms": 10, "text": "negative"},
        {"start_ms": 100, "end_ms": 50, "text": "backwards"},
        {"start_ms": 100, "end_ms": 200, "text": 7},
        {"start_ms": 5000, "end_ms": 6000, "text": "ba ba", "speaker": "child"},
    ])
    source, [recording] = read(tmp_path)
    assert recording.meta["transcript"] == "asr"
    assert recording.utterances == [Utterance(0.5, 0.9, "hi", "unknown"),
                                    Utterance(1.2, 3.4, "look at the ball", "mother"),
                                    Utterance(4.0, None, "bye", "unknown")]  # no end_ms: open
    where = f"asr/{STEM}.asr.json"
    assert source.report.examples == {
        "bad_asr_utterance": [f"{where}:utterances[3] ('start_ms' must be a number of milliseconds >= 0, got -1)",
                              f"{where}:utterances[4] (end_ms 50 is before start_ms 100)",
                              f"{where}:utterances[5] ('text' must be a string, got int)"],
        "excluded_speaker": [f"{where}:utterances[6] (speaker 'child' = child)"],
    }


def test_asr_frame_list_form(tmp_path):
    video(tmp_path)
    video(tmp_path, OTHER)
    path = write_asr_frames(tmp_path / "released" / "all.asr.json", [
        (STEM, 1200, 3400, "look at the ball"), (STEM, 0, 800, "hi there"), (OTHER, 100, 200, "yes")])
    items = json.loads(path.read_text())
    items.append({"frame": "nonsense.jpg", "utterance": "x"})
    write_json(path, items)
    source, recordings = read(tmp_path, transcripts="asr")
    assert {r.recording_id: r.utterances for r in recordings} == {
        STEM: [Utterance(0.0, 0.8, "hi there", "unknown"), Utterance(1.2, 3.4, "look at the ball", "unknown")],
        OTHER: [Utterance(0.1, 0.2, "yes", "unknown")],
    }
    assert source.report.examples == {"bad_asr_utterance": [
        "released/all.asr.json:[6] (frame name 'nonsense.jpg' does not match "
        "{stem}_{start_ms}_{end_ms}_frame_{k}.jpg)"]}


def test_auto_prefers_human_and_modes_choose(tmp_path):
    video(tmp_path)
    video(tmp_path, OTHER)
    transcript(tmp_path, [("0:01", "", "human words", "M")])
    write_asr(tmp_path / "asr" / f"{STEM}.asr.json", f"{STEM}.mp4", [{"start_ms": 0, "end_ms": 10, "text": "asr"}])
    write_asr(tmp_path / "asr" / f"{OTHER}.asr.json", f"{OTHER}.mp4", [{"start_ms": 0, "end_ms": 10, "text": "a"}])
    texts = {}
    for mode in ("auto", "human", "asr"):
        source, recordings = read(tmp_path, transcripts=mode)
        texts[mode] = {r.recording_id: (r.meta["transcript"], r.utterances[0].text) for r in recordings}
    assert texts == {
        "auto": {STEM: ("human", "human words"), OTHER: ("asr", "a")},
        "human": {STEM: ("human", "human words")},
        "asr": {STEM: ("asr", "asr"), OTHER: ("asr", "a")},
    }
    with pytest.raises(ConfigError, match="transcripts must be one of 'auto', 'human', 'asr', got 'whisper'"):
        SaycamSource(tmp_path, transcripts="whisper")


def test_auto_falls_back_to_asr_when_the_csv_is_unreadable(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "", "café", "M")], encoding="cp1252")
    write_asr(tmp_path / "asr" / f"{STEM}.asr.json", f"{STEM}.mp4", [{"start_ms": 0, "end_ms": 10, "text": "asr"}])
    source, [recording] = read(tmp_path)
    assert recording.meta["transcript"] == "asr"
    assert dict(source.report.counts) == {"unreadable_transcript": 1}


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON at line 1, column 2: Expecting property name enclosed in double quotes"),
    ('{"schema": "other/2", "utterances": []}', "key 'schema': unsupported 'other/2' (expected 'babyvlm.asr/1')"),
    ('{"video": "../../S_20141029_2412_02.mp4", "utterances": []}',
     "key 'video': '../../S_20141029_2412_02.mp4' must be a plain name inside the corpus root"),
    ('{"video": "S_20141029_2412_02.mp4", "utterances": {}}', "key 'utterances': expected a list, got dict"),
    ('"text"', "expected a babyvlm.asr/1 object or a list of frame entries, got str"),
])
def test_unreadable_asr_files(tmp_path, content, message):
    video(tmp_path)
    path = tmp_path / "asr" / f"{STEM}.asr.json"
    path.parent.mkdir()
    path.write_text(content)
    source, _ = read(tmp_path)
    assert source.report.examples["unreadable_asr"] == [f"asr/{STEM}.asr.json ({message})"]
    with pytest.raises(DataError, match=f"^{path}: unreadable ASR transcript"):
        read(tmp_path, strict=True)


def test_asr_without_video_key_uses_its_file_name(tmp_path):
    video(tmp_path)
    write_json(tmp_path / f"{STEM}.asr.json", {"utterances": [{"start_ms": 0, "end_ms": 5, "text": "ok"}]})
    _, [recording] = read(tmp_path)
    assert recording.utterances == [Utterance(0.0, 0.005, "ok", "unknown")]


def test_duplicate_transcripts_and_annotations(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "", "first file", "M")])
    transcript(tmp_path, [("0:01", "", "second file", "M")], name="S_20141029_2412 part 2.csv")
    write_json(tmp_path / "annotations" / f"{STEM}.objects.json", {"images": [], "annotations": [], "categories": []})
    write_json(tmp_path / "annotations" / f"{OTHER}.objects.json", {})
    source, [recording] = read(tmp_path)
    assert recording.utterances[0].text == "second file"  # "… part 2.csv" sorts before "…_02.csv"
    assert recording.annotations_path == tmp_path / "annotations" / f"{STEM}.objects.json"
    assert source.report.examples == {
        "annotations_without_video": [f"annotations/{OTHER}.objects.json"],
        "duplicate_transcript": [f"transcripts/{STEM}.csv (video {STEM} already transcribed by "
                                 f"transcripts/S_20141029_2412 part 2.csv)"],
    }


def test_rotation_and_option_validation(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "", "hi", "M")])
    _, [recording] = read(tmp_path, rotation=180)
    assert recording.rotation == 180
    with pytest.raises(ConfigError, match="rotation must be 0 or 180"):
        SaycamSource(tmp_path, rotation=90)
    with pytest.raises(ConfigError, match="numeric_times must be one of"):
        SaycamSource(tmp_path, numeric_times="minutes")
    with pytest.raises(DataError, match="SAYCam root is not a folder"):
        SaycamSource(tmp_path / "missing")


def test_truncated_video_is_reported_by_validate_and_probe(tmp_path):
    video(tmp_path, seconds=2.0)
    video(tmp_path, OTHER)
    truncate_file(tmp_path / "videos" / f"{OTHER}.mp4", 0.4)
    transcript(tmp_path, [("0:01", "", "early", "M"), ("0:05", "", "after the end", "M")])
    transcript(tmp_path, [("0:01", "", "hi", "M")], name=f"{OTHER}.csv")
    source = SaycamSource(tmp_path)
    report = source.validate()
    assert report.counts["unreadable_video"] == 1
    assert report.examples["unreadable_video"][0].startswith(f"videos/{OTHER}.mp4 (cannot open video")
    assert source.report.total == 0  # validate() does not change the scan's report

    source, recordings = read(tmp_path, probe=True)
    assert [r.recording_id for r in recordings] == [STEM]
    [recording] = recordings
    assert recording.utterances == [Utterance(1.0, None, "early", "mother")]  # open: not ended at the duration
    assert (recording.meta["fps"], recording.meta["num_frames"], recording.meta["width"]) == (5.0, 10, 32)
    assert source.report.examples["utterance_after_video_end"] == [f"videos/{STEM}.mp4 (0:05 >= 0:02)"]
    assert source.report.examples["unreadable_video"][0].startswith(f"videos/{OTHER}.mp4 (cannot open video")
    with pytest.raises(DataError, match=f"^{tmp_path / 'videos' / OTHER}.mp4: video cannot be probed"):
        list(SaycamSource(tmp_path, probe=True, strict=True).recordings())


def test_iterating_twice_counts_once(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "", "hi", "M"), ("x", "", "bad", "M")])
    source = SaycamSource(tmp_path, probe=True)
    first, second = list(source.recordings()), list(source)
    assert first == second and len(first) == 1
    first[0].utterances.clear()  # callers get copies
    assert len(next(source.recordings()).utterances) == 1
    assert dict(source.report.counts) == {"unparsable_time": 1}


def test_built_through_the_registry(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [("0:01", "", "hi", "M")])
    source = babyvlm.build("source", "saycam", root=str(tmp_path), transcripts="human")
    assert isinstance(source, SaycamSource)
    assert [r.recording_id for r in source.recordings()] == [STEM]
    summary = source.summary()
    assert summary.splitlines()[0] == f"saycam {tmp_path}: 1 recordings of 1 videos, 1 utterances"
    assert json.loads(json.dumps(source.describe()))["transcripts"] == {"human": 1}


def test_equal_starts_stay_open_and_continuations_follow_their_row(tmp_path):
    video(tmp_path)
    transcript(tmp_path, [
        ("0:05", "", "you too", "M"),
        ("0:05", "", "me first", "D"),
        ("0:07", "", "mama", "C"),
        ("", "", "dada", ""),  # continues the child's row, so it is excluded with it
        ("0:09", "", "yes", "M"),
    ])
    source, [recording] = read(tmp_path)
    assert recording.utterances == [Utterance(5.0, None, "you too", "mother"),
                                    Utterance(5.0, None, "me first", "father"),
                                    Utterance(9.0, None, "yes", "mother")]
    assert source.report.examples == {"excluded_speaker": [f"transcripts/{STEM}.csv:4 (speaker 'C' = child)"]}


def test_zero_length_spans_count_as_a_start_only(tmp_path):
    video(tmp_path)
    video(tmp_path, OTHER)
    transcript(tmp_path, [("1:05-1:05", "", "same", "M"), ("1:08", "", "next", "M")])
    write_asr(tmp_path / "asr" / f"{OTHER}.asr.json", f"{OTHER}.mp4", [
        {"start_ms": 100, "end_ms": 100, "text": "flat"}, {"start_ms": 400, "end_ms": 500, "text": "then"}])
    _, recordings = read(tmp_path)
    assert {r.recording_id: r.utterances[0] for r in recordings} == {
        STEM: Utterance(65.0, None, "same", "mother"), OTHER: Utterance(0.1, None, "flat", "unknown")}


@pytest.mark.parametrize("probe", [False, True])
def test_open_utterances_become_capped_clips_in_the_builder(tmp_path, probe):
    """Human rows without an end (the last one too, also with ``probe``) are capped, not skipped as too long."""
    video(tmp_path / "corpus", seconds=25.0)
    transcript(tmp_path / "corpus", [("0:01", "", "look at the ball", "M"), ("0:10-0:12", "", "a range", "M"),
                                     ("0:15", "", "where is it", "M"), ("0:20", "", "there it is", "M")])
    _, [recording] = read(tmp_path / "corpus", probe=probe)
    assert [u.end for u in recording.utterances] == [None, 12.0, None, None]  # a range keeps its explicit end
    settings = BuildSettings(formats=("video",), max_clip_sec=4.0, video_frames=2)
    plan = BuildPlan(source="saycam", root=tmp_path / "corpus", out=tmp_path / "store", settings=settings,
                     source_options={"probe": probe})
    result = build_pretraining_set(plan, log=lambda _: None)
    clips = sorted(tuple(sample.meta["clip"]) for _, sample in open_store(tmp_path / "store").iter_samples())
    # 9 s to the next row after 0:01 and 5 s to the video end after 0:20 are silences, not utterance ends
    assert clips == [(1.0, 5.0), (10.0, 12.0), (15.0, 19.0), (20.0, 24.0)]
    assert "clip_too_long" not in result.report.counts
