"""Programmatic composition: build components, models and experiments from names + options.

Everything a config file can say, Python can say too::

    from babyvlm import build, build_model, load_config
    connector = build("connector", "mlp2x_gelu", in_features=192, out_features=256)
    model = build_model("tiny")                       # a bundled preset config
    model = build_model({"model": dict(type="babyllava", encoder=dict(type="vit", preset="tiny"), ...)})

Configs are mmengine Python configs; components are named by their registered strings. A checkpoint
folder is read through the JSON model spec in its ``babyvlm.json``, never by running its ``config.py``:
a downloaded checkpoint is untrusted data, and a ``.py`` config executes. Its ``config.py`` is written
for people to read; load it explicitly by its file path only if you trust it.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config

from babyvlm import registry
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import atomic_write_text, load_json, parse_key_values, path_inside
from babyvlm.core.kinds import KINDS
from babyvlm.core.specs import parse_spec
from babyvlm.core.specs import plain as _plain
from babyvlm.core.validate import did_you_mean, refuse_unknown

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# option names that hold paths: in a checkpoint's spec they must be folder-relative and listed
PATH_OPTION = re.compile(r"^(path|root|corpus_files|.+_(path|paths|dir|file|files))$")
RESOLVED_CONFIG_NAME = "config.py"
CHECKPOINT_META_NAME = "babyvlm.json"


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_config(config: str | os.PathLike | Mapping[str, Any] | Config) -> Config:
    """A config from a ``.py`` file, a checkpoint folder (its JSON model spec), a preset name or a dict."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return Config(dict(config))
    path = Path(config)
    if path.is_dir():
        return load_checkpoint_config(path)
    if not path.exists() and (CONFIG_DIR / f"{config}.py").exists():
        path = CONFIG_DIR / f"{config}.py"
    if not path.exists():
        raise ConfigError(f"config {str(config)!r} not found: not a file, a checkpoint folder (with "
                          f"{CHECKPOINT_META_NAME}), or a preset ({', '.join(preset_names())})")
    try:
        return Config.fromfile(str(path))
    except Exception as exc:  # mmengine raises assorted errors for bad Python configs
        raise ConfigError(f"cannot read config {path}: {type(exc).__name__}: {exc}") from exc


def load_checkpoint_config(directory: str | os.PathLike) -> Config:
    """``Config(model=...)`` from the ``model`` object in ``DIR/babyvlm.json``; nothing is executed.

    ``folder_paths`` in that file lists dotted keys of the model spec whose values are paths relative
    to the folder (e.g. ``tokenizer.path`` = ``"."``): they are resolved against the folder, wherever it
    has moved, and must stay inside it.
    """
    directory = Path(directory)
    meta_path = directory / CHECKPOINT_META_NAME
    if not meta_path.is_file():
        raise ConfigError(f"{directory}: not a checkpoint folder (no {CHECKPOINT_META_NAME}). To use a Python "
                          f"config, pass the .py file itself (it is executed, so only one you trust)")
    meta = load_json(meta_path)
    model = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("type"), str):
        raise ConfigError(f"{meta_path}: no 'model' object with a 'type' (checkpoints from before babyvlm "
                          f"stored the model spec as JSON must be saved again)")
    check_spec_paths(meta, meta_path)
    for dotted in meta.get("folder_paths", []):
        _resolve_folder_path(model, dotted, directory, meta_path)
    return Config({"model": model})


def check_spec_paths(meta: dict[str, Any], meta_path: Path) -> None:
    """Every path-like option of the model spec must be listed in ``folder_paths`` (and so be resolved
    against the folder and kept inside it); an unlisted one would be read relative to the working folder."""
    listed = meta.get("folder_paths", [])
    if not isinstance(listed, list) or not all(isinstance(key, str) for key in listed):
        raise DataError(f"{meta_path}: 'folder_paths' must be a list of dotted keys of 'model', got {listed!r}")
    for dotted, value in _spec_items(meta.get("model"), ""):
        if PATH_OPTION.match(dotted.rsplit(".", 1)[-1]) and value is not None and dotted not in listed:
            raise DataError(f"{meta_path}: model.{dotted} = {value!r} is a path not listed in 'folder_paths'; a "
                            f"checkpoint's paths are folder-relative and listed there, never resolved against "
                            f"the working folder")


def _spec_items(node: Any, prefix: str):
    """``(dotted key, value)`` for every leaf of a JSON spec (lists are leaves)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _spec_items(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    elif prefix:
        yield prefix, node


def _resolve_folder_path(model: dict[str, Any], dotted: Any, directory: Path, meta_path: Path) -> None:
    """Replace ``model[dotted]`` (a folder-relative path) by the absolute path inside ``directory``."""
    parts = dotted.split(".") if isinstance(dotted, str) and dotted else []
    node: Any = model
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not parts or not isinstance(node, dict) or parts[-1] not in node:
        raise ConfigError(f"{meta_path}: folder_paths entry {dotted!r} does not name a key of 'model'")
    where = f"{meta_path} (model.{dotted})"
    node[parts[-1]] = str(path_inside(directory, node[parts[-1]], where))


def apply_overrides(cfg: Config, pairs: Iterable[str], flag: str = "override") -> Config:
    """Apply ``KEY=VALUE`` overrides (dotted keys, list indices, JSON values) to ``cfg`` in place.

    A key whose parent does not exist is refused rather than silently added (``language_model.x``
    where ``model.language_model.x`` was meant), and so is replacing a section with a scalar.
    """
    for key, value in parse_key_values(pairs, flag).items():
        *parents, leaf = key.split(".")
        node: Any = cfg
        for depth, part in enumerate(parents):
            node = _child(node, part, ".".join(parents[: depth + 1]), flag, key)
        current = _child(node, leaf, key, flag, key, missing_ok=True)
        if isinstance(current, Mapping) and not isinstance(value, Mapping):
            raise ConfigError(f"{flag} {key}={value!r}: {key!r} is a section; set one of its fields "
                              f"({', '.join(current)}) instead")
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return cfg


def _child(node: Any, part: str, path: str, flag: str, key: str, missing_ok: bool = False) -> Any:
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise ConfigError(f"{flag} {key}: {path!r} is not an index of a list of {len(node)}")
        return node[int(part)]
    if isinstance(node, (Mapping, Config)):
        if part in node:
            return node[part]
        if missing_ok:
            return None
        raise ConfigError(f"{flag} {key}: the config has no {path!r}{did_you_mean(part, node.keys())} (there: "
                          f"{', '.join(node.keys())})")
    raise ConfigError(f"{flag} {key}: {path.rsplit('.', 1)[0]!r} is a value, not a section")


def check_spec_options(kind: str, spec: Any, where: str) -> None:
    """Refuse a spec whose options its component does not take, with a did-you-mean, before anything is
    built (a typo in a trainer option must fail before the stages before training run). Options whose
    key is a component kind (``encoder=dict(type=...)``) are specs too and are checked the same way.
    Components taking ``**options`` they consume themselves accept anything."""
    name, options = parse_spec(spec, where)
    accepted = accepted_options(registry.get(kind, name))
    if accepted is not None:
        refuse_unknown(options, accepted, f"{where} ({kind} {name!r})", "option")
    for key, value in options.items():
        if key in KINDS and isinstance(value, Mapping) and isinstance(value.get("type"), str):
            check_spec_options(key, value, f"{where}.{key}")


def accepted_options(component: Any) -> list[str] | None:
    """The keyword options ``component(...)`` takes; ``**options`` passed on to a base class add the base's,
    and ``**options`` kept by the component itself mean any (None)."""
    names: list[str] = []
    package = getattr(component, "__module__", "").partition(".")[0]
    classes = [c for c in inspect.getmro(component) if "__init__" in vars(c)] if inspect.isclass(component) else []
    for callable_ in classes or [component]:
        if getattr(callable_, "__module__", "").partition(".")[0] != package:
            return None  # **options reach another package's class (torch's Module): not ours to know
        try:
            parameters = inspect.signature(callable_).parameters.values()
        except (TypeError, ValueError):
            return None
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in ("self", *names)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


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
    return atomic_write_text(Path(out_dir) / RESOLVED_CONFIG_NAME, load_config(config).pretty_text)


