"""The pretraining-set builder: a source's recordings -> the three sample formats -> a sample store.

For each recording the clips are planned from its utterances, then the video is decoded once,
sequentially, and frames are routed to the clips that need them (``frames.route_frames``). Video
clips and 1-FPS image pairs are filtered by the scorer's thresholds — a clip below the video threshold
is dropped with its image pairs, as the paper takes image pairs from the filtered clips; kept clips
become segments of interleaved multi-turn sequences (best-scoring frame per segment, or the middle
frame when the scorer has no opinion). ``--shard i/N`` keeps the recordings whose stable id hash
falls in shard i. Builds resume: completed recordings are skipped unless their inputs changed — each
progress record keeps a fingerprint of the recording (utterances, video size and mtime, the fields
copied into samples), and a recording whose fingerprint differs is rebuilt; the build settings are
guarded by the store (see ``lmdb_store.writer``), and so are the source and the corpus root: resuming
with another ``--root`` or source is refused before anything is written, saying what differs. The
store's writer lock refuses a second build into the same store. A source that yields no recording is
an error, and nothing is written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import babyvlm
from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import DataError
from babyvlm.core.io import disk_errors
from babyvlm.core.progress import progress as progress_bar
from babyvlm.core.records import Recording, Sample, SkipReport
from babyvlm.media import iter_lazy_frames, probe_video
from babyvlm.plugins.pretraining_set.clips import BuildSettings, PlannedClip, plan_clips, plan_windows
from babyvlm.plugins.pretraining_set.frames import RoutedFrame, route_frames, storage_pixels
from babyvlm.plugins.pretraining_set.stores import write_build_config

Log = Callable[[str], None]


def shard_of(recording_id: str, shard_count: int) -> int:
    """A stable shard for a recording (independent of Python's hash seed and of the corpus order)."""
    return int.from_bytes(hashlib.sha1(recording_id.encode()).digest()[:8], "big") % shard_count


def recording_fingerprint(recording: Recording) -> str:
    """A hash of what a recording's samples are made from, besides the build settings: its utterances,
    the video file's size and mtime, and the recording fields copied into sample meta."""
    video = Path(recording.video_path)
    try:
        stat = video.stat()
        size, mtime = stat.st_size, stat.st_mtime_ns
    except OSError:  # the build reports the unreadable video; the fingerprint just has to differ
        size, mtime = None, None
    inputs = {"utterances": [[u.start, u.end, u.text, u.speaker] for u in recording.utterances],
              "video": video.name, "size": size, "mtime_ns": mtime, "rotation": recording.rotation,
              "source": recording.source, "child": recording.child, "date": recording.date,
              "age_months": recording.age_months}
    return "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class BuildResult:
    manifest: dict[str, Any]
    report: SkipReport
    built: int = 0
    resumed: int = 0
    rebuilt: int = 0  # done before, redone (built or failed) because their inputs changed
    failed: int = 0
    other_shards: int = 0
    removed_leftovers: int = 0  # samples of interrupted recordings the source no longer yields
    seconds: float = 0.0

    def summary(self) -> str:
        counts = self.manifest["counts"]
        formats = ", ".join(f"{k} {v}" for k, v in counts["by_format"].items()) or "none"
        notes = [f"{self.rebuilt} redone because their inputs changed"] if self.rebuilt else []
        notes += [f"{self.removed_leftovers} leftover samples removed"] if self.removed_leftovers else []
        return (f"{counts['total']} samples ({formats}); recordings: {self.built} built, {self.resumed} already "
                f"done, {self.failed} unreadable, {self.other_shards} in other shards; "
                + "".join(f"{note}; " for note in notes) + f"{self.seconds:.1f} s")


@dataclass
class _Segment:
    clip: PlannedClip
    frame: RoutedFrame
    score: float | None


@dataclass
class RecordingSamples:
    """Turns one recording's routed clips into samples and hands them to the shard writer."""

    recording: Recording
    settings: BuildSettings
    scorer: Any
    writer: Any
    report: SkipReport
    segments: list[_Segment] = field(default_factory=list)

    def _meta(self, **extra: Any) -> dict[str, Any]:
        rec = self.recording
        return {"recording_id": rec.recording_id, "source": rec.source, "child": rec.child,
                "age_months": rec.age_months, "date": rec.date, "video": Path(rec.video_path).name, **extra}

    def _where(self, clip: PlannedClip) -> str:
        return f"{self.recording.recording_id}@{clip.start}-{clip.end}s"

    def add_clip(self, clip: PlannedClip, frames: Mapping[float, RoutedFrame]) -> None:
        video = [frames[t] for t in clip.video_times]
        video_score = self.scorer.score_video([f.pixels for f in video], clip.text)
        if video_score is not None and not math.isfinite(video_score):  # NaN passes every threshold test
            self.report.skip("non_finite_score", f"{self._where(clip)} (video score {video_score!r})")
            return
        if video_score is not None and video_score < self.scorer.video_threshold:
            self.report.skip("low_video_text_similarity", self._where(clip))
            return
        if "video" in self.settings.formats:
            self._add("video", f"{clip.index:06d}", video, [clip.text],
                      self._meta(clip=[clip.start, clip.end], clip_index=clip.index, speaker=clip.speaker,
                                 frame_times=[f.time for f in video], score=video_score))
        images = [frames[t] for t in clip.image_times]
        scores = self.scorer.score_images([f.pixels for f in images], [clip.text] * len(images))
        for number, frame in enumerate(images):
            score = None if scores is None else float(scores[number])
            if score is not None and not math.isfinite(score):
                self.report.skip("non_finite_score", f"{self._where(clip)} frame {frame.time}s (image score {score!r})")
            elif score is not None and score < self.scorer.image_threshold:
                self.report.skip("low_image_text_similarity", f"{self._where(clip)} frame {frame.time}s")
            elif "image" in self.settings.formats:
                self._add("image", f"{clip.index:06d}.{number:03d}", [frame], [clip.text],
                          self._meta(clip=[clip.start, clip.end], clip_index=clip.index, speaker=clip.speaker,
                                     frame_time=frame.time, score=score))
        if scores is None:
            self.segments.append(_Segment(clip, frames[clip.middle_time], None))
        else:
            finite = [i for i in range(len(images)) if math.isfinite(scores[i])]
            if finite:
                best = max(finite, key=lambda i: scores[i])
                self.segments.append(_Segment(clip, images[best], float(scores[best])))

    def add_windows(self) -> None:
        if "interleaved" not in self.settings.formats:
            return
        clips = [s.clip for s in self.segments]
        for window in plan_windows(clips, self.settings, self.recording.recording_id):
            steps = [self.segments[pos] for pos in window]
            self._add("interleaved", f"{steps[0].clip.index:06d}", [s.frame for s in steps],
                      [s.clip.text for s in steps],
                      self._meta(clips=[[s.clip.start, s.clip.end] for s in steps],
                                 clip_indices=[s.clip.index for s in steps],
                                 frame_times=[s.frame.time for s in steps], scores=[s.score for s in steps]))

    def _add(self, fmt: str, local: str, frames: list[RoutedFrame], texts: list[str], meta: dict[str, Any]) -> None:
        sample_id = f"{self.recording.recording_id}/{fmt}/{local}"
        sample = Sample(sample_id, fmt, [f.jpeg() for f in frames], _conversation(fmt, len(frames), texts), meta)
        self.writer.add(fmt, local, sample)


def _conversation(fmt: str, image_count: int, texts: list[str]) -> list[dict[str, str]]:
    """LLaVA turns: all frames of a clip in one human turn; one image + utterance per interleaved step."""
    if fmt == "interleaved":
        turns = []
        for text in texts:
            turns += [{"from": "human", "value": IMAGE_TOKEN}, {"from": "gpt", "value": text}]
        return turns
    return [{"from": "human", "value": "\n".join([IMAGE_TOKEN] * image_count)}, {"from": "gpt", "value": texts[0]}]


def build_recording(recording: Recording, settings: BuildSettings, scorer: Any, writer: Any) -> tuple[SkipReport, float]:
    """Write all samples of one recording (one decode pass); returns the skips and the video's seconds.

    Raises DataError (naming the file) for a video that cannot be opened or decoded.
    """
    report = SkipReport()
    info = probe_video(recording.video_path)
    clips = plan_clips(recording.utterances, duration=info.duration, fps=info.fps, settings=settings,
                       report=report, where=recording.recording_id)
    samples = RecordingSamples(recording, settings, scorer, writer, report)
    if clips:
        frames = iter_lazy_frames(recording.video_path, rotation=recording.rotation)
        routed = route_frames(frames, clips, prepare=lambda f: storage_pixels(f, settings.image_size),
                              quality=settings.jpeg_quality, frame_period=1 / info.fps if info.fps else 0.0)
        for clip, clip_frames in routed:
            if clip_frames is None:
                report.skip("clip_beyond_video_end", f"{recording.video_path} @{clip.start}s")
            else:
                samples.add_clip(clip, clip_frames)
        samples.add_windows()
    return report, info.duration


@dataclass
class BuildPlan:
    """What to build and where: the inputs of ``build_pretraining_set``."""

    source: str
    root: str | os.PathLike
    out: str | os.PathLike
    source_options: dict[str, Any] = field(default_factory=dict)
    scorer: str = "none"
    scorer_options: dict[str, Any] = field(default_factory=dict)
    settings: BuildSettings = field(default_factory=BuildSettings)
    shard: tuple[int, int] = (0, 1)
    commit_every: int = 256
    store: str = "lmdb"
    strict: bool = False
    max_age_months: float | None = None  # keep only recordings of children up to this age (a developmental sweep)

    def content_settings(self) -> dict[str, Any]:
        """The settings a resumed build must share with the first attempt (and shards with each other)."""
        content = {"source": self.source, "source_options": self.source_options, "scorer": self.scorer,
                   "scorer_options": self.scorer_options, "store": self.store, **self.settings.to_dict()}
        if self.max_age_months is not None:  # absent otherwise, so stores built before it still resume
            content["max_age_months"] = self.max_age_months
        return content


def build_pretraining_set(plan: BuildPlan, log: Log = print) -> BuildResult:
    """Build (or resume) ``plan.out``; returns the manifest, the merged skip report and counts."""
    started = time.monotonic()
    shard_index, shard_count = plan.shard
    source = babyvlm.build("source", dict(type=plan.source, root=str(plan.root), **plan.source_options))
    age_report = SkipReport()
    recordings = _first_checked(_up_to_age(_recordings(source), plan.max_age_months, age_report), source, plan)
    scorer = babyvlm.build("scorer", dict(type=plan.scorer, **plan.scorer_options))
    store = babyvlm.build("store", plan.store, path=str(plan.out))
    content = plan.content_settings()
    # the root is guarded on resume (another corpus must not be written into this store) but not
    # compared between shards, which may be built on machines that mount the corpus elsewhere
    root = os.path.realpath(plan.root)
    writer = store.writer(settings={**content, "root": root}, shard_index=shard_index, shard_count=shard_count,
                          commit_every=plan.commit_every, on_commit=lambda n: log(f"commit: {n} samples in shard"))
    for note in getattr(writer, "notes", ()):
        log(note)
    try:
        with disk_errors(plan.out):
            write_build_config(plan.out, {**content, "root": root, "shard": f"{shard_index}/{shard_count}",
                                          "commit_every": plan.commit_every, "strict": plan.strict})
    except BaseException:
        writer.close()
        raise
    result = BuildResult(manifest={}, report=SkipReport())
    try:
        seen, mine = _build_shard(recordings, plan, scorer, writer, result, log)
        provenance = {"name": plan.source, "root": str(plan.root), "options": plan.source_options,
                      "recordings_total": len(seen), "recordings_digest": _digest(seen),
                      "report": source_skip_report(source).to_dict()}
        if plan.max_age_months is not None:
            provenance["age_filter"] = {"max_age_months": plan.max_age_months, **age_report.to_dict()}
            log(f"age filter <= {plan.max_age_months} months: {age_report.summary()}")
        build = {**content, "shard": f"{shard_index}/{shard_count}"}
        result.manifest = writer.finalize(build=build, source=provenance, expected_groups=mine)
        _log_leftovers(getattr(writer, "removed_leftovers", {}), result, log)
    finally:
        writer.close()
    result.report = SkipReport.from_dict(result.manifest["skips"])
    result.seconds = time.monotonic() - started
    return result


def _first_checked(recordings: Iterator[Recording], source: Any, plan: BuildPlan) -> Iterator[Recording]:
    """``recordings`` unchanged, after checking there is at least one (an empty build is a mistake)."""
    first = next(recordings, None)
    if first is None:
        raise DataError(f"{plan.root}: the {plan.source!r} source found no recordings, so nothing was built "
                        f"({source_skip_report(source).summary()})")
    return itertools.chain([first], recordings)


def _build_shard(recordings: Iterable[Recording], plan: BuildPlan, scorer: Any, writer: Any, result: BuildResult,
                 log: Log) -> tuple[dict[str, Path], set[str]]:
    """Build this shard's recordings that are not done (or changed); returns every recording seen and this shard's."""
    done = writer.done_fingerprints()
    seen: dict[str, Path] = {}
    mine: set[str] = set()
    with progress_bar(None, "store build", unit="recording") as bar:  # the source streams: no total known
        for recording in recordings:
            _build_or_skip(recording, plan, scorer, writer, result, log, done, seen, mine)
            bar.update()
    return seen, mine


def _build_or_skip(recording: Recording, plan: BuildPlan, scorer: Any, writer: Any, result: BuildResult, log: Log,
                   done: Mapping[str, Any], seen: dict[str, Path], mine: set[str]) -> None:
    """One recording of the source: left to another shard, resumed (built already), or built."""
    shard_index, shard_count = plan.shard
    _check_unique(recording, seen)
    rid = recording.recording_id
    if shard_of(rid, shard_count) != shard_index:
        result.other_shards += 1
        return
    mine.add(rid)
    fingerprint = recording_fingerprint(recording)
    if rid in done and done[rid] == fingerprint:
        result.resumed += 1
        return
    if rid in done:
        result.rebuilt += 1
        log(f"rebuilding {rid}: its transcript, video or metadata changed since it was built")
    _build_one(recording, fingerprint, plan, scorer, writer, result, log)


def _log_leftovers(removed: Mapping[str, int], result: BuildResult, log: Log) -> None:
    result.removed_leftovers = sum(removed.values())
    if removed:
        names = ", ".join(sorted(removed)[:3]) + (" ..." if len(removed) > 3 else "")
        log(f"removed {result.removed_leftovers} leftover samples of {len(removed)} interrupted recording(s) "
            f"the source no longer yields: {names}")


def _build_one(recording: Recording, fingerprint: str, plan: BuildPlan, scorer: Any, writer: Any,
               result: BuildResult, log: Log) -> None:
    writer.begin_group(recording.recording_id, fingerprint)
    try:
        report, duration = build_recording(recording, plan.settings, scorer, writer)
    except DataError as exc:
        unreadable = SkipReport()
        unreadable.skip("unreadable_video", str(exc))
        writer.fail_group(str(exc), {"skips": unreadable.to_dict()})
        result.failed += 1
        if plan.strict:
            raise
        log(f"skipped {recording.recording_id}: {exc}")
        return
    writer.finish_group({"video_seconds": duration, "skips": report.to_dict(), "video": str(recording.video_path)})
    result.built += 1
    log(f"built {recording.recording_id} ({report.summary()})")


def _recordings(source: Any) -> Iterator[Recording]:
    recordings = source.recordings() if callable(getattr(source, "recordings", None)) else source
    for recording in recordings:
        if not isinstance(recording, Recording):
            raise DataError(f"source yielded a {type(recording).__name__}, not a Recording")
        yield recording


def _up_to_age(recordings: Iterator[Recording], max_age: float | None, report: SkipReport) -> Iterator[Recording]:
    """The recordings of children up to ``max_age`` months; older ones and ones without an age are counted."""
    for recording in recordings:
        if max_age is None:
            yield recording
        elif recording.age_months is None:
            report.skip("no_age", recording.recording_id)
        elif recording.age_months > max_age:
            report.skip("older_than_max_age", f"{recording.recording_id} ({recording.age_months:.1f} months)")
        else:
            yield recording


def _check_unique(recording: Recording, seen: dict[str, Path]) -> None:
    rid = recording.recording_id
    if rid in seen:
        raise DataError(f"two recordings share the id {rid!r}: {seen[rid]} and {recording.video_path}")
    if not rid or "/" in rid or "\x00" in rid:
        raise DataError(f"{recording.video_path}: invalid recording id {rid!r} (must be non-empty, without '/')")
    seen[rid] = Path(recording.video_path)


def _digest(seen: Mapping[str, Path]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(sorted(seen)).encode()).hexdigest()


def source_skip_report(source: Any) -> SkipReport:
    """The source's own skip report (attribute or method), whatever form it takes."""
    report = getattr(source, "report", None)
    if callable(report):
        report = report()
    if isinstance(report, SkipReport):
        return report
    return SkipReport.from_dict(report if isinstance(report, Mapping) else None)
