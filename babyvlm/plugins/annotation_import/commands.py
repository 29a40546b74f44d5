"""``babyvlm annotations``: object boxes for the DevCV builders from detector output or an in-process
annotator, and a check of ``*.objects.json`` files (docs/real-data.md, "DevCV on your own video")."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import parse_key_values


@click.group("annotations")
def annotations_group() -> None:
    """Object boxes for DevCV: import detector output, run an annotator, check files."""


def settings_options(command: Callable) -> Callable:
    """The score thresholds and category choices every way in shares."""
    options = [
        click.option("--min-score", type=float, default=0.0, show_default=True,
                     help="Drop boxes scored below this (boxes without a score always pass)."),
        click.option("--min-score-for", "min_scores", multiple=True, metavar="CATEGORY=SCORE",
                     help="A category's own threshold (after --rename); repeatable."),
        click.option("--keep", default=None, metavar="A,B,...", help="Keep only these categories (after --rename)."),
        click.option("--rename", multiple=True, metavar="DETECTOR_NAME=NAME",
                     help="Rename a detector's category (e.g. 'sports ball=ball'); repeatable."),
    ]
    return functools.reduce(lambda wrapped, option: option(wrapped), reversed(options), command)


def import_settings(min_score: float, min_scores: tuple[str, ...], keep: str | None, rename: tuple[str, ...],
                    rotation: int = 0) -> Any:
    from babyvlm.plugins.annotation_import.objects import ImportSettings

    kept = frozenset(name.strip() for name in keep.split(",") if name.strip()) if keep else None
    return ImportSettings(min_score=min_score, min_scores=parse_key_values(min_scores, "--min-score-for"),
                          keep=kept, rename={k: str(v) for k, v in parse_key_values(rename, "--rename").items()},
                          rotation=rotation)


def _coco_observations(input_path: Path, images: str | None, classes: str | None) -> Iterator[Any]:
    from babyvlm.plugins.annotation_import.names import class_names
    from babyvlm.plugins.annotation_import.readers import read_coco_results

    return read_coco_results(input_path, Path(images) if images else None, class_names(classes) if classes else None)


def _yolo_observations(input_path: Path, images: str | None, classes: str | None) -> Iterator[Any]:
    from babyvlm.plugins.annotation_import.names import class_names
    from babyvlm.plugins.annotation_import.readers import read_yolo

    if images:
        raise ConfigError("--images is for --format coco-results (YOLO label files are named after their frames)")
    if not classes:
        raise ConfigError("--format yolo needs --classes (classes.txt, data.yaml, or 'coco80' for COCO-trained models)")
    return read_yolo(input_path, class_names(classes))


IMPORTERS = {"coco-results": _coco_observations, "yolo": _yolo_observations}


@annotations_group.command("import")
@click.argument("input_path", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(list(IMPORTERS)), required=True,
              help="coco-results: a JSON list of {image_id, category_id, bbox, score}; yolo: a folder of "
                   "per-frame .txt files (class cx cy w h [conf] [track_id], normalised).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for <recording>.objects.json (e.g. ROOT/annotations of a SAYCam corpus).")
@click.option("--video", type=click.Path(dir_okay=False), help="The one video the detections belong to.")
@click.option("--videos", type=click.Path(file_okay=False), help="A folder of videos; file names say which.")
@click.option("--images", type=click.Path(exists=True, dir_okay=False),
              help="coco-results: the COCO dataset the detector ran on (images' file_name, width, height; "
                   "categories). Without it, image_id is the frame number in --video.")
@click.option("--classes", default=None, help="Class names: a file (classes.txt, data.yaml, JSON) or 'coco' "
                                              "(COCO ids) / 'coco80' (YOLO's 0-79).")
@click.option("--first-frame", type=int, default=0, show_default=True,
              help="The number a video's first frame has in the file names (1 for Ultralytics video labels "
                   "and ffmpeg %d dumps).")
@click.option("--frame-step", type=int, default=1, show_default=True,
              help="Video frames between consecutive numbers (Ultralytics vid_stride; a dump of every Nth frame).")
@click.option("--frame-offset", type=int, default=0, show_default=True,
              help="Added to the frame index: frame = (number - first) x step + offset (Ultralytics vid_stride "
                   "S: offset S-1).")
@click.option("--rotation", type=click.Choice(["0", "180"]), default="0", show_default=True,
              help="The source's rotation for these videos: 180 turns boxes from upright-as-stored frames "
                   "into the turned frames babyvlm decodes.")
@settings_options
@click.option("--overwrite", is_flag=True, help="Replace objects files babyvlm did not write.")
@click.option("--report", type=click.Path(dir_okay=False), help="Also write the counts to this JSON file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(input_path: str, fmt: str, out: str, video: str | None, videos: str | None, images: str | None,
                   classes: str | None, first_frame: int, frame_step: int, frame_offset: int, rotation: str,
                   min_score: float,
                   min_scores: tuple[str, ...], keep: str | None, rename: tuple[str, ...], overwrite: bool,
                   report: str | None, as_json: bool) -> None:
    """Turn a detector's output into the DevCV builders' <recording>.objects.json, with score thresholds;
    kept and dropped boxes are counted by reason and input file, printed and stored in each file."""
    from babyvlm.plugins.annotation_import.importing import FrameNumbering, VideoIndex, place, write_objects

    settings = import_settings(min_score, min_scores, keep, rename, int(rotation))
    numbering = FrameNumbering(first_frame, frame_step, frame_offset)
    index = VideoIndex.of(video, videos)
    observations = IMPORTERS[fmt](Path(input_path), images, classes)
    collectors, unplaced = place(observations, index, settings, fmt, numbering)
    inputs = [str(Path(input_path))] + ([str(Path(images))] if images else [])
    summary = write_objects(collectors, out, inputs, unplaced, overwrite, report,
                            log=(lambda line: None) if as_json else click.echo)
    if as_json:
        click.echo(json.dumps(summary, indent=1))


@annotations_group.command("detect")
@click.option("--annotator", required=True, help="A registered annotator (`babyvlm plugins annotator`).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="An annotator option; repeatable.")
@click.option("--video", type=click.Path(exists=True, dir_okay=False), help="One video to annotate.")
@click.option("--source", default=None, help="A registered source whose recordings to annotate (with --root).")
@click.option("--root", type=click.Path(exists=True, file_okay=False), help="The source's corpus folder.")
@click.option("--source-option", "source_options", multiple=True, metavar="KEY=VALUE",
              help="A source option (e.g. include_untranscribed=true for SAYCam videos without transcripts).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for <recording>.objects.json.")
@click.option("--every-sec", type=float, default=1.0, show_default=True, help="Annotate one frame per this many seconds.")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Frames per annotate() call.")
@settings_options
@click.option("--overwrite", is_flag=True, help="Replace objects files babyvlm did not write.")
@click.option("--report", type=click.Path(dir_okay=False), help="Also write the counts to this JSON file.")
def detect_command(annotator: str, options: tuple[str, ...], video: str | None, source: str | None, root: str | None,
                   source_options: tuple[str, ...], out: str, every_sec: float, batch_size: int, min_score: float,
                   min_scores: tuple[str, ...], keep: str | None, rename: tuple[str, ...], overwrite: bool,
                   report: str | None) -> None:
    """Run an annotator plugin (a detector in-process) over videos' frames and write their objects files."""
    from babyvlm import registry
    from babyvlm.plugins.annotation_import.annotate import annotate_recording
    from babyvlm.plugins.annotation_import.importing import OBJECTS_SUFFIX, write_objects
    from babyvlm.plugins.annotation_import.objects import check_replaceable

    if every_sec <= 0 or batch_size < 1:
        raise ConfigError(f"--every-sec must be > 0 and --batch-size >= 1, got {every_sec} and {batch_size}")
    settings = import_settings(min_score, min_scores, keep, rename)
    built = registry.build("annotator", dict(type=annotator, **parse_key_values(options, "--option")))
    recordings = _recordings(video, source, root, source_options)
    for recording in recordings:  # before any detector time is spent
        check_replaceable(Path(out) / f"{recording.recording_id}{OBJECTS_SUFFIX}", overwrite)
    collectors = {recording.recording_id: annotate_recording(built, annotator, recording, settings, every_sec,
                                                             batch_size, log=click.echo) for recording in recordings}
    write_objects(collectors, out, [f"annotator:{annotator}"], None, overwrite, report, log=click.echo)


def _recordings(video: str | None, source: str | None, root: str | None, source_options: tuple[str, ...]) -> list[Any]:
    from babyvlm import registry
    from babyvlm.core.records import Recording

    if (video is None) == (source is None) or (source is not None and root is None):
        raise ConfigError("give one video (--video FILE) or a source and its corpus (--source NAME --root DIR)")
    if video is not None:
        return [Recording(Path(video).stem, Path(video), [], "video")]
    reader = registry.build("source", dict(type=source, root=root, **parse_key_values(source_options, "--source-option")))
    recordings = list(reader.recordings())
    if not recordings:
        raise DataError(f"{root}: source {source!r} found no recordings ({reader.report.summary()})")
    return recordings


@annotations_group.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def check_command(paths: tuple[str, ...], as_json: bool) -> None:
    """Read objects files (or every *.objects.json under a folder) as the DevCV builders do and report
    frames, boxes, categories, tracks and anything the builders would skip; exits 1 on any problem."""
    from babyvlm.core.records import SkipReport
    from babyvlm.plugins.annotation_import.importing import OBJECTS_SUFFIX
    from babyvlm.plugins.devcv.annotations import read_annotations

    files = [p for path in map(Path, paths) for p in (sorted(path.rglob(f"*{OBJECTS_SUFFIX}")) if path.is_dir() else [path])]
    if not files:
        raise ConfigError(f"no *{OBJECTS_SUFFIX} files under {', '.join(paths)}")
    findings, bad = [], 0
    for path in files:
        report = SkipReport()
        try:
            frames = read_annotations(path, report)
        except DataError as exc:
            findings.append({"path": str(path), "error": str(exc)})
            bad += 1
            continue
        boxes = [box for frame in frames for box in frame.boxes]
        categories: dict[str, int] = {}
        for box in boxes:
            categories[box.category] = categories.get(box.category, 0) + 1
        findings.append({"path": str(path), "frames": len(frames), "boxes": len(boxes),
                         "tracks": len({box.track_id for box in boxes if box.track_id is not None}),
                         "categories": dict(sorted(categories.items())), "skipped": report.to_dict()})
        bad += bool(report.total or not frames)
    if as_json:
        click.echo(json.dumps(findings, indent=1))
    else:
        for found in findings:
            click.echo(_check_line(found))
    if bad:
        click.echo(f"{bad} of {len(files)} file(s) have problems", err=True)
        raise SystemExit(1)


def _check_line(found: dict[str, Any]) -> str:
    if "error" in found:
        return f"{found['path']}: ERROR {found['error']}"
    top = ", ".join(f"{name} {count}" for name, count in sorted(found["categories"].items(), key=lambda kv: -kv[1])[:8])
    skipped = found["skipped"]["total"]
    problem = "; no annotated frame" if not found["frames"] else ""
    return (f"{found['path']}: {found['frames']} frames, {found['boxes']} boxes, {found['tracks']} tracks, "
            f"{len(found['categories'])} categories ({top or 'none'}); skipped {skipped}{problem}")
