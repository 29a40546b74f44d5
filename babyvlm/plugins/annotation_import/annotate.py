"""Running an ``annotator`` plugin (a detector in-process) over recordings' frames.

``annotate_recording`` decodes the video once (``media.iter_lazy_frames``, with the recording's
rotation, so boxes are in the pixels babyvlm's builders see), converts one frame every ``every_sec``
seconds to RGB, hands them to ``annotator.annotate(recording, frames)`` in chunks of ``batch_size``
(consecutive, in order: an annotator may keep tracking state for a recording) and puts every box it
returns through an ``ObjectsCollector`` (thresholds, validation, counts). The annotator answers one list
per frame, each entry a ``DetectedObject`` or a mapping with the same keys; a wrong count of lists or an
entry without ``category``/``bbox`` is an error naming the annotator and the frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.records import Recording
from babyvlm.plugins.annotation_import.objects import (
    AnnotatorFrame,
    DetectedObject,
    ImportSettings,
    ObjectsCollector,
    VideoGeometry,
)

Log = Callable[[str], None]


def annotate_recording(annotator: Any, name: str, recording: Recording, settings: ImportSettings,
                       every_sec: float = 1.0, batch_size: int = 16, log: Log = print) -> ObjectsCollector:
    """One recording's boxes from ``annotator`` (registered as ``name``), collected and counted."""
    from babyvlm.media import iter_lazy_frames

    probed = VideoGeometry.probe(recording.video_path)
    # frames are counted as decoded: a header's frame count can be an estimate
    geometry = VideoGeometry(probed.video, probed.fps, probed.width, probed.height)
    collector = ObjectsCollector(geometry, settings, f"annotator:{name}")
    stride = max(1, round(every_sec * geometry.fps)) if geometry.fps else 1
    chunk: list[AnnotatorFrame] = []
    frames = iter_lazy_frames(recording.video_path, rotation=recording.rotation)
    with contextlib.closing(frames):
        for index, (time_sec, frame) in enumerate(frames):
            if index % stride:
                continue
            chunk.append(AnnotatorFrame(index, time_sec, frame.to_rgb()))
            if len(chunk) == batch_size:
                _annotate_chunk(annotator, name, recording, chunk, collector)
                chunk = []
    if chunk:
        _annotate_chunk(annotator, name, recording, chunk, collector)
    log(f"{recording.recording_id}: {len(collector.frames)} frames annotated by {name!r} (one every {stride})")
    return collector


def _annotate_chunk(annotator: Any, name: str, recording: Recording, chunk: Sequence[AnnotatorFrame],
                    collector: ObjectsCollector) -> None:
    answers = list(annotator.annotate(recording, list(chunk)))
    if len(answers) != len(chunk):
        raise DataError(f"annotator {name!r}: {len(answers)} answers for {len(chunk)} frames of "
                        f"{recording.recording_id} (frames {chunk[0].frame_index}-{chunk[-1].frame_index}); "
                        f"annotate() returns one list of boxes per frame")
    input_file = f"annotator:{name}"
    for frame, boxes in zip(chunk, answers, strict=True):
        where = f"{recording.recording_id} frame {frame.frame_index}"
        collector.add_frame(frame.frame_index, input_file, where)
        height, width = frame.rgb.shape[:2]
        for number, value in enumerate(boxes):
            found = DetectedObject.of(value, f"annotator {name!r}, {where}, box {number}")
            collector.add(frame.frame_index, found, input_file, f"{where} box {number}", (float(width), float(height)))
