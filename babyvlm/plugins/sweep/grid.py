"""Sweep points: ``--grid key=v1,v2`` specs expanded into their Cartesian product, the age sweep's
points (``data.max_age_months`` = each age) and the seed sweep's (the run's ``seed`` and every phase
trainer's ``seed``; the corpus and task seeds stay fixed, so every point sees the same world and items). Every point is checked against the config before anything
runs, so a typo in a key fails at once, naming it."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from babyvlm.core.compose import apply_overrides
from babyvlm.core.errors import ConfigError

MAX_SLUG = 80  # folder names stay well under file-system limits
AGE_KEY = "data.max_age_months"  # the data filter an age sweep sets; the source/builder must honour it


@dataclass(frozen=True)
class Point:
    """One sweep point: its settings (dotted config key -> value) and a label for tables and folders."""

    settings: dict[str, Any]
    label: str
    value: Any = None  # the swept value itself, for one-key sweeps (the age, for an age sweep)

    @property
    def slug(self) -> str:
        """A folder name made of the label (safe characters only); a label that had to be changed or
        cut gets a short hash of the settings, so two points never share a folder."""
        safe = re.sub(r"[^A-Za-z0-9._=,-]+", "_", self.label).strip("_.") or "point"
        if safe == self.label and len(safe) <= MAX_SLUG:
            return safe
        digest = hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:8]
        return f"{safe[:MAX_SLUG]}-{digest}"

    def overrides(self) -> list[str]:
        return [f"{key}={json.dumps(value)}" for key, value in self.settings.items()]


def split_values(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]``; commas inside ``[...]``, ``{...}`` or quotes do not split
    (``formats=["image"],["image","video"]`` is two values)."""
    values, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append("".join(current))
            current = []
            continue
        current.append(char)
    values.append("".join(current))
    return [v.strip() for v in values]


def parse_value(text: str) -> Any:
    """JSON when it parses (``1``, ``true``, ``["image"]``), otherwise the literal string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_grid(specs: Iterable[str]) -> dict[str, list[Any]]:
    """``["key=v1,v2", ...]`` -> ``{key: [v1, v2]}``, refusing empty keys, empty values and repeats."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"--grid: expected KEY=V1,V2,..., got {spec!r}")
        if key in axes:
            raise ConfigError(f"--grid: key {key!r} is given twice; list all its values in one --grid")
        parts = split_values(values)
        if any(not part for part in parts):
            raise ConfigError(f"--grid {spec!r}: an empty value (two commas, or a trailing comma)")
        parsed = [parse_value(part) for part in parts]
        if len({json.dumps(v, sort_keys=True) for v in parsed}) != len(parsed):
            raise ConfigError(f"--grid {spec!r}: a value is listed twice")
        axes[key] = parsed
    if not axes:
        raise ConfigError("a grid sweep needs at least one --grid KEY=V1,V2")
    return axes


def grid_points(axes: Mapping[str, Sequence[Any]]) -> list[Point]:
    """The Cartesian product of the axes, in the order given (the last key varies fastest)."""
    keys = list(axes)
    points = []
    for combination in itertools.product(*(axes[k] for k in keys)):
        settings = dict(zip(keys, combination, strict=True))
        label = ",".join(f"{k}={_short(v)}" for k, v in settings.items())
        points.append(Point(settings, label, combination[0] if len(keys) == 1 else None))
    return points


def age_points(ages: str | Sequence[Any], key: str = AGE_KEY) -> list[Point]:
    """``"12,18,24,32"`` -> one point per age (months), increasing, each setting ``key``."""
    raw = split_values(ages) if isinstance(ages, str) else list(ages)
    values = []
    for item in raw:
        value = parse_value(item) if isinstance(item, str) else item
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"--ages: expected ages in months (positive numbers), got {item!r}")
        values.append(value)
    if not values:
        raise ConfigError("--ages: give at least one age, e.g. --ages 12,18,24,32")
    if sorted(set(values)) != values:
        raise ConfigError(f"--ages: ages must increase without repeats, got {raw}")
    return [Point({key: v}, f"{v:g}", v) for v in values]


def check_points(config: Any, points: Sequence[Point], validate: Callable[[Any], None] | None = None) -> None:
    """Apply every point's overrides to a copy of ``config``: a key that does not fit fails now, and so
    does a point whose config ``validate`` refuses (an unknown key, a value of the wrong type)."""
    for point in points:
        flag = f"sweep point {point.label!r}:"
        cfg = apply_overrides(copy.deepcopy(config), point.overrides(), flag=flag)
        if validate is not None:
            try:
                validate(cfg)
            except ConfigError as exc:
                raise ConfigError(f"{flag} {exc}") from exc


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def seed_points(seeds: str | Sequence[Any], phase_count: int) -> list[Point]:
    """``"0,1,2"`` -> one point per training seed: the top-level ``seed`` (model initialisation) and each of
    the ``phase_count`` phases' ``trainer.seed`` (data order, augmentation). Data seeds are not touched."""
    raw = split_values(seeds) if isinstance(seeds, str) else list(seeds)
    values = []
    for item in raw:
        value = parse_value(item) if isinstance(item, str) else item
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"--seeds: expected whole numbers >= 0, got {item!r}")
        values.append(value)
    if len(values) < 2:
        raise ConfigError("--seeds: give at least two seeds (e.g. --seeds 0,1,2): a spread needs more than one")
    if len(set(values)) != len(values):
        raise ConfigError(f"--seeds: a seed is listed twice in {raw}")
    points = []
    for seed in values:
        settings = {"seed": seed, **{f"phases.{i}.trainer.seed": seed for i in range(phase_count)}}
        points.append(Point(settings, f"seed={seed}", seed))
    return points
