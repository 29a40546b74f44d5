"""Typed records that flow between stages: source -> store -> dataset -> model -> evaluator.

Records are plain dataclasses that serialise to msgpack/JSON-safe dicts (``to_dict``/``from_dict``);
no pickle is ever used for data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from babyvlm.core.constants import IMAGE_TOKEN

SampleFormat = Literal["image", "video", "interleaved"]
SAMPLE_FORMATS: tuple[str, ...] = ("image", "video", "interleaved")


@dataclass(frozen=True)
class Utterance:
    """One transcribed utterance. Times are seconds from the start of its video."""

    start: float
    end: float | None  # None: ends where the next utterance starts (human transcripts)
    text: str
    speaker: str = ""


@dataclass
class Recording:
    """One video with its utterances, as a data source yields it."""

    recording_id: str
    video_path: Path
    utterances: list[Utterance]
    source: str
    child: str = ""
    date: str | None = None
    age_months: float | None = None
    segment: int | None = None
    rotation: int = 0  # degrees, applied to decoded frames
    annotations_path: Path | None = None  # COCO-style per-frame object annotations, if any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Clip:
    """A time window of a recording paired with the text spoken in it."""

    recording_id: str
    start: float
    end: float
    text: str


@dataclass
class Sample:
    """A pretraining record in one of the three formats, in LLaVA conversation form.

    ``images`` are JPEG bytes; each ``<image>`` token in ``conversations`` consumes the next one.
    """

    sample_id: str
    format: SampleFormat
    images: list[bytes]
    conversations: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return cls(**data)

    def image_token_count(self) -> int:
        return sum(turn["value"].count(IMAGE_TOKEN) for turn in self.conversations)


@dataclass
class TaskItem:
    """One DevCV evaluation item (LLaVA JSON plus task extras)."""

    item_id: str
    task: str
    images: list[bytes]
    conversations: list[dict[str, str]]
    answer: str
    choices: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskBuildRequest:
    """One domain's evaluation task sets to build (``contracts.TaskBuilder``).

    ``source`` is a source spec (``dict(type=NAME, **options)``) read under ``root``; the item files go
    to ``out/<domain>/``. ``domain_splits`` is the domain's split scheme (an in-domain corpus: train, val
    and test by session; an out-of-domain one: test only), ``splits`` the ones to write now (default all
    of the scheme). ``tasks`` empty means every registered task built for the domain. ``instructions``
    asks for the default training-instruction file of the train split as well.
    """

    source: dict[str, Any]
    root: str
    out: str
    domain: str
    domain_splits: tuple[str, ...] = ("train", "val", "test")
    splits: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    seed: int = 0
    max_items: int | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    split_fractions: dict[str, float] = field(default_factory=dict)
    instructions: bool = False


@dataclass
class TaskBuildResult:
    """What a task builder wrote: the domain's folder, the split of every recording it assigned, and the
    instruction files (if any)."""

    folder: Path
    split_of: dict[str, str] = field(default_factory=dict)
    instructions: list[Path] = field(default_factory=list)


RequestKind = Literal["generate", "choice", "multi_round"]


@dataclass
class Request:
    """One call an evaluation adapter answers for a task item (see ``contracts.EvalAdapter``).

    ``conversations`` is the prompt in LLaVA form (human/gpt turns, no final answer); each ``<image>``
    consumes the next of ``images``. ``kind="choice"``: every string in ``continuations`` is scored as the
    answer after that shared prefix. ``kind="multi_round"``: ``rounds`` holds the human text of each
    round (its ``<image>`` tokens consume ``images`` in order, across rounds); the adapter answers each
    round with the previous rounds and its own previous answers in the conversation.
    """

    kind: RequestKind
    item_id: str
    task: str
    images: list[bytes]
    conversations: list[dict[str, str]] = field(default_factory=list)
    continuations: list[str] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    max_new_tokens: int = 16


@dataclass
class Prediction:
    """A model's answer to a ``TaskItem``, raw and parsed."""

    item_id: str
    task: str
    text: str
    parsed: str | None
    correct: bool | None = None
    scores: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # task-specific detail (e.g. per-round answers, ties)


@dataclass
class SkipReport:
    """Counts records skipped by reason, with a few examples each, so nothing is silently dropped."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 3

    def skip(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(where)

    def merge(self, other: SkipReport) -> None:
        for reason, count in other.counts.items():
            self.counts[reason] += count
            shown = self.examples.setdefault(reason, [])
            shown.extend(other.examples.get(reason, [])[: self.max_examples - len(shown)])

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SkipReport:
        """Inverse of ``to_dict`` (missing or empty -> an empty report)."""
        report = cls()
        if data:
            report.counts.update(data.get("counts", {}))
            report.examples = {reason: list(shown) for reason, shown in data.get("examples", {}).items()}
        return report

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "counts": dict(self.counts), "examples": self.examples}

    def summary(self) -> str:
        if not self.total:
            return "skipped: 0"
        parts = [f"{reason}: {count} (e.g. {self.examples[reason][0]})" for reason, count in self.counts.most_common()]
        return f"skipped: {self.total} — " + "; ".join(parts)
