"""SAYCam parsing rules: video/transcript/frame names, time cells, speaker codes and markup."""

import pytest

from babyvlm.core.constants import DAYS_PER_MONTH
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.saycam.names import (
    format_video_stem,
    parse_frame_name,
    parse_video_stem,
    transcript_target,
    video_reference,
)
from babyvlm.plugins.saycam.speakers import (
    SPEAKER_PRESETS,
    build_speaker_table,
    normalize_speaker,
    resolve_speakers,
)
from babyvlm.plugins.saycam.text import clean_utterance
from babyvlm.plugins.saycam.times import TimeFormatError, parse_time

# ---- names -----------------------------------------------------------------------------------


def test_video_stem_gives_child_date_age_and_segment():
    name = parse_video_stem("S_20141029_2412_02")
    assert (name.child, name.date, name.segment, name.filename) == ("S", "2014-10-29", 2, "S_20141029_2412_02.mp4")
    assert name.age_months == 24 + 12 / DAYS_PER_MONTH == 24 + 12 / 30.4375  # the one shared constant


@pytest.mark.parametrize("stem, months", [("A_20150101_0600_01", 6.0), ("Y_20160229_3230_10", 32 + 30 / DAYS_PER_MONTH)])
def test_age_is_months_plus_days(stem, months):
    assert parse_video_stem(stem).age_months == months


@pytest.mark.parametrize("stem, message", [
    ("S_20141329_2412_02", "20141329 is not a calendar date (YYYYMMDD)"),
    ("S_20141029_2440_02", "age 2440 has 40 days (AAAA is months + days, days <= 31)"),
    ("X_20141029_2412_02", "name does not match {S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}.mp4"),
    ("S_20141029_2412_2", "name does not match {S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}.mp4"),
    ("S_20141029_2412_02_extra", "name does not match {S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}.mp4"),
])
def test_bad_video_stems_say_why(stem, message):
    with pytest.raises(ValueError) as info:
        parse_video_stem(stem)
    assert str(info.value) == message


def test_format_video_stem_round_trips():
    assert format_video_stem("Y", "2016-02-29", 7, 3, 4) == "Y_20160229_0703_04"
    assert format_video_stem("S", "20141029", 24, 12, 2) == "S_20141029_2412_02"
    with pytest.raises(ValueError):
        format_video_stem("S", "20141029", 24, 45, 2)


@pytest.mark.parametrize("file_stem, target", [
    ("S_20141029_2412_02", "S_20141029_2412_02"),
    ("S_20141029_2412 part 2", "S_20141029_2412_02"),
    ("S_20141029_2412 Part 12", "S_20141029_2412_12"),
    ("A_20150101_0805_part_3", "A_20150101_0805_03"),
    ("S_20141029_2412", None),
    ("notes", None),
])
def test_transcript_file_names(file_stem, target):
    assert transcript_target(file_stem) == target


@pytest.mark.parametrize("cell, stem", [
    ("S_20141029_2412_02.mp4", "S_20141029_2412_02"),
    (" S_20141029_2412_02 ", "S_20141029_2412_02"),
    ("videos\\S_20141029_2412_02.MP4", "S_20141029_2412_02"),
    ("raw/s_20141029_2412_02.mp4", "S_20141029_2412_02"),
    ("S_20141029_2412 part 3", "S_20141029_2412_03"),
    ("../../etc/passwd", None),
    ("", None),
])
def test_video_name_cells(cell, stem):
    assert video_reference(cell) == stem


def test_frame_names():
    frame = parse_frame_name("S_20141029_2412_02_1200_3400_frame_0.jpg")
    assert (frame.stem, frame.start_ms, frame.end_ms, frame.index) == ("S_20141029_2412_02", 1200, 3400, 0)
    with pytest.raises(ValueError, match="ends \\(100 ms\\) before it starts \\(200 ms\\)"):
        parse_frame_name("S_20141029_2412_02_200_100_frame_0.jpg")
    with pytest.raises(ValueError, match="does not match"):
        parse_frame_name("S_20141029_2412_02_frame_0.jpg")


# ---- time cells --------------------------------------------------------------------------------

@pytest.mark.parametrize("cell, start, end", [
    ("1:05", 65.0, None),
    ("01:05", 65.0, None),
    (" 1:05 ", 65.0, None),
    ("0:00", 0.0, None),
    ("1:3", 90.0, None),  # single seconds digit = tens
    ("10:0", 600.0, None),
    (":45", 45.0, None),
    (":5", 50.0, None),
    ("1:05.5", 65.5, None),
    ("75:10", 4510.0, None),
    ("1:02:03", 3723.0, None),
    ("0:01:05", 65.0, None),
    ("01:05-01:09", 65.0, 69.0),
    ("1:05 - 1:09", 65.0, 69.0),
    ("1:05–1:09", 65.0, 69.0),
    ("1:05 to 1:09", 65.0, 69.0),
    (":45-1:3", 45.0, 90.0),
    ("65", 65.0, None),
    ("65.0", 65.0, None),
    ("12.5", 12.5, None),
    ("0.5", 0.5, None),
    ("0.000752314814814815", 65.0, None),  # Excel day fraction
    ("12:01:05 AM", 65.0, None),  # Excel clock export of a 0:01:05 duration
    ("1:00:00 PM", 13 * 3600.0, None),
])
def test_time_forms(cell, start, end):
    assert parse_time(cell) == (start, end)


@pytest.mark.parametrize("cell, message", [
    ("", "blank time"),
    ("abc", "time 'abc': not M:SS, H:MM:SS, a range or a number"),
    ("1:75", "time '1:75': seconds must be below 60"),
    ("1:6", "time '1:6': seconds must be below 60"),
    ("1:60:00", "time '1:60:00': minutes must be below 60 in H:MM:SS"),
    ("1:09-1:05", "time '1:09-1:05': range ends before it starts"),
    ("1:2:3:4", "time '1:2:3:4': too many ':' fields"),
    ("-5", "time '-5': not M:SS, H:MM:SS, a range or a number"),
    ("1:05?", "time '1:05?': seconds must be 1-2 digits"),
    ("a:05", "time 'a:05': hours and minutes must be digits"),
    ("13:00:00 AM", "time '13:00:00 AM': hour must be 1-12 with AM/PM"),
])
def test_unparsable_times_say_why(cell, message):
    with pytest.raises(TimeFormatError) as info:
        parse_time(cell)
    assert str(info.value) == message


def test_numeric_time_modes():
    assert parse_time("0.000752314814814815", "seconds") == (0.000752314814814815, None)
    assert parse_time("0.5", "excel_days") == (43200.0, None)
    assert parse_time("65", "auto") == (65.0, None)
    with pytest.raises(ValueError, match="numeric_times must be one of"):
        parse_time("65", "minutes")


# ---- speakers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, role", [
    ("M", "mother"), ("Mom", "mother"), ("mother", "mother"), ("mum", "mother"), ("mommy", "mother"),
    (" Mom: ", "mother"), ("MOTHER (off camera)", "mother"), ("MOT", "mother"),
    ("D", "father"), ("Dad", "father"), ("father", "father"), ("papa", "father"), ("daddy", "father"),
    ("Grandma", "grandmother"), ("grandpa", "grandfather"), ("nanny", "caregiver"), ("guest", "adult"),
    ("sister", "sibling"), ("C", "child"), ("baby", "child"), ("CHI", "child"), ("TV", "media"),
    ("", "unknown"), ("?", "unknown"), ("Kate", "unknown"),
])
def test_speaker_codes(raw, role):
    assert normalize_speaker(raw) == role


def test_speaker_presets_and_lists():
    assert "child" not in resolve_speakers("caregivers")
    assert {"mother", "father", "unknown"} <= resolve_speakers("caregivers")
    assert {"sibling", "media", "child"}.isdisjoint(SPEAKER_PRESETS["caregivers"])
    assert resolve_speakers("all") >= {"child", "mother", "media"}
    assert resolve_speakers("not_child") == resolve_speakers("all") - {"child"}
    assert resolve_speakers("mother, father") == {"mother", "father"}
    assert resolve_speakers(["child"]) == {"child"}
    with pytest.raises(ConfigError, match="'auntie' is not a role or preset"):
        resolve_speakers("mother,auntie")


def test_speaker_aliases_extend_the_table():
    table = build_speaker_table({"Kate": "caregiver", "M": "adult"})
    assert normalize_speaker("kate:", table) == "caregiver"
    assert normalize_speaker("M", table) == "adult"
    assert normalize_speaker("Kate") == "unknown"  # the built-in table is untouched
    with pytest.raises(ConfigError, match="speaker_aliases\\['Kate'\\]: unknown role 'nanny'"):
        build_speaker_table({"Kate": "nanny"})


# ---- markup ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ("*laughs* look at that", "look at that"),
    ("[inaudible] where's the ball?", "where's the ball?"),
    ("here you go (to the dog)", "here you go"),
    ("wait -- no", "wait no"),
    ("nested [a (b) c] ok", "nested ok"),
    ("hi , there *claps* .", "hi, there."),
    ("unmatched *star", "unmatched star"),
    ("  many   spaces  ", "many spaces"),
    ("*sighs* [noise] (aside) --", ""),
    ("...", ""),
])
def test_markup_removed(raw, clean):
    assert clean_utterance(raw) == clean
