"""The one parser of component specs: a registered name, or ``dict(type=name, **options)``.

The registry, ``Experiment``, builders, models and the CLI all read specs through these functions, so a
spec means the same thing, and is refused with the same message, wherever it is written.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from babyvlm.core.errors import ConfigError


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a spec (a name or a mapping with a string ``type``), not a built object."""
    return isinstance(value, str) or (isinstance(value, Mapping) and isinstance(value.get("type"), str))


def parse_spec(value: Any, where: str) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` from a spec; ``where`` names the config key for the error message."""
    if isinstance(value, str):
        if not value:
            raise ConfigError(f"{where}: an empty string is not a component name")
        return value, {}
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        options = {key: plain(item) for key, item in value.items() if key != "type"}
        return value["type"], options
    raise ConfigError(f"{where}: expected a registered name or dict(type=name, ...), got {value!r}")


def spec_dict(value: Any, where: str) -> dict[str, Any]:
    """A spec normalised to a fresh ``dict(type=name, ...)`` (a deep copy: callers may change it)."""
    name, options = parse_spec(value, where)
    return {"type": name, **copy.deepcopy(options)}


def plain(value: Any) -> Any:
    """mmengine ConfigDicts (and any Mapping) -> plain dicts/lists, so components get ordinary values."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value
