"""Builder component ``pretraining_set``: the three-format pretraining set as a registered builder,
so an ``Experiment`` (or any Python code) builds and reads stores by name, like the CLI does.

Samples are chosen by recording through the store's public API (``recording_ids``, ``list_keys(groups=...)``),
without decoding them and without knowing the store's key or file layout.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from babyvlm import media
from babyvlm.core.errors import ConfigError
from babyvlm.core.specs import parse_spec
from babyvlm.plugins.pretraining_set.builder import BuildPlan, BuildResult, build_pretraining_set
from babyvlm.plugins.pretraining_set.clips import BuildSettings
from babyvlm.plugins.pretraining_set.dataset import PretrainingDataset
from babyvlm.plugins.pretraining_set.stores import open_store


class PretrainingSetBuilder:
    """``build(source, root, out)`` cuts video / image / interleaved samples into a store;
    ``dataset(out, ...)`` reads them back, optionally only some formats or recordings."""

    def __init__(self, store: str = "lmdb", scorer: str | Mapping[str, Any] = "none", commit_every: int = 256,
                 strict: bool = False, verify_on_read: bool = False, **settings: Any):
        try:
            self.settings = BuildSettings(**settings)
        except TypeError as exc:
            raise ConfigError(f"builder 'pretraining_set': {exc}") from exc
        if not isinstance(strict, bool):
            raise ConfigError(f"builder 'pretraining_set': strict must be true or false, got {strict!r}")
        if not isinstance(commit_every, int) or isinstance(commit_every, bool) or commit_every < 1:
            raise ConfigError(f"builder 'pretraining_set': commit_every must be a whole number >= 1, got {commit_every!r}")
        self.scorer, self.scorer_options = parse_spec(scorer, "builder 'pretraining_set': scorer")
        if not isinstance(verify_on_read, bool):
            raise ConfigError(f"builder 'pretraining_set': verify_on_read must be true or false, got {verify_on_read!r}")
        self.store, self.commit_every, self.strict = store, commit_every, strict
        self.verify_on_read = verify_on_read

    def build(self, source: str | Mapping[str, Any], root: str | os.PathLike, out: str | os.PathLike, *,
              shard: tuple[int, int] = (0, 1), max_age_months: float | None = None,
              log: Callable[[str], None] = print) -> BuildResult:
        """Cut ``source`` under ``root`` into the store ``out``; ``max_age_months`` keeps only recordings of
        children up to that age (recordings without an age are counted as skipped)."""
        name, options = parse_spec(source, "builder 'pretraining_set': source")
        if max_age_months is not None and (isinstance(max_age_months, bool) or not isinstance(max_age_months, (int, float))
                                           or max_age_months <= 0):
            raise ConfigError(f"max_age_months must be a number of months > 0, got {max_age_months!r}")
        plan = BuildPlan(source=name, root=root, out=out, source_options=options, scorer=self.scorer,
                         scorer_options=self.scorer_options, settings=self.settings, shard=shard,
                         commit_every=self.commit_every, store=self.store, strict=self.strict,
                         max_age_months=max_age_months)
        return build_pretraining_set(plan, log=log)

    def import_instructions(self, json_path: str | os.PathLike, out: str | os.PathLike, task: str | None = None,
                            log: Callable[[str], None] = print) -> dict[str, Any]:
        """A store of the builder's kind from a LLaVA-JSON instruction file (``babyvlm data import``; with
        ``task`` only that task's items); returns its manifest (``contracts.InstructionImporter``)."""
        from babyvlm.plugins.pretraining_set.llava_io import import_llava

        return import_llava(json_path, out, store=self.store, commit_every=self.commit_every, strict=self.strict,
                            task=task, log=log)

    def describe(self, out: str | os.PathLike) -> dict[str, Any]:
        return open_store(out).stats()

    def recording_ids(self, out: str | os.PathLike) -> set[str]:
        return open_store(out).recording_ids()

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
                recordings: Iterable[str] | None = None, exclude_recordings: Iterable[str] | None = None,
                blank_images: bool | str = False) -> torch.utils.data.Dataset:
        """The store's samples (optionally some formats or recordings); ``blank_images`` replaces every
        image by one constant grey picture (``True`` or ``"grey"``: how a blind twin is trained — same
        recipe, nothing to see) or, as a named option, by its own mean colour (``"mean_colour"``)."""
        transform = None
        if blank_images:
            kind = "grey" if blank_images is True else str(blank_images)
            if kind not in media.BLANK_KINDS:
                raise ConfigError(f"blank_images must be True, 'grey' or 'mean_colour', got {blank_images!r}")
            transform = functools.partial(media.blank_images, kind=kind)
        return PretrainingDataset(out, formats=list(formats) if formats else None, recordings=recordings,
                                  exclude_recordings=exclude_recordings, verify_on_read=self.verify_on_read,
                                  transform=transform)
