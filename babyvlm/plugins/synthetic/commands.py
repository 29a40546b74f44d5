"""``babyvlm synth``: write synthetic corpora in the real SAYCam and Ego4D formats.

Reruns: the same OUT with the same options is checked against ``OUT/synthetic.json`` (sha256 of every
file) and left alone when it matches; an interrupted or damaged corpus is regenerated in place
(deterministically, so byte-identical); a folder holding anything else is refused unless ``--overwrite``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from babyvlm.core.errors import BabyVLMError

_OUT = click.argument("out", type=click.Path(file_okay=False, path_type=Path))
_COMMON = [
    click.option("--minutes", type=float, default=1.0, show_default=True, help="Total minutes of video."),
    click.option("--seed", type=int, default=0, show_default=True, help="Same seed and options: identical files."),
    click.option("--fps", type=int, default=5, show_default=True),
    click.option("--size", type=int, default=224, show_default=True, help="Frame width and height in pixels."),
    click.option("--video-minutes", type=float, default=1.0, show_default=True, help="Typical length of one video."),
    click.option("--overwrite", is_flag=True, help="Allow writing into a folder holding something else."),
    click.option("--quiet", is_flag=True, help="Only print the final summary."),
]


def _common(command):
    for option in reversed(_COMMON):
        command = option(command)
    return _OUT(command)


@click.group("synth")
def synth_group() -> None:
    """Write synthetic corpora in the real SAYCam / Ego4D formats (deterministic per seed).

    \b
    Rerunning into the same OUT with the same options:
      complete corpus, every file matching OUT/synthetic.json -> nothing is rewritten;
      interrupted or damaged corpus -> all files are regenerated (byte-identical).
    A folder holding anything else is refused unless --overwrite (which also removes
    the files of the corpus it replaces).
    """


@synth_group.command("saycam")
@_common
@click.option("--children", default="S,A,Y", show_default=True, help="Comma-separated children among S, A, Y.")
def synth_saycam(out: Path, minutes: float, seed: int, fps: int, size: int, video_minutes: float, overwrite: bool,
                 quiet: bool, children: str) -> None:
    """Write a SAYCam-format corpus: mp4 + human CSV + ASR JSON + COCO objects + OUT/synthetic.json."""
    from babyvlm.plugins.synthetic.saycam_writer import SaycamOptions, write_saycam

    letters = tuple(c.strip() for c in children.split(",") if c.strip())
    _run(lambda progress: write_saycam(out, SaycamOptions(minutes=minutes, seed=seed, fps=fps, size=size,
                                                          children=letters, video_minutes=video_minutes),
                                       overwrite=overwrite, progress=progress), out, quiet)


@synth_group.command("ego4d")
@_common
def synth_ego4d(out: Path, minutes: float, seed: int, fps: int, size: int, video_minutes: float, overwrite: bool,
                quiet: bool) -> None:
    """Write an Ego4D-format corpus (ego4d.json, narrations, full_scale mp4, objects): out-of-domain data."""
    from babyvlm.plugins.synthetic.ego4d_writer import Ego4DOptions, write_ego4d

    _run(lambda progress: write_ego4d(out, Ego4DOptions(minutes=minutes, seed=seed, fps=fps, size=size,
                                                        video_minutes=video_minutes),
                                      overwrite=overwrite, progress=progress), out, quiet)


def _run(write, out: Path, quiet: bool) -> None:
    started = time.perf_counter()
    try:
        manifest = write(None if quiet else click.echo)
    except BabyVLMError as exc:
        raise click.ClickException(str(exc)) from exc
    seconds = time.perf_counter() - started
    totals = manifest["totals"]
    size_mb = sum((out / rel).stat().st_size for rel in manifest["sha256"]) / 1e6
    video_minutes = totals["seconds"] / 60
    click.echo(f"{out}: {totals['videos']} videos, {video_minutes:.2f} min, {len(manifest['sha256'])} files, "
               f"{size_mb:.2f} MB ({size_mb / max(video_minutes, 1e-9):.2f} MB per video-minute) in {seconds:.1f} s "
               f"({seconds / max(video_minutes, 1e-9):.2f} s per video-minute)")
