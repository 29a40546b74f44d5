"""Shared helpers for the data tests: tiny colour-coded mp4s and an in-process ``fake`` source.

Each video shows one flat colour per second (``PALETTE[(offset + second) % len]``), so a test can
tell from a stored JPEG which frame was routed where. Also runnable as the ``babyvlm`` CLI with the
fake source registered (the SIGKILL test runs builds in a subprocess this way).

Fixtures for a test module to import: ``fake_source`` (autouse: the ``fake`` source is registered
for every test of that module) and ``corpus`` (one ``write_corpus`` folder per module).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from babyvlm import registry
from babyvlm.core.hookspecs import hookimpl
from babyvlm.core.records import Recording, SkipReport, Utterance
from babyvlm.media import write_video
from babyvlm.plugins.pretraining_set.stores import open_store

PALETTE = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (230, 230, 30), (230, 30, 230), (30, 230, 230),
           (240, 240, 240), (20, 20, 20), (140, 70, 20), (20, 110, 140)]
FPS = 5
SIZE = 64


def colour_at(second: float, offset: int = 0) -> tuple[int, int, int]:
    return PALETTE[(offset + int(second)) % len(PALETTE)]


def write_colour_video(path: Path, seconds: int, offset: int = 0, fps: int = FPS, size: int = SIZE) -> Path:
    frames = (np.full((size, size, 3), colour_at(i / fps, offset), dtype=np.uint8) for i in range(seconds * fps))
    return write_video(path, frames, fps)


def nearest_colour(image: np.ndarray) -> int:
    mean = image.reshape(-1, 3).mean(0)
    return int(np.argmin([np.abs(mean - np.array(c)).sum() for c in PALETTE]))


def write_corpus(root: Path, recordings: int = 3, seconds: int = 6, utterance_every: float = 1.5,
                 bad_rows: int = 1) -> Path:
    """``recordings`` videos with an utterance every ``utterance_every`` s (open-ended, like human CSVs)."""
    entries = []
    for n in range(recordings):
        rid = f"S_2014010{n}_{6 + n:02d}00_01"
        write_colour_video(root / "videos" / f"{rid}.mp4", seconds, offset=n)
        starts = np.arange(0.0, seconds - 0.5, utterance_every)
        utterances = [[float(s), None, f"utterance {k} of {rid}"] for k, s in enumerate(starts)]
        entries.append({"id": rid, "video": f"videos/{rid}.mp4", "utterances": utterances,
                        "child": "SAY"[n % 3], "age_months": 6.5 + n})
    (root / "fake.json").write_text(json.dumps({"recordings": entries, "bad_rows": bad_rows}))
    return root


class FakeSource:
    """Reads ROOT/fake.json; counts its ``bad_rows`` in ``report`` like a real source would.
    Satisfies ``babyvlm.core.contracts.Source``."""

    def __init__(self, root: str, rotation: int = 0):
        self.root, self.rotation = Path(root), rotation
        self.report = SkipReport()

    def __iter__(self):
        return self.recordings()

    def validate(self) -> SkipReport:
        return self.report

    def describe(self) -> dict:
        return {"source": "fake", "root": str(self.root), "skipped": self.report.to_dict()}

    def recordings(self):
        spec = json.loads((self.root / "fake.json").read_text())
        for row in range(spec.get("bad_rows", 0)):
            self.report.skip("bad_transcript_row", f"fake.json row {row}")
        for entry in spec["recordings"]:
            utterances = [Utterance(start, end, text) for start, end, text in entry["utterances"]]
            yield Recording(entry["id"], self.root / entry["video"], utterances, "fake", child=entry["child"],
                            age_months=entry["age_months"], rotation=self.rotation)


@hookimpl
def register_sources(register):
    register("fake", FakeSource)
    register("fake_twin", FakeSource)  # the same reader under another name: a resume with another source


def register_fake_source() -> None:
    registry.reset()
    registry.register_plugin(sys.modules[__name__], "fake_source")


@pytest.fixture(autouse=True)
def fake_source():
    register_fake_source()
    yield
    registry.reset()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def store_contents(store_path: Path) -> dict[str, tuple]:
    """``{sample_id: (format, images, conversations, meta)}`` of every sample in a store."""
    return {s.sample_id: (s.format, s.images, s.conversations, s.meta) for _, s in open_store(store_path).iter_samples()}


if __name__ == "__main__":  # python tests/test_builder_support.py data build --source fake ...
    register_fake_source()
    from babyvlm.cli import cli

    cli(args=sys.argv[1:], prog_name="babyvlm")
