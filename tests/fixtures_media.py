"""Test helpers that write tiny media and data files (mp4s, transcript CSVs, ASR JSON, Ego4D roots).

Importable from any test (``from fixtures_media import tiny_video``). Everything is written under a
caller-given folder, normally ``tmp_path``; videos are small (default 32x32, 5 fps, 2 s) so tests stay fast.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from babyvlm.media import write_video

TRANSCRIPT_HEADER = ("Time", "Video Name", "Utterance", "Speaker")


def video_frames(num_frames: int, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Frames with a moving bright square on a seeded background, so encoding has something to code."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 96, size=(size, size, 3), dtype=np.uint8)
    frames = []
    for index in range(num_frames):
        frame = background.copy()
        left = (index * 3) % max(1, size - 8)
        frame[8:16, left:left + 8] = 255
        frames.append(frame)
    return frames


@lru_cache(maxsize=16)
def _encoded(seconds: float, fps: int, size: int, seed: int) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = write_video(Path(scratch) / "tiny.mp4", video_frames(max(1, round(seconds * fps)), size, seed), fps)
        return path.read_bytes()


def tiny_video(path: str | Path, *, seconds: float = 2.0, fps: int = 5, size: int = 32, seed: int = 0) -> Path:
    """Write a real H.264 mp4 at ``path`` (encoded once per parameter set per process, then copied)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_encoded(float(seconds), int(fps), int(size), int(seed)))
    return target


def truncate_file(path: str | Path, keep_fraction: float = 0.5) -> Path:
    """Cut a file to a fraction of its size (a truncated download)."""
    target = Path(path)
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


def write_csv(path: str | Path, rows: Iterable[Sequence[Any]], *, header: Sequence[str] | None = TRANSCRIPT_HEADER,
              encoding: str = "utf-8", bom: bool = False, delimiter: str = ",") -> Path:
    """Write a CSV (e.g. a human transcript) with a chosen encoding, optional UTF-8 BOM and delimiter."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return target


def write_json(path: str | Path, data: Any) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return target


def write_asr(path: str | Path, video: str, utterances: Iterable[Mapping[str, Any]]) -> Path:
    """An ASR transcript in the ``babyvlm.asr/1`` object form."""
    return write_json(path, {"schema": "babyvlm.asr/1", "video": video, "utterances": list(utterances)})


def write_asr_frames(path: str | Path, entries: Iterable[tuple[str, int, int, str]], frames_per_utterance: int = 2
                     ) -> Path:
    """An ASR transcript in the released derived-frame list form from ``(stem, start_ms, end_ms, text)``."""
    items = [
        {"frame": f"{stem}_{start}_{end}_frame_{k}.jpg", "utterance": text}
        for stem, start, end, text in entries
        for k in range(frames_per_utterance)
    ]
    return write_json(path, items)


def ego4d_video_entry(uid: str, duration: float, fps: float = 5.0, size: int = 32,
                      scenarios: Sequence[str] = ("Cooking",)) -> dict[str, Any]:
    return {
        "video_uid": uid,
        "duration_sec": duration,
        "scenarios": list(scenarios),
        "video_metadata": {"fps": fps, "num_frames": round(duration * fps), "display_resolution_width": size,
                           "display_resolution_height": size},
    }


def write_ego4d_root(root: str | Path, narrations: Mapping[str, Sequence[tuple[float, str]]], *,
                     durations: Mapping[str, float] | None = None, videos: Iterable[str] | None = None,
                     annotations_dir: str = "annotations", seconds: float = 2.0) -> Path:
    """An Ego4D-format root: ``ego4d.json``, ``annotations/narration.json`` and tiny mp4s.

    ``narrations`` maps uid -> [(timestamp_sec, narration_text)] (pass 1); ``durations`` defaults to
    ``seconds`` per uid; ``videos`` lists the uids that get an mp4 (default: all narrated uids).
    """
    root = Path(root)
    durations = dict(durations or {})
    uids = sorted(set(narrations) | set(durations))
    metadata = {"date": "2022-01-01", "version": "v1", "description": "test",
                "videos": [ego4d_video_entry(uid, durations.get(uid, seconds)) for uid in uids]}
    write_json(root / "ego4d.json", metadata)
    passes = {
        uid: {"narration_pass_1": {
            "narrations": [
                {"timestamp_sec": ts, "timestamp_frame": round(ts * 5), "narration_text": text,
                 "annotation_uid": f"{uid}-{i}"}
                for i, (ts, text) in enumerate(items)
            ],
            "summaries": [{"summary_text": "#Summary C did things", "start_sec": 0.0, "end_sec": 1.0}],
        }}
        for uid, items in narrations.items()
    }
    write_json(root / annotations_dir / "narration.json", passes)
    for uid in (narrations if videos is None else videos):
        tiny_video(root / "full_scale" / f"{uid}.mp4", seconds=seconds)
    return root


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG of a few hundred bytes whose header declares ``width`` x ``height`` pixels (a
    decompression bomb: decoding it would need width * height * 3 bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * (1 + 3 * 64) * 64, 9)  # the first rows only; a decoder would want them all
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
