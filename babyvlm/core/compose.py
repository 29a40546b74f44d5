"""Programmatic composition: build components, models and experiments from names + options.

Everything a config file can say, Python can say too::

    from babyvlm import build, build_model, load_config
    connector = build("connector", "mlp2x_gelu", in_features=192, out_features=256)
    model = build_model("tiny")                       # a bundled preset config
    model = build_model({"model": dict(type="babyllava", encoder=dict(type="vit", preset="tiny"), ...)})

Configs are mmengine Python configs; components are named by their registered strings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config

from babyvlm import registry
from babyvlm.core.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
RESOLVED_CONFIG_NAME = "config.py"


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_config(config: str | os.PathLike | Mapping[str, Any] | Config) -> Config:
    """A config from a ``.py`` file, a run/checkpoint folder holding ``config.py``, a preset name or a dict."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return Config(dict(config))
    path = Path(config)
    if path.is_dir():
        path = path / RESOLVED_CONFIG_NAME
    elif not path.exists() and (CONFIG_DIR / f"{config}.py").exists():
        path = CONFIG_DIR / f"{config}.py"
    if not path.exists():
        raise ConfigError(f"config {str(config)!r} not found: not a file, a folder with {RESOLVED_CONFIG_NAME}, "
                          f"or a preset ({', '.join(preset_names())})")
    try:
        return Config.fromfile(str(path))
    except Exception as exc:  # mmengine raises assorted errors for bad Python configs
        raise ConfigError(f"cannot read config {path}: {type(exc).__name__}: {exc}") from exc


def build(kind: str, spec: str | Mapping[str, Any], **options: Any) -> Any:
    """Build one registered component of ``kind`` from a name or ``dict(type=name, ...)``."""
    return registry.build(kind, _plain(spec), **options)


def build_model(config: str | os.PathLike | Mapping[str, Any] | Config, **overrides: Any) -> Any:
    """Build the ``model`` section of a config; ``kernels=NAME`` patches it with a kernel backend."""
    cfg = load_config(config)
    if "model" not in cfg:
        raise ConfigError("config has no 'model' section")
    model_cfg = _plain(cfg.model)
    model_cfg.update(overrides)
    kernels = model_cfg.pop("kernels", None)
    model = build("model", model_cfg)
    if kernels:
        model = build("kernels", kernels).apply(model)
    return model


def write_resolved_config(config: Config | Mapping[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write the fully resolved config next to a run's outputs (atomically)."""
    cfg = load_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / RESOLVED_CONFIG_NAME
    tmp = target.with_suffix(".py.tmp")
    tmp.write_text(cfg.pretty_text)
    os.replace(tmp, target)
    return target


def _plain(value: Any) -> Any:
    """mmengine ConfigDicts -> plain dicts/lists, so components receive ordinary Python values."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value
