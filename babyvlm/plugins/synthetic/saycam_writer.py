"""Writes the synthetic infant world as a SAYCam-format corpus, plus a ground-truth manifest.

Layout (the brief's shared SAYCam layout)::

    OUT/videos/{S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}.mp4
    OUT/transcripts/{stem}.csv | "{S}_{YYYYMMDD}_{AAAA} part {N}.csv" | "{S}_{YYYYMMDD}_{AAAA}.csv" (whole session)
    OUT/asr/{stem}.asr.json
    OUT/annotations/{stem}.objects.json
    OUT/synthetic.json          # seed, options, per-video truth (utterance times, texts, how each was written)

Each child has a fixed birth date; recording dates are spread over ages 6-32 months, and the age in
every name (``AAAA`` = months + days) is the calendar age on that date. The world a child sees grows
with age (``Behaviour.infant``): more words, more objects, more motion.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babyvlm.core.constants import DAYS_PER_MONTH
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import atomic_write_bytes
from babyvlm.core.progress import progress as progress_bar
from babyvlm.plugins.saycam.names import CHILDREN as SAYCAM_CHILDREN
from babyvlm.plugins.saycam.names import format_video_stem
from babyvlm.plugins.synthetic.corpus import (
    check_video_options,
    map_videos,
    render_annotated,
    seed_for,
    split_frames,
    write_corpus,
)
from babyvlm.plugins.synthetic.fileio import write_json
from babyvlm.plugins.synthetic.speech import CaregiverSpeech, SpokenUtterance, asr_line
from babyvlm.plugins.synthetic.transcript_style import FileStyle, VideoRows, render_csv, video_rows
from babyvlm.plugins.synthetic.world import INFANT_HOME, Behaviour, VideoWorld

CHILDREN = SAYCAM_CHILDREN
# S's date matches the format's example name S_20141029_2412_02 (24 months 12 days on 2014-10-29).
BIRTH_DATES = {"S": dt.date(2012, 10, 17), "A": dt.date(2013, 6, 2), "Y": dt.date(2014, 1, 21)}
FIRST_MONTH, LAST_MONTH = 6, 32


@dataclass(frozen=True)
class SaycamOptions:
    minutes: float
    seed: int
    fps: int = 5
    size: int = 224
    children: tuple[str, ...] = CHILDREN
    video_minutes: float = 1.0  # typical length of one video segment

    def __post_init__(self) -> None:
        check_video_options(self.minutes, self.fps, self.size, self.video_minutes)
        bad = [c for c in self.children if c not in CHILDREN] or ([] if self.children else ["(none)"])
        if bad or len(set(self.children)) != len(self.children):
            raise ConfigError(f"children must be distinct letters among {', '.join(CHILDREN)}, got {self.children!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["children"] = list(self.children)
        return data


@dataclass(frozen=True)
class VideoPlan:
    index: int
    child: str
    date: dt.date
    months: int
    days: int
    segment: int
    num_frames: int

    @property
    def stem(self) -> str:
        return format_video_stem(self.child, self.date, self.months, self.days, self.segment)  # the reader's rule

    @property
    def session(self) -> str:
        return f"{self.child}_{self.date:%Y%m%d}_{self.months:02d}{self.days:02d}"

    @property
    def age_months(self) -> float:
        return self.months + self.days / DAYS_PER_MONTH


# ---- calendar ---------------------------------------------------------------------------------
def add_months(day: dt.date, months: int) -> dt.date:
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    return dt.date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def calendar_age(birth: dt.date, when: dt.date) -> tuple[int, int]:
    """(completed months, remaining days) between ``birth`` and ``when``: the AAAA of a SAYCam name."""
    months = (when.year - birth.year) * 12 + when.month - birth.month
    if add_months(birth, months) > when:
        months -= 1
    return months, (when - add_months(birth, months)).days


# ---- planning -----------------------------------------------------------------------------------
def plan_videos(options: SaycamOptions) -> list[VideoPlan]:
    """Videos with lengths summing to ``minutes``, spread over children, sessions and ages."""
    rng = np.random.default_rng(seed_for(options.seed, 0))
    wanted = max(len(options.children), round(options.minutes / options.video_minutes))
    frames = split_frames(rng, options.minutes, options.fps, wanted)
    count = len(frames)
    owners = [options.children[k % len(options.children)] for k in range(count)]
    plans: list[VideoPlan] = []
    for child in options.children:
        mine = [k for k in range(count) if owners[k] == child]
        plans += _plan_child(rng, child, mine, frames)
    return sorted(plans, key=lambda p: p.index)


def _plan_child(rng: np.random.Generator, child: str, indices: list[int], frames: np.ndarray) -> list[VideoPlan]:
    """Group one child's videos into sessions (1-3 segments each) on distinct dates across 6-32 months."""
    sizes: list[int] = []
    longest = min(3, max(1, len(indices) // 3))  # small corpora: one segment per session, more ages
    while sum(sizes) < len(indices):
        sizes.append(min(int(rng.integers(1, longest + 1)), len(indices) - sum(sizes)))
    birth = BIRTH_DATES[child]
    first, last = add_months(birth, FIRST_MONTH), add_months(birth, LAST_MONTH)
    span = (last - first).days  # dates in [first, last): ages 6m0d .. 31m30d
    dates: list[dt.date] = []
    for k in range(len(sizes)):
        offset = int((k + rng.uniform(0.05, 0.95)) / len(sizes) * span)
        day = first + dt.timedelta(days=min(span - 1, offset))
        while dates and day <= dates[-1]:
            day += dt.timedelta(days=1)
        dates.append(day)
    plans, cursor = [], 0
    for size, day in zip(sizes, dates, strict=True):
        months, days = calendar_age(birth, day)
        for segment in range(1, size + 1):
            index = indices[cursor]
            plans.append(VideoPlan(index, child, day, months, days, segment, int(frames[index])))
            cursor += 1
    return plans


# ---- writing ------------------------------------------------------------------------------------
@dataclass
class _VideoResult:
    plan: VideoPlan
    utterances: list[SpokenUtterance]
    rows: VideoRows
    style: FileStyle
    asr_texts: list[str]
    primary: str


def write_saycam(out: str | Path, options: SaycamOptions, *, overwrite: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate (or verify) the corpus in ``out``; returns the manifest. See ``corpus`` for the rerun policy."""
    return write_corpus(Path(out), "saycam", options.to_dict(), lambda root: _write_files(root, options, progress),
                        overwrite=overwrite, progress=progress)


def _write_files(out: Path, options: SaycamOptions,
                 progress: Callable[[str], None] | None) -> tuple[dict[str, Any], list[str]]:
    plans = plan_videos(options)
    results, written = [], []
    with progress_bar(len(plans), "synth saycam", unit="video") as bar:
        for plan, result in zip(plans, map_videos(lambda plan: _write_video(out, plan, options), plans), strict=True):
            results.append(result)
            written += [f"videos/{plan.stem}.mp4", f"asr/{plan.stem}.asr.json", f"annotations/{plan.stem}.objects.json"]
            if progress:
                progress(f"{plan.stem}: {plan.num_frames / options.fps:.1f} s, {len(result.utterances)} utterances")
            bar.update()
    transcripts = _write_transcripts(out, results, options.seed)
    written += sorted(transcripts)
    body = {"children": {c: {"birth_date": BIRTH_DATES[c].isoformat()} for c in options.children},
            "vocabulary": [c.name for c in Behaviour.infant(LAST_MONTH).vocabulary],
            "totals": _totals(results, options.fps),
            "videos": [_video_entry(r, options, transcripts) for r in results]}
    return body, written


def _video_seeds(plan: VideoPlan, options: SaycamOptions) -> list[np.random.SeedSequence]:
    return seed_for(options.seed, 1, plan.index).spawn(4)  # world, speech, transcript style, ASR


def build_world(plan: VideoPlan, options: SaycamOptions) -> VideoWorld:
    """The simulated world behind one video (re-creatable from the manifest: same plan, same options)."""
    return VideoWorld(_video_seeds(plan, options)[0], num_frames=plan.num_frames, fps=options.fps, size=options.size,
                      domain=INFANT_HOME, behaviour=Behaviour.infant(plan.age_months))


def _write_video(out: Path, plan: VideoPlan, options: SaycamOptions) -> _VideoResult:
    _, speech_seed, style_seed, asr_seed = _video_seeds(plan, options)
    behaviour = Behaviour.infant(plan.age_months)
    world = build_world(plan, options)
    visibility = render_annotated(world, out / "videos" / f"{plan.stem}.mp4",
                                  out / "annotations" / f"{plan.stem}.objects.json")
    speech_rng = np.random.default_rng(speech_seed)
    primary = "mother" if speech_rng.random() < 0.75 else "father"
    secondary = "father" if primary == "mother" else "mother"
    utterances = CaregiverSpeech(speech_rng, visibility=visibility, events=world.events, fps=options.fps,
                                 age_months=plan.age_months, vocabulary=behaviour.vocabulary,
                                 caregivers=(primary, secondary)).utterances()
    style_rng = np.random.default_rng(style_seed)
    style = FileStyle.random(style_rng)
    rows = video_rows(style_rng, plan.stem, utterances, style)
    asr_rng = np.random.default_rng(asr_seed)
    asr_texts = [asr_line(asr_rng, u) if u.role != "child" else "" for u in utterances]
    write_json(out / "asr" / f"{plan.stem}.asr.json", _asr_json(plan, utterances, asr_texts))
    return _VideoResult(plan, utterances, rows, style, asr_texts, primary)


def _asr_json(plan: VideoPlan, utterances: list[SpokenUtterance], texts: list[str]) -> dict[str, Any]:
    """ASR output: exact times, caregivers only (the recogniser misses the child), noisier text."""
    entries = [{"start_ms": round(u.start * 1000), "end_ms": round(u.end * 1000), "text": text, "speaker": u.role}
               for u, text in zip(utterances, texts, strict=True) if text]
    return {"schema": "babyvlm.asr/1", "video": f"{plan.stem}.mp4", "utterances": entries}


def _write_transcripts(out: Path, results: list[_VideoResult], seed: int) -> dict[str, str]:
    """Write the CSVs; returns {relative file: stem(s) it covers}. Some sessions share one file."""
    rng = np.random.default_rng(seed_for(seed, 2))
    sessions: dict[str, list[_VideoResult]] = {}
    for result in results:
        sessions.setdefault(result.plan.session, []).append(result)
    files: dict[str, str] = {}
    for session, members in sessions.items():
        if len(members) > 1 and rng.random() < 0.2:  # one spreadsheet for the whole session, routed by Video Name
            style = members[0].style
            style.video_name_every_row = True
            name = f"transcripts/{session}.csv"
            rows = [video_rows(np.random.default_rng(seed_for(seed, 3, m.plan.index)), m.plan.stem, m.utterances, style)
                    for m in members]
            for member, member_rows in zip(members, rows, strict=True):
                member.rows = member_rows
            atomic_write_bytes(out / name, render_csv(style, rows))
            files[name] = ",".join(m.plan.stem for m in members)
            continue
        for member in members:
            plan = member.plan
            part = rng.random() < 0.25
            name = f"transcripts/{plan.session} part {plan.segment}.csv" if part else f"transcripts/{plan.stem}.csv"
            atomic_write_bytes(out / name, render_csv(member.style, [member.rows]))
            files[name] = plan.stem
    return files


def _video_entry(result: _VideoResult, options: SaycamOptions, transcripts: dict[str, str]) -> dict[str, Any]:
    plan = result.plan
    transcript = next(name for name, stems in transcripts.items() if plan.stem in stems.split(","))
    utterances = []
    for u, csv_row, asr_text in zip(result.utterances, result.rows.written, result.asr_texts, strict=True):
        utterances.append({"start": u.start, "end": u.end, "role": u.role, "kind": u.kind, "text": u.text,
                           "mentions": list(u.mentions), "visible": list(u.visible), "csv": csv_row.to_dict(),
                           "asr_text": asr_text or None})
    return {"stem": plan.stem, "child": plan.child, "date": plan.date.isoformat(), "age_code": f"{plan.months:02d}{plan.days:02d}",
            "age_months": round(plan.age_months, 4), "segment": plan.segment, "fps": options.fps,
            "num_frames": plan.num_frames, "duration_sec": round(plan.num_frames / options.fps, 3),
            "width": options.size, "height": options.size, "primary_caregiver": result.primary,
            "files": {"video": f"videos/{plan.stem}.mp4", "transcript": transcript, "asr": f"asr/{plan.stem}.asr.json",
                      "annotations": f"annotations/{plan.stem}.objects.json"},
            "transcript_style": {"columns": list(result.style.columns), "time_style": result.style.time_style,
                                 "bom": result.style.bom, "speaker_codes": {k: list(v) for k, v in result.style.speakers.items()},
                                 "blank_rows": result.rows.blank_rows, "note_rows": result.rows.note_rows},
            "utterances": utterances}


def _totals(results: list[_VideoResult], fps: int) -> dict[str, Any]:
    frames = sum(r.plan.num_frames for r in results)
    return {"videos": len(results), "frames": frames, "seconds": round(frames / fps, 3),
            "utterances": sum(len(r.utterances) for r in results)}
