"""BabyLLaVA checkpoints: one folder that babyvlm and plain Hugging Face transformers both load.

Layout::

    DIR/config.json              LlavaConfig (default components only)
    DIR/generation_config.json   bos/eos/pad ids for HF ``generate`` (default components only)
    DIR/model.safetensors        weights, in LLaVA key layout when exportable, else babyvlm's own
    DIR/tokenizer.json ...       the tokenizer's files (when the model has a tokenizer)
    DIR/config.py                babyvlm's resolved config, for people to read (never executed on load)
    DIR/babyvlm.json             format, key layout of the safetensors, weights file and the model spec as
                                 plain JSON: loading reads only JSON, safetensors and tokenizer files

The folder is written as a whole: every file goes into a temp sibling folder, which is fsynced and then
swapped into place (``replaced_folder`` says exactly what a crash can leave).

Export works when the encoder offers ``llava_vision_config``/``llava_vision_state_dict``, the connector
``llava_projector_config``/``llava_projector_state_dict`` (``vit`` and ``mlp2x_gelu`` do), and the language
model is a HF causal LM. The mapping is checked against a meta-device ``LlavaForConditionalGeneration``.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import functools
import json
import os
import re
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import GenerationConfig, LlavaConfig, LlavaForConditionalGeneration, PreTrainedModel

from babyvlm.core.compose import CHECKPOINT_META_NAME, build_model, load_config, write_resolved_config
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import atomic_write_json, atomic_write_text, load_json, path_inside

WEIGHTS_NAME = "model.safetensors"
META_NAME = CHECKPOINT_META_NAME
CHECKPOINT_FORMAT = "babyvlm-checkpoint/2"
TOKENIZER_PATH_KEY = "tokenizer.path"  # the model spec's folder-relative path (the tokenizer files sit in the folder)
HF_LAYOUT, BABYVLM_LAYOUT = "hf_llava", "babyvlm"
AT_FDCWD, RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>
# the kernel or filesystem cannot exchange: fall back to two renames
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
VISION, PROJECTOR, TEXT = "model.vision_tower.", "model.multi_modal_projector.", "model.language_model."


@dataclass
class CheckpointInfo:
    path: Path
    layout: str  # "hf_llava" or "babyvlm"
    note: str = ""

    @property
    def hf_loadable(self) -> bool:
        return self.layout == HF_LAYOUT


# ---- export ------------------------------------------------------------------------------------
def export_blocker(model: Any) -> str | None:
    """Why the model cannot be written as a HF LLaVA checkpoint, or None when it can."""
    encoder, connector, lm = model.encoder, model.connector, model.language_model
    if not hasattr(encoder, "llava_vision_config"):
        return f"encoder {type(encoder).__name__} has no LLaVA vision-tower mapping (use 'vit')"
    if not hasattr(connector, "llava_projector_config"):
        return f"connector {type(connector).__name__} is not LLaVA's projector (use 'mlp2x_gelu')"
    if not isinstance(lm, PreTrainedModel) or lm.get_output_embeddings() is None:
        return f"language model {type(lm).__name__} is not a Hugging Face causal LM (use 'llama')"
    return None


def llava_config(model: Any) -> LlavaConfig:
    # copies: LlavaConfig and a LLaVA built from it re-set the sub-configs' attention implementation,
    # which would silently change how the live model computes
    return LlavaConfig(vision_config=copy.deepcopy(model.encoder.llava_vision_config()),
                       text_config=copy.deepcopy(model.language_model.config),
                       image_token_id=model.image_id, image_seq_length=model.tokens_per_image,
                       vision_feature_layer=-1, vision_feature_select_strategy="full",
                       tie_word_embeddings=False, **model.connector.llava_projector_config())


def to_llava_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """babyvlm parameters keyed as ``LlavaForConditionalGeneration`` expects (checked key by key)."""
    lm = model.language_model
    prefix = lm.base_model_prefix + "."
    state = {VISION + k: v for k, v in model.encoder.llava_vision_state_dict().items()}
    state.update({PROJECTOR + k: v for k, v in model.connector.llava_projector_state_dict().items()})
    for key, value in lm.state_dict().items():
        state[TEXT + key[len(prefix):] if key.startswith(prefix) else key] = value
    _check_against_llava(state, llava_config(model))
    return state


def _check_against_llava(state: dict[str, torch.Tensor], config: LlavaConfig) -> None:
    with torch.device("meta"):
        reference = LlavaForConditionalGeneration(config).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    actual = {k: tuple(v.shape) for k, v in state.items()}
    if expected != actual:
        missing = sorted(set(expected) - set(actual))[:5]
        extra = sorted(set(actual) - set(expected))[:5]
        wrong = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])[:5]
        raise ConfigError(f"LLaVA export mapping mismatch: missing {missing}, unexpected {extra}, wrong shapes {wrong}")


def from_llava_state_dict(model: Any, state: dict[str, torch.Tensor]) -> None:
    lm = model.language_model
    prefix = lm.base_model_prefix + "."
    vision = {k[len(VISION):]: v for k, v in state.items() if k.startswith(VISION)}
    projector = {k[len(PROJECTOR):]: v for k, v in state.items() if k.startswith(PROJECTOR)}
    text = {(prefix + k[len(TEXT):] if k.startswith(TEXT) else k): v for k, v in state.items()
            if not k.startswith((VISION, PROJECTOR))}
    model.encoder.load_llava_vision_state_dict(vision)
    model.connector.load_llava_projector_state_dict(projector)
    lm.load_state_dict(text, strict=True)


# ---- save / load -----------------------------------------------------------------------------
def save_checkpoint(model: Any, out: Path, config: Any = None) -> CheckpointInfo:
    """Write the whole checkpoint into a temp sibling folder, then swap it in place of ``out`` (see
    ``replaced_folder`` for what a crash can leave); no file of an older layout survives."""
    spec = checkpoint_model_spec(model)
    blocker = export_blocker(model)
    layout = HF_LAYOUT if blocker is None else BABYVLM_LAYOUT
    note = "" if blocker is None else (f"saved in babyvlm's format only: Hugging Face LLaVA export needs the "
                                       f"default components (vit + mlp2x_gelu + llama); {blocker}")
    if note:
        warnings.warn(note, UserWarning, stacklevel=3)
    with replaced_folder(out) as stage:
        if model.tokenizer is not None:
            model.tokenizer.save(stage)
        if layout == HF_LAYOUT:
            _write_hf_files(model, stage)
            state = to_llava_state_dict(model)
        else:
            state = model.state_dict()
        _write_weights(stage / WEIGHTS_NAME, state, layout)
        atomic_write_json(stage / META_NAME, {
            "format": CHECKPOINT_FORMAT, "layout": layout, "weights": WEIGHTS_NAME, "note": note,
            "model": spec, "folder_paths": [TOKENIZER_PATH_KEY] if model.tokenizer is not None else []})
        # for people only (never executed on load): the run's config, its tokenizer at the final folder
        write_resolved_config(_full_config(config, spec, out), stage)
    return CheckpointInfo(out, layout, note)


def _write_hf_files(model: Any, folder: Path) -> None:
    atomic_write_text(folder / "config.json", llava_config(model).to_json_string())
    generation = GenerationConfig(bos_token_id=model.special_id("sos_id"), eos_token_id=model.special_id("eos_id"),
                                  pad_token_id=model.special_id("pad_id"))
    atomic_write_text(folder / "generation_config.json", generation.to_json_string())


def checkpoint_model_spec(model: Any) -> dict[str, Any]:
    """The model's config section as plain JSON, its tokenizer pointing at the checkpoint folder (``"."``)."""
    try:
        spec = json.loads(json.dumps(model.spec))  # deep copy that also proves the spec is plain JSON
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot save: the model's config is not plain JSON data ({exc})") from exc
    for part in ("encoder", "connector", "language_model"):
        if spec.get(part) is None:
            raise ConfigError(f"cannot save: the model's {part} was passed as an object, not a config; build the "
                              f"model from names (e.g. {part}=dict(type=...)) so the checkpoint can rebuild it")
    if model.tokenizer is not None:
        if spec.get("tokenizer") is None:
            raise ConfigError("cannot save: the tokenizer was passed as an object; give it as a config such as "
                              "tokenizer=dict(type='bpe', path=DIR) so the checkpoint can say how to load it")
        spec["tokenizer"] = {"type": spec["tokenizer"]["type"], "path": "."}
    return spec


def _full_config(config: Any, spec: dict[str, Any], out: Path) -> Config:
    cfg = Config({}) if config is None else Config(load_config(config).to_dict())
    model = copy.deepcopy(spec)
    if isinstance(model.get("tokenizer"), dict):
        model["tokenizer"]["path"] = str(out.resolve())
    cfg.model = model
    return cfg


@contextlib.contextmanager
def replaced_folder(target: Path) -> Iterator[Path]:
    """Yield a fresh temp folder ``.NAME.<hex>.tmp`` next to ``target``; when the block succeeds its files
    are fsynced and it replaces ``target`` as a whole, when it fails it is deleted and ``target`` is
    untouched. Only an empty folder or a babyvlm checkpoint is ever replaced. A symlinked ``target`` is
    followed: the folder it points to is replaced and the link kept.

    What a crash (a kill, or a power loss on a filesystem that keeps fsynced data) can leave:

    * Linux with ``renameat2(RENAME_EXCHANGE)`` (glibc >= 2.28; ext4, xfs, btrfs, tmpfs...): the swap is
      one atomic exchange, so ``target`` always holds the complete previous checkpoint or the complete
      new one. At most a ``.NAME.<hex>.tmp`` sibling is left over (an unfinished save, or the previous
      copy not yet deleted); it is never read and is safe to delete.
    * Elsewhere: two renames (``target`` to ``.NAME.<hex>.old``, then the temp folder to ``target``). A
      crash between them leaves no ``target``, only the previous checkpoint in ``.NAME.<hex>.old``;
      ``load_checkpoint`` and the next save to ``target`` rename it back (with a warning) when it is the
      only such copy. This assumes no other process is saving to ``target`` at that moment.
    """
    target = Path(os.path.realpath(target))  # "." or "a/.." have no usable name/parent; a link keeps pointing here
    restore_interrupted_save(target)
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        stage.mkdir()
    except OSError as exc:  # name the folder the user asked for, not our temp sibling
        raise OSError(exc.errno, f"{exc.strerror} (creating its temp folder {stage.name})", str(target)) from exc
    try:
        yield stage
        _fsync_tree(stage)
        previous = _swap_into_place(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # our own temp folder; the error that got here is the news
        raise
    if previous is not None:
        _remove_previous_copy(previous, target)


def restore_interrupted_save(target: Path) -> bool:
    """Undo a save killed between its two renames (the non-Linux swap): when ``target`` is missing and
    exactly one ``.NAME.<hex>.old`` sibling holds its previous checkpoint, rename that back and warn.
    Returns whether it restored one."""
    target = Path(os.path.realpath(target))
    if target.exists() or target.is_symlink() or not target.parent.is_dir():
        return False
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{12}}\.old")
    copies = sorted(path for path in target.parent.iterdir() if pattern.fullmatch(path.name))
    if len(copies) > 1:
        warnings.warn(f"{target}: missing, and {len(copies)} previous copies ({', '.join(p.name for p in copies)}) "
                      f"were left by interrupted saves; restore the right one by renaming it to {target.name}",
                      UserWarning, stacklevel=3)
    if len(copies) != 1:
        return False
    os.replace(copies[0], target)
    warnings.warn(f"{target}: a save was interrupted before the new checkpoint was in place; restored the "
                  f"previous checkpoint from {copies[0].name}", UserWarning, stacklevel=3)
    return True


def _check_replaceable(target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        return
    if Path.cwd().is_relative_to(target):
        raise ConfigError(f"{target}: cannot replace the current working folder (or one above it) with a "
                          f"checkpoint; choose a new folder")
    if not target.is_dir():
        raise ConfigError(f"{target}: exists and is not a folder; choose a new or empty folder for the checkpoint")
    if any(target.iterdir()) and not (target / META_NAME).is_file():
        raise ConfigError(f"{target}: refusing to replace a folder that is not a babyvlm checkpoint (no {META_NAME}); "
                          f"choose a new or empty folder")


def _swap_into_place(stage: Path, target: Path) -> Path | None:
    """Put ``stage`` at ``target``; returns where the previous ``target`` now is (None when there was none)."""
    if not target.exists() and not target.is_symlink():
        os.replace(stage, target)
        _fsync_folder(target.parent)
        return None
    if exchange_paths(stage, target):
        previous = stage  # the temp name now holds the previous checkpoint
    else:
        previous = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.old"
        os.replace(target, previous)
        try:
            os.replace(stage, target)
        except BaseException:
            os.replace(previous, target)  # put the previous checkpoint back
            raise
    _fsync_folder(target.parent)
    return previous


def _remove_previous_copy(previous: Path, target: Path) -> None:
    """Delete the replaced checkpoint; the new one is already in place, so a failure only warns."""
    try:
        if previous.is_symlink():
            previous.unlink()
        else:
            shutil.rmtree(previous)
    except OSError as exc:
        warnings.warn(f"{target}: saved, but its previous copy {previous} could not be deleted ({exc}); "
                      f"delete it by hand", UserWarning, stacklevel=4)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2``, or None where there is none (not Linux, or a C library without it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap what the two existing names point to in one atomic step; False (nothing changed) where the
    C library, kernel or filesystem cannot, so the caller falls back to renames."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, so the swap never exposes unwritten data."""
    for here, _, files in os.walk(folder):
        for name in files:
            descriptor = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_folder(Path(here))


def _fsync_folder(folder: Path) -> None:
    """Make the folder's entries (new names, renames) durable; Windows cannot open a folder to do it."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_checkpoint(directory: Path, **overrides: Any) -> Any:
    """Rebuild from the JSON model spec and load the weights; nothing in the folder is executed."""
    restore_interrupted_save(directory)
    meta = read_meta(directory)
    weights = path_inside(directory, meta.get("weights", WEIGHTS_NAME), f"{directory / META_NAME} ('weights')")
    model = build_model(load_config(directory), **overrides)
    state = _read_weights(weights)
    try:
        if meta.get("layout") == HF_LAYOUT:
            from_llava_state_dict(model, state)
        else:
            model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # torch's "Error(s) in loading state_dict": missing/unexpected keys, shapes
        raise DataError(f"{weights}: the weights do not fit the model that {directory / META_NAME} describes "
                        f"(was one of them edited or copied from another checkpoint?): {_first_lines(exc)}") from exc
    return model


def _first_lines(exc: Exception, lines: int = 3, width: int = 300) -> str:
    """The first few lines of a (possibly huge) load_state_dict error, each cut to ``width`` characters."""
    kept = [line.strip() for line in str(exc).splitlines() if line.strip()][:lines]
    return " ".join(line if len(line) <= width else line[:width] + "..." for line in kept)  # torch ends each with ":"/"."


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_NAME
    if not path.is_file():
        raise DataError(f"{directory}: not a babyvlm checkpoint (no {META_NAME})")
    meta = load_json(path)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: unsupported checkpoint format {meta.get('format')!r} (expected "
                        f"{CHECKPOINT_FORMAT!r}; checkpoints from older babyvlm versions must be saved again)")
    return meta


# ---- file helpers ----------------------------------------------------------------------------
def _write_weights(target: Path, state: dict[str, torch.Tensor], layout: str) -> None:
    # written straight into the staging folder: the folder swap is what makes the checkpoint atomic
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(target), metadata={"format": "pt", "babyvlm_layout": layout})


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"checkpoint weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise DataError(f"cannot read checkpoint weights {path}: {type(exc).__name__}: {exc}") from exc
