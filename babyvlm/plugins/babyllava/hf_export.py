"""BabyLLaVA checkpoints: one folder that babyvlm and plain Hugging Face transformers both load.

Layout::

    DIR/config.json              LlavaConfig (default components only)
    DIR/generation_config.json   bos/eos/pad ids for HF ``generate`` (default components only)
    DIR/model.safetensors        weights, in LLaVA key layout when exportable, else babyvlm's own
    DIR/tokenizer.json ...       the tokenizer's files (when the model has a tokenizer)
    DIR/config.py                babyvlm's resolved config (rebuilds the model by component names)
    DIR/babyvlm.json             which key layout the safetensors use

Export works when the encoder offers ``llava_vision_config``/``llava_vision_state_dict``, the connector
``llava_projector_config``/``llava_projector_state_dict`` (``vit`` and ``mlp2x_gelu`` do), and the language
model is a HF causal LM. The mapping is checked against a meta-device ``LlavaForConditionalGeneration``.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import GenerationConfig, LlavaConfig, LlavaForConditionalGeneration, PreTrainedModel

from babyvlm.core.compose import build_model, load_config, write_resolved_config
from babyvlm.core.errors import ConfigError, DataError

WEIGHTS_NAME = "model.safetensors"
META_NAME = "babyvlm.json"
HF_LAYOUT, BABYVLM_LAYOUT = "hf_llava", "babyvlm"
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
    out.mkdir(parents=True, exist_ok=True)
    spec = checkpoint_model_spec(model, out)
    if model.tokenizer is not None:
        model.tokenizer.save(out)
    blocker = export_blocker(model)
    if blocker is None:
        state, layout, note = to_llava_state_dict(model), HF_LAYOUT, ""
        hf_config = llava_config(model)
        _write_text(out / "config.json", hf_config.to_json_string())
        generation = GenerationConfig(bos_token_id=model.special_id("sos_id"), eos_token_id=model.special_id("eos_id"),
                                      pad_token_id=model.special_id("pad_id"))
        _write_text(out / "generation_config.json", generation.to_json_string())
    else:
        state, layout = model.state_dict(), BABYVLM_LAYOUT
        note = (f"saved in babyvlm's format only: Hugging Face LLaVA export needs the default components "
                f"(vit + mlp2x_gelu + llama); {blocker}")
        warnings.warn(note, UserWarning, stacklevel=3)
    _write_weights(out / WEIGHTS_NAME, state, layout)
    _write_text(out / META_NAME, json.dumps({"format": "babyvlm-checkpoint/1", "layout": layout,
                                              "weights": WEIGHTS_NAME, "note": note}, indent=2))
    write_resolved_config(_full_config(config, spec), out)
    return CheckpointInfo(out, layout, note)


def checkpoint_model_spec(model: Any, out: Path) -> dict[str, Any]:
    """The model's config section, with the tokenizer pointing at the checkpoint's own copy."""
    spec = json.loads(json.dumps(model.spec))  # deep copy of plain values
    for part in ("encoder", "connector", "language_model"):
        if spec.get(part) is None:
            raise ConfigError(f"cannot save: the model's {part} was passed as an object, not a config; build the "
                              f"model from names (e.g. {part}=dict(type=...)) so the checkpoint can rebuild it")
    if model.tokenizer is not None:
        if spec.get("tokenizer") is None:
            raise ConfigError("cannot save: the tokenizer was passed as an object; give it as a config such as "
                              "tokenizer=dict(type='bpe', path=DIR) so the checkpoint can say how to load it")
        spec["tokenizer"] = {"type": spec["tokenizer"]["type"], "path": str(out.resolve())}
    return spec


def _full_config(config: Any, spec: dict[str, Any]) -> Config:
    cfg = Config({}) if config is None else Config(load_config(config).to_dict())
    cfg.model = spec
    return cfg


def load_checkpoint(directory: Path, **overrides: Any) -> Any:
    meta = read_meta(directory)
    model = build_model(checkpoint_config(directory), **overrides)
    state = _read_weights(directory / meta.get("weights", WEIGHTS_NAME))
    if meta.get("layout") == HF_LAYOUT:
        from_llava_state_dict(model, state)
    else:
        model.load_state_dict(state, strict=True)
    return model


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_NAME
    if not path.is_file():
        raise DataError(f"{directory}: not a babyvlm checkpoint (no {META_NAME})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from exc


def checkpoint_config(directory: Path) -> Config:
    """A checkpoint's config.py with the tokenizer path re-pointed at the folder (it may have moved)."""
    cfg = load_config(directory)
    if "model" not in cfg:
        raise ConfigError(f"{directory / 'config.py'}: no 'model' section")
    tokenizer = cfg.model.get("tokenizer")
    if isinstance(tokenizer, dict) and "path" in tokenizer:
        cfg.model.tokenizer = dict(tokenizer, path=str(directory))
    return cfg


# ---- file helpers ----------------------------------------------------------------------------
def _write_text(target: Path, text: str) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def _write_weights(target: Path, state: dict[str, torch.Tensor], layout: str) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tmp = target.with_name(target.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", "babyvlm_layout": layout})
    os.replace(tmp, target)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"checkpoint weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise DataError(f"cannot read checkpoint weights {path}: {type(exc).__name__}: {exc}") from exc
