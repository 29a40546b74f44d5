"""The ``synthetic`` and ``synthetic_ego4d`` sources: generate a corpus once, then read it with the real loader.

``SyntheticSource(root, minutes=..., seed=..., **saycam_options)`` writes a SAYCam-format corpus into
``root`` if it is not there yet (into a sibling temp folder, renamed into place when complete, so a
crash never leaves a half corpus under ``root``) and reads it through the registered ``saycam`` source,
exactly as a real SAYCam root would be read. ``synthetic_ego4d`` does the same with the ``ego4d`` source.
Everything else (``report``, ``describe()``, ``summary()``, ...) is the real source's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from babyvlm.core.compose import build
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import Recording, SkipReport
from babyvlm.plugins.synthetic.fileio import MANIFEST_NAME


def _children(value: str | Iterable[str]) -> tuple[str, ...]:
    letters = value.split(",") if isinstance(value, str) else list(value)
    return tuple(letter.strip() for letter in letters if letter.strip())


def ensure_corpus(root: Path, options: dict[str, Any], write: Callable[[Path], dict[str, Any]],
                  corpus_format: str) -> dict[str, Any]:
    """The manifest of the corpus in ``root``, generating it first (atomically) if ``root`` is absent or empty."""
    manifest_path = root / MANIFEST_NAME
    if manifest_path.is_file():
        manifest = _read_manifest(manifest_path)
        if manifest.get("format") != corpus_format or manifest.get("options") != options:
            raise ConfigError(f"{root} holds a synthetic {manifest.get('format')} corpus made with "
                              f"{manifest.get('options')}, not {options}; use another root")
        if not manifest.get("complete"):
            manifest = write(root)  # an interrupted in-place write: deterministic, so just redo it
        return manifest
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} exists and is not an empty folder or a synthetic corpus; use another root")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write(staging)
        if root.exists():
            root.rmdir()  # empty, checked above
        os.rename(staging, root)
    except OSError:
        if not (root / MANIFEST_NAME).is_file():  # not a concurrent writer that finished first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _read_manifest(manifest_path)


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest = load_json(path)
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: not a synthetic corpus manifest (expected a JSON object)")
    return manifest


class _GeneratedSource:
    """Delegates everything to the real source built over the generated root."""

    _real: Any

    def recordings(self) -> Iterator[Recording]:
        return self._real.recordings()

    def __iter__(self) -> Iterator[Recording]:
        return self.recordings()

    def validate(self) -> SkipReport:
        return self._real.validate()

    def describe(self) -> dict[str, Any]:
        return self._real.describe()

    @property
    def report(self) -> SkipReport:
        return self._real.report

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._real, name)


class SyntheticSource(_GeneratedSource):
    """A SAYCam-format synthetic corpus at ``root`` (generated on first use) read by the ``saycam`` source."""

    name = "synthetic"

    def __init__(self, root: str | os.PathLike, *, minutes: float = 1.0, seed: int = 0, fps: int = 5, size: int = 224,
                 children: str | Iterable[str] = "S,A,Y", video_minutes: float = 1.0, **saycam_options: Any) -> None:
        from babyvlm.plugins.synthetic.saycam_writer import SaycamOptions, write_saycam

        self.root = Path(root).expanduser()
        self.generator_options = SaycamOptions(minutes=float(minutes), seed=int(seed), fps=int(fps), size=int(size),
                                               children=_children(children), video_minutes=float(video_minutes))
        self.manifest = ensure_corpus(self.root, self.generator_options.to_dict(),
                                      lambda out: write_saycam(out, self.generator_options), "saycam")
        self._real = build("source", "saycam", root=self.root, **saycam_options)


class SyntheticEgo4DSource(_GeneratedSource):
    """An Ego4D-format synthetic corpus at ``root`` (generated on first use) read by the ``ego4d`` source."""

    name = "synthetic_ego4d"

    def __init__(self, root: str | os.PathLike, *, minutes: float = 1.0, seed: int = 0, fps: int = 5, size: int = 224,
                 video_minutes: float = 1.0, **ego4d_options: Any) -> None:
        from babyvlm.plugins.synthetic.ego4d_writer import Ego4DOptions, write_ego4d

        self.root = Path(root).expanduser()
        self.generator_options = Ego4DOptions(minutes=float(minutes), seed=int(seed), fps=int(fps), size=int(size),
                                              video_minutes=float(video_minutes))
        self.manifest = ensure_corpus(self.root, self.generator_options.to_dict(),
                                      lambda out: write_ego4d(out, self.generator_options), "ego4d")
        self._real = build("source", "ego4d", root=self.root, **ego4d_options)
