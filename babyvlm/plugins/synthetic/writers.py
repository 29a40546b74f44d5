"""The synthetic corpora as ``corpus_writer`` components (``contracts.CorpusWriter``): what a run's
``corpus = dict(kind="saycam", minutes=...)`` section writes, through the same writers as ``babyvlm synth``
(same options, same defaults, so the same files)."""

from __future__ import annotations

import os
from pathlib import Path

from babyvlm.core.contracts import Log


class SaycamCorpusWriter:
    """A SAYCam-format corpus (mp4 + human CSV + ASR JSON + COCO objects), deterministic per seed."""

    def __init__(self, minutes: float = 1.0, seed: int = 0, fps: int = 5, size: int = 224,
                 video_minutes: float = 1.0, children: tuple[str, ...] | list[str] = ("S", "A", "Y")) -> None:
        from babyvlm.plugins.synthetic.saycam_writer import SaycamOptions

        self.options = SaycamOptions(minutes=minutes, seed=seed, fps=fps, size=size, children=tuple(children),
                                     video_minutes=video_minutes)

    def write(self, out: str | os.PathLike, overwrite: bool = False, log: Log | None = None) -> Path:
        from babyvlm.plugins.synthetic.saycam_writer import write_saycam

        write_saycam(out, self.options, overwrite=overwrite, progress=log)
        return Path(out)


class Ego4DCorpusWriter:
    """An Ego4D-format corpus (ego4d.json, narrations, full_scale mp4, objects): out-of-domain data."""

    def __init__(self, minutes: float = 1.0, seed: int = 0, fps: int = 5, size: int = 224,
                 video_minutes: float = 1.0) -> None:
        from babyvlm.plugins.synthetic.ego4d_writer import Ego4DOptions

        self.options = Ego4DOptions(minutes=minutes, seed=seed, fps=fps, size=size, video_minutes=video_minutes)

    def write(self, out: str | os.PathLike, overwrite: bool = False, log: Log | None = None) -> Path:
        from babyvlm.plugins.synthetic.ego4d_writer import write_ego4d

        write_ego4d(out, self.options, overwrite=overwrite, progress=log)
        return Path(out)
