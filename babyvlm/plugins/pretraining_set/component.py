"""Builder component ``pretraining_set``: the three-format pretraining set as a registered builder,
so an ``Experiment`` (or any Python code) builds and reads stores by name, like the CLI does.

Store keys are ``RECORDING/FORMAT/LOCAL`` (the store contract), so samples are split by recording
without decoding them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.pretraining_set.builder import BuildPlan, BuildResult, build_pretraining_set
from babyvlm.plugins.pretraining_set.clips import BuildSettings
from babyvlm.plugins.pretraining_set.dataset import PretrainingDataset
from babyvlm.plugins.pretraining_set.stores import open_store


def _name_and_options(spec: str | Mapping[str, Any], what: str) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("type"), str):
        options = dict(spec)
        return options.pop("type"), options
    raise ConfigError(f"builder 'pretraining_set': {what} must be a registered name or dict(type=name, ...), "
                      f"got {spec!r}")


class PretrainingSetBuilder:
    """``build(source, root, out)`` cuts video / image / interleaved samples into a store;
    ``dataset(out, ...)`` reads them back, optionally only some formats or recordings."""

    def __init__(self, store: str = "lmdb", scorer: str | Mapping[str, Any] = "none", commit_every: int = 256,
                 strict: bool = False, **settings: Any):
        try:
            self.settings = BuildSettings(**settings)
        except TypeError as exc:
            raise ConfigError(f"builder 'pretraining_set': {exc}") from exc
        if not isinstance(strict, bool):
            raise ConfigError(f"builder 'pretraining_set': strict must be true or false, got {strict!r}")
        if not isinstance(commit_every, int) or isinstance(commit_every, bool) or commit_every < 1:
            raise ConfigError(f"builder 'pretraining_set': commit_every must be a whole number >= 1, got {commit_every!r}")
        self.scorer, self.scorer_options = _name_and_options(scorer, "scorer")
        self.store, self.commit_every, self.strict = store, commit_every, strict

    def build(self, source: str | Mapping[str, Any], root: str | os.PathLike, out: str | os.PathLike, *,
              shard: tuple[int, int] = (0, 1), log: Callable[[str], None] = print) -> BuildResult:
        name, options = _name_and_options(source, "source")
        plan = BuildPlan(source=name, root=root, out=out, source_options=options, scorer=self.scorer,
                         scorer_options=self.scorer_options, settings=self.settings, shard=shard,
                         commit_every=self.commit_every, store=self.store, strict=self.strict)
        return build_pretraining_set(plan, log=log)

    def describe(self, out: str | os.PathLike) -> dict[str, Any]:
        return open_store(out).stats()

    def recording_ids(self, out: str | os.PathLike) -> set[str]:
        return {group for shard in open_store(out).manifest()["shards"] for group in shard["groups"]}

    def texts(self, out: str | os.PathLike, recordings: Iterable[str] | None = None,
              exclude_recordings: Iterable[str] | None = None) -> list[str]:
        """Each distinct utterance once, in store order, without decoding any image.

        One utterance reaches several samples (its video clip, one image per second, interleaved
        windows); counting it once per sample would weight words by clip length in a tokenizer's
        frequencies. Utterances are identified by recording, clip window and text.
        """
        keep = None if recordings is None else set(recordings)
        drop = set(exclude_recordings or ())
        seen: dict[tuple, str] = {}
        for _, sample in open_store(out).iter_samples():
            recording = sample.meta.get("recording_id")
            if (keep is not None and recording not in keep) or recording in drop:
                continue
            answers = [turn["value"] for turn in sample.conversations if turn["from"] == "gpt"]
            windows = sample.meta.get("clips") or [sample.meta.get("clip")] * len(answers)
            for window, text in zip(windows, answers, strict=False):
                seen.setdefault((recording, tuple(window or ()), text), text)
        return list(seen.values())

    def dataset(self, out: str | os.PathLike, formats: Iterable[str] | None = None,
                recordings: Iterable[str] | None = None,
                exclude_recordings: Iterable[str] | None = None) -> torch.utils.data.Dataset:
        data = PretrainingDataset(out, formats=list(formats) if formats else None)
        if recordings is None and not exclude_recordings:
            return data
        keep = None if recordings is None else {r.encode() for r in recordings}
        drop = {r.encode() for r in exclude_recordings or ()}
        groups = [bytes(key).split(b"/", 1)[0] for key in data.keys]
        chosen = [i for i, g in enumerate(groups) if (keep is None or g in keep) and g not in drop]
        return torch.utils.data.Subset(data, chosen)
