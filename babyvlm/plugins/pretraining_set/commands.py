"""``babyvlm data``: build, merge, verify, stats, export and import pretraining sample stores."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

import babyvlm
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import parse_key_values
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
from babyvlm.plugins.pretraining_set.clips import BuildSettings
from babyvlm.plugins.pretraining_set.llava_io import export_llava, import_llava
from babyvlm.plugins.pretraining_set.stores import open_store, store_type, write_build_config

DEFAULTS = BuildSettings()


def parse_shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        parsed = (int(index), int(count))
    except ValueError:
        parsed = None
    if not sep or parsed is None or not 0 <= parsed[0] < parsed[1]:
        raise ConfigError(f"--shard expects i/N with 0 <= i < N, got {text!r}")
    return parsed


def parse_window(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("..")
    try:
        return (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError:
        raise ConfigError(f"--window expects N or MIN..MAX, got {text!r}") from None


def settings_option(flag: str, value_type: type, help: str) -> Callable[[Callable], Callable]:
    """A ``--flag`` whose default, shown in ``--help``, is the ``BuildSettings`` field of the same name."""
    default = getattr(DEFAULTS, flag.removeprefix("--").replace("-", "_"))
    return click.option(flag, type=value_type, default=default, show_default=True, help=help)


@click.group("data")
def data_group() -> None:
    """Pretraining sample stores: build, merge, verify, stats, export, import."""


@data_group.command("build")
@click.option("--source", "source_name", required=True, help="Registered source (babyvlm components source).")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="Corpus root folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Store folder to create or resume.")
@click.option("--source-opt", multiple=True, help="KEY=VALUE option for the source (repeatable).")
@click.option("--scorer", default="none", show_default=True, help="Text-image similarity scorer.")
@click.option("--scorer-opt", multiple=True, help="KEY=VALUE option for the scorer, e.g. checkpoint=PATH.")
@click.option("--store", default="lmdb", show_default=True, help="Sample store type.")
@click.option("--shard", default="0/1", show_default=True, help="Build shard i of N (by recording id hash).")
@click.option("--formats", default=",".join(DEFAULTS.formats), show_default=True, help="Formats to produce.")
@settings_option("--min-clip-sec", float, "Shorter utterance clips are skipped.")
@settings_option("--max-clip-sec", float, "Longer clips (given end) are skipped; open-ended utterances are capped here.")
@settings_option("--video-frames", int, "Frames per video clip sample (at most).")
@settings_option("--image-fps", float, "Image-utterance pairs per second of clip.")
@settings_option("--image-size", int, "Longer side of stored frames in pixels (0 = as decoded).")
@settings_option("--jpeg-quality", int, "JPEG quality of stored frames.")
@click.option("--window", default=f"{DEFAULTS.window_min}..{DEFAULTS.window_max}", show_default=True,
              help="Interleaved window length N or MIN..MAX segments.")
@settings_option("--stride", int, "Interleaved window stride.")
@settings_option("--max-gap-sec", float, "Interleaved windows do not span silences longer than this.")
@click.option("--commit-every", type=int, default=256, show_default=True, help="Samples per LMDB transaction.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable video instead of counting it.")
def build_command(source_name: str, root: str, out: str, source_opt: tuple[str, ...], scorer: str,
                  scorer_opt: tuple[str, ...], store: str, shard: str, formats: str, min_clip_sec: float,
                  max_clip_sec: float, video_frames: int, image_fps: float, image_size: int, jpeg_quality: int,
                  window: str, stride: int, max_gap_sec: float, commit_every: int, strict: bool) -> None:
    """Build (or resume) the three-format pretraining set from a source into a store."""
    window_min, window_max = parse_window(window)
    settings = BuildSettings(
        formats=tuple(f.strip() for f in formats.split(",") if f.strip()), min_clip_sec=min_clip_sec,
        max_clip_sec=max_clip_sec, video_frames=video_frames, image_fps=image_fps, image_size=image_size,
        jpeg_quality=jpeg_quality, window_min=window_min, window_max=window_max, stride=stride,
        max_gap_sec=max_gap_sec)
    plan = BuildPlan(source=source_name, root=root, out=out, source_options=parse_key_values(source_opt, "--source-opt"),
                     scorer=scorer, scorer_options=parse_key_values(scorer_opt, "--scorer-opt"), settings=settings,
                     shard=parse_shard(shard), commit_every=commit_every, store=store, strict=strict)
    result = build_pretraining_set(plan, log=lambda line: click.echo(line))
    click.echo(result.summary())
    click.echo(result.report.summary())
    click.echo(f"store: {out}")


@data_group.command("merge")
@click.argument("stores", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
def merge_command(stores: tuple[str, ...], out: str) -> None:
    """Join shard builds (disjoint --shard i/N builds) into one store."""
    kind = store_type(stores[0])
    manifest = babyvlm.registry.get("store", kind).merge(list(stores), out, log=lambda line: click.echo(line))
    write_build_config(out, {"store": kind, "merged_from": [str(Path(s).resolve()) for s in stores]})
    click.echo(f"merged {len(manifest['shards'])} shards, {manifest['counts']['total']} samples into {out}")


@data_group.command("verify")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def verify_command(store: str, as_json: bool) -> None:
    """Re-read every record: checksums, decoding including JPEGs, counts against the manifest."""
    report = open_store(store).verify()
    click.echo(json.dumps(report.to_dict(), indent=1) if as_json else "\n".join(report.lines()))
    if not report.ok:
        sys.exit(1)


@data_group.command("stats")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def stats_command(store: str, as_json: bool) -> None:
    """Counts per format, child and age month; hours of video."""
    stats = open_store(store).stats()
    if as_json:
        click.echo(json.dumps(stats, indent=1))
        if not stats.get("manifest_verified", True):
            sys.exit(1)
        return
    counts = stats["counts"]
    click.echo(f"store: {stats['store']} ({stats['type']}, {stats['shards']} shard(s) of {stats['shard_count']})")
    click.echo(f"samples: {counts['total']}  " + "  ".join(f"{k}: {v}" for k, v in counts["by_format"].items()))
    click.echo("by child: " + ", ".join(f"{k}: {v}" for k, v in counts["by_child"].items()))
    click.echo("by age month: " + ", ".join(f"{k}: {v}" for k, v in counts["by_age_month"].items()))
    click.echo(f"hours of video: {stats['hours_of_video']:.3f}  in video clips: {stats['hours_in_video_clips']:.3f}")
    click.echo("skipped: " + (", ".join(f"{k}: {v}" for k, v in stats["skips"]["counts"].items()) or "0"))
    if not stats.get("manifest_verified", True):  # counts above are the shards'; the manifest disagrees
        for problem in stats["problems"]:
            click.echo(f"unverified manifest: {problem}")
        sys.exit(1)


@data_group.command("export")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["llava"]), default="llava", show_default=True)
@click.option("--image-lists", is_flag=True, help="Write 'image' as a list even for one image (default: a string, "
              "LLaVA-1.5's form).")
def export_command(store: str, out: str, fmt: str, image_lists: bool) -> None:
    """Write the store as LLaVA conversation JSON + a JPEG folder (replacing an older export there whole)."""
    export_llava(store, out, log=lambda line: click.echo(line), image_lists=image_lists)


@data_group.command("import")
@click.argument("json_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["llava"]), default="llava", show_default=True)
@click.option("--store", default="lmdb", show_default=True)
@click.option("--commit-every", type=int, default=256, show_default=True)
@click.option("--strict", is_flag=True, help="Refuse the file at the first unusable conversation instead of counting it.")
@click.option("--task", default=None, help="Import only the records whose 'task' field is TASK (one task of a "
                                          "mixed DevCV instruction file).")
def import_command(json_path: str, out: str, fmt: str, store: str, commit_every: int, strict: bool,
                   task: str | None) -> None:
    """Build a store from LLaVA JSON (image paths relative to the JSON's folder)."""
    import_llava(Path(json_path), out, store=store, commit_every=commit_every, strict=strict, task=task,
                 log=lambda line: click.echo(line))
