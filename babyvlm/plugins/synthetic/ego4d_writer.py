"""Writes the synthetic adult world as an Ego4D-format corpus: the out-of-domain test data.

Same object vocabulary as the infant corpus, different domain: adult work surfaces (kitchen counter,
workbench, garden), cooler and harsher light, smaller objects seen from higher up, faster head motion,
and ``#C C ...`` narrations of what the wearer does instead of child-directed speech. Layout::

    OUT/ego4d.json                                  # {"date", "version", "description", "videos": [...]}
    OUT/annotations/narration.json                  # {uid: {"narration_pass_1": {...}, "narration_pass_2": {...}}}
    OUT/full_scale/{video_uid}.mp4
    OUT/annotations/objects/{video_uid}.objects.json
    OUT/synthetic.json                              # ground truth: seed, options, per-video settings, narrations

``timestamp_frame`` counts frames of the written video (its own fps), not Ego4D's 30 fps canonical clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babyvlm.core.progress import progress as progress_bar
from babyvlm.plugins.synthetic.corpus import (
    check_video_options,
    map_videos,
    render_annotated,
    seed_for,
    split_frames,
    write_corpus,
)
from babyvlm.plugins.synthetic.fileio import write_json
from babyvlm.plugins.synthetic.speech import Narration, narrations, second_pass, summary
from babyvlm.plugins.synthetic.world import ADULT_WORKPLACE, Behaviour, VideoWorld

SCENARIOS = {"kitchen": "Cooking", "workshop": "Carpenter", "garden": "Gardening"}
METADATA_DATE = "2022-02-01"


@dataclass(frozen=True)
class Ego4DOptions:
    minutes: float
    seed: int
    fps: int = 5
    size: int = 224
    video_minutes: float = 1.0

    def __post_init__(self) -> None:
        check_video_options(self.minutes, self.fps, self.size, self.video_minutes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _uid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def plan_lengths(options: Ego4DOptions) -> list[int]:
    """Frame counts per video, summing to ``minutes`` of video."""
    rng = np.random.default_rng(seed_for(options.seed, 10))
    frames = split_frames(rng, options.minutes, options.fps, round(options.minutes / options.video_minutes))
    return [int(f) for f in frames]


def write_ego4d(out: str | Path, options: Ego4DOptions, *, overwrite: bool = False,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate (or verify) the corpus in ``out``; returns the manifest. See ``corpus`` for the rerun policy."""
    return write_corpus(Path(out), "ego4d", options.to_dict(), lambda root: _write_files(root, options, progress),
                        overwrite=overwrite, progress=progress)


def _write_files(out: Path, options: Ego4DOptions,
                 progress: Callable[[str], None] | None) -> tuple[dict[str, Any], list[str]]:
    metadata, narration, truth, written = [], {}, [], []
    lengths = list(plan_lengths(options))
    videos = map_videos(lambda index, num_frames: _write_video(out, index, num_frames, options),
                        range(len(lengths)), lengths)
    with progress_bar(len(lengths), "synth ego4d", unit="video") as bar:
        for num_frames, video in zip(lengths, videos, strict=True):
            metadata.append(video["metadata"])
            narration[video["uid"]] = video["narration"]
            truth.append(video["truth"])
            written += [f"full_scale/{video['uid']}.mp4", f"annotations/objects/{video['uid']}.objects.json"]
            if progress:
                progress(f"{video['uid']}: {num_frames / options.fps:.1f} s, {len(video['truth']['narrations'])} narrations")
            bar.update()
    write_json(out / "ego4d.json", {"date": METADATA_DATE, "version": "v1-synthetic",
                                           "description": "babyvlm synthetic Ego4D-format corpus (out-of-domain test data)",
                                           "videos": metadata})
    write_json(out / "annotations" / "narration.json", narration)
    written += ["ego4d.json", "annotations/narration.json"]
    frames = sum(t["num_frames"] for t in truth)
    body = {"totals": {"videos": len(truth), "frames": frames, "seconds": round(frames / options.fps, 3),
                       "narrations": sum(len(t["narrations"]) for t in truth)},
            "videos": truth}
    return body, written


def _video_seeds(index: int, options: Ego4DOptions) -> list[np.random.SeedSequence]:
    return seed_for(options.seed, 11, index).spawn(3)  # world, narrations, uid


def build_world(index: int, num_frames: int, options: Ego4DOptions) -> VideoWorld:
    """The simulated world behind video ``index`` (``num_frames`` from ``plan_lengths(options)``)."""
    return VideoWorld(_video_seeds(index, options)[0], num_frames=num_frames, fps=options.fps, size=options.size,
                      domain=ADULT_WORKPLACE, behaviour=Behaviour.adult())


def _write_video(out: Path, index: int, num_frames: int, options: Ego4DOptions) -> dict[str, Any]:
    _, text_seed, uid_seed = _video_seeds(index, options)
    uid = _uid(np.random.default_rng(uid_seed))
    world = build_world(index, num_frames, options)
    visibility = render_annotated(world, out / "full_scale" / f"{uid}.mp4",
                                  out / "annotations" / "objects" / f"{uid}.objects.json")
    fps = options.fps
    settings = [(s.start_frame / fps, s.end_frame / fps, s.setting) for s in world.scenes]
    rng = np.random.default_rng(text_seed)
    duration = num_frames / fps
    first = narrations(rng, visibility=visibility, events=world.events, fps=fps, settings=settings)
    second = second_pass(rng, first, duration)
    seen = sorted({v.category for frame in visibility for v in frame})
    setting = max(settings, key=lambda s: s[1] - s[0])[2]
    scenarios = sorted({SCENARIOS[s] for _, _, s in settings})
    metadata = {"video_uid": uid, "duration_sec": round(duration, 3), "scenarios": scenarios,
                "video_metadata": {"fps": float(fps), "num_frames": num_frames, "display_resolution_width": options.size,
                                   "display_resolution_height": options.size, "mp4_duration_sec": round(duration, 3),
                                   "video_codec": "h264"},
                "is_stereo": False, "has_redacted_regions": False, "device": "synthetic head camera",
                "origin_video_id": f"synthetic_{options.seed}_{index:04d}"}
    passes = {"status": "complete"}
    for name, entries in (("narration_pass_1", first), ("narration_pass_2", second)):
        passes[name] = {"narrations": [_narration_json(rng, n, fps) for n in entries],
                        "summaries": [{"start_sec": 0.0, "end_sec": round(duration, 3), "start_frame": 0,
                                       "end_frame": num_frames, "summary_text": summary(setting, seen),
                                       "annotation_uid": _uid(rng)}]}
    truth = {"video_uid": uid, "num_frames": num_frames, "duration_sec": round(duration, 3), "fps": fps,
             "width": options.size, "height": options.size,
             "settings": [{"start": a, "end": b, "setting": s} for a, b, s in settings],
             "events": [{"kind": e.kind, "start": round(e.start, 3), "end": round(e.end, 3), "track_id": e.track_id,
                         "category": e.category} for e in world.events],
             "narrations": [{"time": n.time, "text": n.text, "mentions": list(n.mentions)} for n in first]}
    return {"uid": uid, "metadata": metadata, "narration": passes, "truth": truth}


def _narration_json(rng: np.random.Generator, narration: Narration, fps: int) -> dict[str, Any]:
    return {"timestamp_sec": narration.time, "timestamp_frame": int(round(narration.time * fps)),
            "narration_text": narration.text, "annotation_uid": _uid(rng)}
