"""BabyLLaVA checkpoints: one folder that babyvlm and plain Hugging Face transformers both load.

Layout::

    DIR/config.json              LlavaConfig (default components only)
    DIR/generation_config.json   bos/eos/pad ids for HF ``generate`` (default components only)
    DIR/model.safetensors        weights, in LLaVA key layout when exportable, else babyvlm's own
    DIR/tokenizer.json ...       the tokenizer's files (when the model has a tokenizer)
    DIR/processor_config.json    the LlavaProcessor ``AutoProcessor`` loads, the baby_v1 chat template and
    DIR/chat_template.jinja      the model's own (``additional_chat_templates/``); HF layout with a tokenizer
                                 only, see ``hf_processor.py``
    DIR/config.py                babyvlm's resolved config, for people to read (never executed on load)
    DIR/babyvlm.json             format, key layout of the safetensors, weights file and its SHA-256, and the
                                 model spec as plain JSON: loading reads only JSON, safetensors and tokenizer files

Integrity: loading recomputes the weights file's SHA-256 and refuses a file that differs from the one
saved (``DataError`` naming the file, the expected and the actual digest). Every path in ``babyvlm.json``
stays inside the folder: ``weights`` and the ``folder_paths`` entries are folder-relative (resolved
against the folder, never the working directory; absolute paths and ``..`` are refused), and a path-like
option of the model spec (``path``, ``root``, ``*_path(s)``, ``*_dir``, ``*_file(s)``, ``corpus_files``) not
listed in ``folder_paths`` is refused, since it would otherwise resolve against the working directory.

The folder is written as a whole: every file goes into a temp sibling folder, which is fsynced and then
swapped into place (``replaced_folder`` says exactly what a crash can leave).

Export works when the encoder offers ``llava_vision_config``/``llava_vision_state_dict``, the connector
``llava_projector_config``/``llava_projector_state_dict`` (``vit`` and ``mlp2x_gelu`` do), and the language
model is a HF causal LM. The mapping is checked against a meta-device ``LlavaForConditionalGeneration``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import GenerationConfig, LlavaConfig, LlavaForConditionalGeneration, PreTrainedModel

from babyvlm.core.compose import (
    CHECKPOINT_META_NAME,
    build_model,
    check_spec_paths,
    load_config,
    write_resolved_config,
)
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import (
    atomic_write_json,
    atomic_write_text,
    load_json,
    path_inside,
    replaced_folder,
    restore_interrupted_save,
    sort_safetensors_metadata,
)
from babyvlm.plugins.babyllava.hf_processor import processor_blocker, write_processor_files

WEIGHTS_NAME = "model.safetensors"
META_NAME = CHECKPOINT_META_NAME
CHECKPOINT_FORMAT = "babyvlm-checkpoint/3"  # /3: the weights' SHA-256 in babyvlm.json
TOKENIZER_PATH_KEY = "tokenizer.path"  # the model spec's folder-relative path (the tokenizer files sit in the folder)
HF_LAYOUT, BABYVLM_LAYOUT = "hf_llava", "babyvlm"
VISION, PROJECTOR, TEXT = "model.vision_tower.", "model.multi_modal_projector.", "model.language_model."
DIGEST_KEY = "weights_sha256"


@dataclass
class CheckpointInfo:
    path: Path
    layout: str  # "hf_llava" or "babyvlm"
    note: str = ""
    processor: bool = False  # whether AutoProcessor files were written

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
    if getattr(model, "image_slots", 0):
        return "picture-slot tags (image_slots) have no place in a LLaVA checkpoint"
    if getattr(model, "image_token_norm", None):
        return "image-token standardisation (image_token_norm) has no place in a LLaVA checkpoint"
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
    processor = layout == HF_LAYOUT and processor_blocker(model) is None
    with replaced_folder(out, marker=META_NAME, what="babyvlm checkpoint") as stage:
        if model.tokenizer is not None:
            model.tokenizer.save(stage)
        if layout == HF_LAYOUT:
            _write_hf_files(model, stage)
            state = to_llava_state_dict(model)
        else:
            state = model.state_dict()
        if processor:
            write_processor_files(model, stage)
        _write_weights(stage / WEIGHTS_NAME, state, layout)
        atomic_write_json(stage / META_NAME, {
            "format": CHECKPOINT_FORMAT, "layout": layout, "weights": WEIGHTS_NAME,
            DIGEST_KEY: file_sha256(stage / WEIGHTS_NAME), "note": note, "model": spec,
            "folder_paths": [TOKENIZER_PATH_KEY] if model.tokenizer is not None else []})
        # for people only (never executed on load): the run's config, its tokenizer at the final folder
        write_resolved_config(_full_config(config, spec, out), stage)
    return CheckpointInfo(out, layout, note, processor)


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


def load_checkpoint(directory: Path, **overrides: Any) -> Any:
    """Rebuild from the JSON model spec and load the weights; nothing in the folder is executed."""
    restore_interrupted_save(directory)
    meta = read_meta(directory)
    weights = path_inside(directory, meta.get("weights", WEIGHTS_NAME), f"{directory / META_NAME} ('weights')")
    check_weights_digest(weights, meta[DIGEST_KEY], directory / META_NAME)
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
    digest = meta.get(DIGEST_KEY)
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DataError(f"{path}: {DIGEST_KEY!r} must be the weights file's SHA-256 (64 hex digits), got {digest!r}")
    check_spec_paths(meta, path)
    return meta


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks (checkpoint weights can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weights_digest(weights: Path, expected: str, meta_path: Path) -> None:
    """Refuse a weights file whose bytes are not the ones saved (edited, truncated, damaged, swapped)."""
    if not weights.is_file():
        raise DataError(f"checkpoint weights not found: {weights}")
    actual = file_sha256(weights)
    if actual != expected:
        raise DataError(f"{weights}: SHA-256 {actual} differs from {expected} recorded in {meta_path}; the weights "
                        f"file was changed or damaged after it was saved (save or download the checkpoint again)")


# ---- file helpers ----------------------------------------------------------------------------
def _write_weights(target: Path, state: dict[str, torch.Tensor], layout: str) -> None:
    # written straight into the staging folder: the folder swap is what makes the checkpoint atomic
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(target), metadata={"format": "pt", "babyvlm_layout": layout})
    sort_safetensors_metadata(target)  # the same weights give the same bytes, and so the same recorded SHA-256


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"checkpoint weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise DataError(f"cannot read checkpoint weights {path}: {type(exc).__name__}: {exc}") from exc
