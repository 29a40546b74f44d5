"""Annotator ``synthetic_truth``: the synthetic world's own boxes for a video of a synthetic corpus.

The reference annotator: it needs no detector and is exact. For a recording of a corpus written by
``babyvlm synth saycam|ego4d`` it re-creates the simulated world behind the video from the corpus
manifest (``synthetic.json``: the options and seed; the world is deterministic) and renders each frame
asked for, returning every object really visible in it (tight boxes after occlusion and clipping, with
track ids and visible fractions) — the boxes the corpus's own ``*.objects.json`` holds. It shows the
annotator path end to end on data where the right answer is known; a real detector plugs in the same
way (docs/real-data.md).

Options: ``root`` — the corpus folder (default: found from the video's path, two folders up, where
``synth`` writes ``videos/`` and ``full_scale/``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import Recording
from babyvlm.plugins.annotation_import.objects import AnnotatorFrame, DetectedObject


def _saycam_worlds(manifest: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    from babyvlm.plugins.synthetic.saycam_writer import SaycamOptions, build_world, plan_videos

    options = manifest["options"]
    settings = SaycamOptions(**{**options, "children": tuple(options["children"])})
    return {plan.stem: (lambda plan=plan: build_world(plan, settings)) for plan in plan_videos(settings)}


def _ego4d_worlds(manifest: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    from babyvlm.plugins.synthetic.ego4d_writer import Ego4DOptions, build_world

    settings = Ego4DOptions(**manifest["options"])
    # the manifest lists the videos in the order the writer made them (the world's index)
    return {video["video_uid"]: (lambda index=index, frames=video["num_frames"]: build_world(index, frames, settings))
            for index, video in enumerate(manifest["videos"])}


WORLDS_BY_FORMAT = {"saycam": _saycam_worlds, "ego4d": _ego4d_worlds}


class SyntheticTruthAnnotator:
    """See the module docstring."""

    name = "synthetic_truth"

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else None
        self._worlds: dict[Path, dict[str, Callable[[], Any]]] = {}
        self._built: dict[tuple[Path, str], Any] = {}

    def annotate(self, recording: Recording, frames: Sequence[AnnotatorFrame]) -> list[list[DetectedObject]]:
        world = self._world(recording)
        answers = []
        for frame in frames:
            if not 0 <= frame.frame_index < world.num_frames:
                raise DataError(f"synthetic_truth: {recording.recording_id} has {world.num_frames} frames in its "
                                f"world; frame {frame.frame_index} is not one of them")
            _, visible = world.render(frame.frame_index)
            answers.append([DetectedObject(v.category, tuple(float(c) for c in v.bbox), None, v.track_id, v.fraction)
                            for v in visible])
        return answers

    def _world(self, recording: Recording) -> Any:
        root = self.root or Path(recording.video_path).resolve().parent.parent
        key = (root, recording.recording_id)
        if key not in self._built:
            worlds = self._corpus(root)
            if recording.recording_id not in worlds:
                raise DataError(f"synthetic_truth: {recording.recording_id} is not a video of the synthetic corpus "
                                f"at {root}")
            self._built = {key: worlds[recording.recording_id]()}  # one world at a time: they hold large canvases
        return self._built[key]

    def _corpus(self, root: Path) -> dict[str, Callable[[], Any]]:
        if root not in self._worlds:
            from babyvlm.plugins.synthetic.corpus import MANIFEST_SCHEMA
            from babyvlm.plugins.synthetic.fileio import MANIFEST_NAME

            manifest_path = root / MANIFEST_NAME
            if not manifest_path.is_file():
                raise DataError(f"synthetic_truth: {root} holds no {MANIFEST_NAME}; this annotator only knows videos "
                                f"of corpora written by `babyvlm synth` (give root=CORPUS if the video lives elsewhere)")
            manifest = load_json(manifest_path)
            known = isinstance(manifest, dict) and manifest.get("schema") == MANIFEST_SCHEMA
            worlds_of = WORLDS_BY_FORMAT.get(manifest.get("format")) if known else None
            if worlds_of is None:
                raise DataError(f"{manifest_path}: not a synthetic corpus manifest this babyvlm knows "
                                f"(schema {MANIFEST_SCHEMA}, format {' or '.join(WORLDS_BY_FORMAT)})")
            try:
                self._worlds[root] = worlds_of(manifest)
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{manifest_path}: incomplete synthetic manifest ({type(exc).__name__}: {exc})") from exc
        return self._worlds[root]
