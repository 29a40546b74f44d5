"""Building a Hugging Face config from a preset plus user options, with errors that name the component.

Shared by the ``llama`` and ``vit`` components (a helper module, not a plugin): the preset lookup, the
check that every option is a field of the config class, positive-integer size checks, the activation
check, and turning transformers' strict-dataclass errors into ``ConfigError``. Each component keeps its
own shape rules (which sizes must divide which).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from huggingface_hub.errors import StrictDataclassError
from transformers import PretrainedConfig
from transformers.activations import ACT2FN

from babyvlm.core.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound=PretrainedConfig)


def preset_fields(component: str, presets: Mapping[str, dict[str, Any]], preset: str) -> dict[str, Any]:
    """A copy of the preset's fields; an unknown preset is a ``ConfigError`` listing the known ones."""
    if preset not in presets:
        raise ConfigError(f"{component}: unknown preset {preset!r}. Presets: {', '.join(presets)}")
    return dict(presets[preset])


def check_known_fields(component: str, config_class: type[PretrainedConfig], options: Iterable[str]) -> None:
    """Every option must be a field of ``config_class`` (a typo would otherwise be stored and ignored)."""
    known = {f.name for f in dataclasses.fields(config_class)} | set(config_class().to_dict())
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"{component}: unknown option(s) {', '.join(unknown)} (not {config_class.__name__} fields)")


def is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_positive_ints(component: str, fields: Mapping[str, Any], names: Iterable[str], *,
                        optional: Iterable[str] = ()) -> None:
    """The sizes shapes are computed from, checked by name before transformers divides by them. A field
    in ``optional`` may be ``None`` (the config class fills it in, e.g. KV heads = attention heads)."""
    may_be_none = set(optional)
    for name in names:
        if name not in fields or (name in may_be_none and fields[name] is None):
            continue
        if not is_positive_int(fields[name]):
            raise ConfigError(f"{component}: {name} must be a positive integer, got {fields[name]!r}")


def check_multiple(component: str, fields: Mapping[str, Any], name: str, of: str) -> None:
    """``fields[name]`` must be a multiple of ``fields[of]``."""
    if fields[name] % fields[of]:
        raise ConfigError(f"{component}: {name} {fields[name]} is not a multiple of {of} {fields[of]}")


def check_activation(component: str, activation: Any) -> None:
    if not isinstance(activation, str) or activation not in ACT2FN:
        raise ConfigError(f"{component}: unknown hidden_act {activation!r}. Known: {', '.join(sorted(ACT2FN))}")


def make_config(component: str, config_class: type[ConfigT], fields: Mapping[str, Any]) -> ConfigT:
    """``config_class(**fields)``, its validation errors raised as ``ConfigError``."""
    try:
        return config_class(**fields)
    except (StrictDataclassError, TypeError, ValueError) as exc:
        # transformers validates fields through huggingface_hub's strict dataclasses; their own message
        # (kept as the cause) names the field, the expected type and the value
        raise ConfigError(f"{component}: invalid option: {exc.__cause__ or exc}") from exc
