"""Benchmark: 1-FPS frame extraction speed, in x realtime per CPU core, on generated SAYCam-format corpora.

Measured per corpus (CPU time of this single-threaded process, so other load on the machine
inflates wall time but barely the figure; wall time is shown too):

* decode (all RGB)  one sequential pass with ``babyvlm.media.iter_frames``, which converts every frame
                    to RGB; nothing else;
* decode (lazy)     the builder's pass (``babyvlm.media.iter_lazy_frames``): frames stay in YUV, nothing converted;
* extract 1 FPS     the builder's routing: one frame per second of video (last frame shown at k+0.5 s),
                    scaled to 224 px (longer side) and JPEG-encoded;
* full build        ``babyvlm data build`` work for all three formats (scorer none) into an LMDB store.

Goal: extract 1 FPS >= 75x realtime per core. Usage: ``python benchmarks/extraction.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from babyvlm import registry  # noqa: E402
from babyvlm.cli import cli  # noqa: E402
from babyvlm.media import iter_frames, iter_lazy_frames, probe_video  # noqa: E402
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set  # noqa: E402
from babyvlm.plugins.pretraining_set.clips import PlannedClip  # noqa: E402
from babyvlm.plugins.pretraining_set.frames import route_frames, storage_pixels  # noqa: E402

GOAL = 75.0


def make_corpus(out: Path, minutes: float, fps: int, size: int) -> Path:
    if "synth" not in registry.names("command"):
        sys.exit("this benchmark needs the synthetic corpus generator (babyvlm synth)")
    cli.main(["synth", "saycam", str(out), "--minutes", str(minutes), "--fps", str(fps), "--size", str(size),
              "--seed", "0", "--quiet"], standalone_mode=False)
    return out


def timed(work, *args) -> tuple[float, float]:
    """(cpu seconds, wall seconds) of ``work(*args)``."""
    cpu, wall = time.process_time(), time.perf_counter()
    work(*args)
    return time.process_time() - cpu, time.perf_counter() - wall


def decode_all(videos: list[Path]) -> None:
    for video in videos:
        for _ in iter_frames(video):
            pass


def decode_lazily(videos: list[Path]) -> None:
    for video in videos:
        for _ in iter_lazy_frames(video):
            pass


def extract_1fps(videos: list[Path], size: int = 224) -> int:
    extracted = 0
    for video in videos:
        info = probe_video(video)
        seconds = int(info.duration)
        clips = [PlannedClip(k, k, k + 1, "", "", (), (k + 0.5,), k + 0.5) for k in range(seconds)]
        for _, frames in route_frames(iter_lazy_frames(video), clips,
                                      prepare=lambda f: storage_pixels(f, size),
                                      frame_period=1 / info.fps):
            if frames is not None:
                extracted += sum(len(frame.jpeg()) > 0 for frame in frames.values())
    return extracted


def full_build(root: Path, out: Path) -> None:
    build_pretraining_set(BuildPlan(source="saycam", root=root, out=out), log=lambda _: None)


def run(corpora: list[tuple[str, float, int, int]], workdir: Path) -> list[dict]:
    rows = []
    for label, minutes, fps, size in corpora:
        root = make_corpus(workdir / label, minutes, fps, size)
        videos = sorted(root.rglob("*.mp4"))
        seconds = sum(probe_video(v).duration for v in videos)
        stages = (("decode (all RGB)", decode_all, (videos,)), ("decode (lazy)", decode_lazily, (videos,)),
                  ("extract 1 FPS", extract_1fps, (videos,)),
                  ("full build", full_build, (root, workdir / f"{label}-store")))
        for stage, work, work_args in stages:
            cpu, wall = timed(work, *work_args)
            rows.append({"corpus": label, "stage": stage, "video_s": seconds, "cpu_s": cpu, "wall_s": wall,
                         "x_rt_core": seconds / cpu, "x_rt_wall": seconds / wall})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Smaller corpora (about a minute in all).")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the corpora here (default: a temp folder).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = 0.5 if args.quick else 1.0
    corpora = [("synthetic-224px-5fps", 8 * scale, 5, 224), ("saycam-like-480px-30fps", 1 * scale, 30, 480)]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="babyvlm-extraction-"))
    try:
        rows = run(corpora, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'corpus':26} {'stage':17} {'video s':>8} {'cpu s':>7} {'wall s':>7} {'x rt/core':>10} {'x rt wall':>10}")
    for r in rows:
        print(f"{r['corpus']:26} {r['stage']:17} {r['video_s']:8.1f} {r['cpu_s']:7.2f} {r['wall_s']:7.2f} "
              f"{r['x_rt_core']:10.1f} {r['x_rt_wall']:10.1f}")
    for r in rows:
        if r["stage"] == "extract 1 FPS":
            verdict = "meets" if r["x_rt_core"] >= GOAL else "below"
            print(f"{r['corpus']}: 1-FPS extraction {r['x_rt_core']:.0f}x realtime per core ({verdict} the {GOAL:.0f}x goal)")
    print(f"load average while running: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
