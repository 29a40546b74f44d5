"""``build_llama``: the ``llama`` language model, a randomly initialised ``transformers.LlamaForCausalLM``.

Presets and options are described in the plugin's package docstring (``babyvlm/plugins/llama/__init__.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from huggingface_hub.errors import StrictDataclassError
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.activations import ACT2FN

from babyvlm.core.errors import ConfigError

COMPONENT = "language_model 'llama'"
SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "intermediate_size", "max_position_embeddings")

_COMMON: dict[str, Any] = dict(hidden_act="silu", rms_norm_eps=1e-5, tie_word_embeddings=False,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                               # the shared BPE specials: <pad>=0, <sos>=2, <eos>=3
                               pad_token_id=0, bos_token_id=2, eos_token_id=3)

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=344, max_position_embeddings=2048),
    "tinyllama-1.1b": dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                           intermediate_size=5632, max_position_embeddings=8192),
}


def llama_config(preset: str, vocab_size: int, overrides: dict[str, Any]) -> LlamaConfig:
    """The LlamaConfig for a preset with option overrides; unknown presets or fields raise ``ConfigError``."""
    if preset not in PRESETS:
        raise ConfigError(f"{COMPONENT}: unknown preset {preset!r}. Presets: {', '.join(PRESETS)}")
    if not _positive_int(vocab_size):
        raise ConfigError(f"{COMPONENT}: vocab_size must be a positive integer, got {vocab_size!r}")
    known = {f.name for f in dataclasses.fields(LlamaConfig)} | set(LlamaConfig().to_dict())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"{COMPONENT}: unknown option(s) {', '.join(unknown)} (not LlamaConfig fields)")
    fields = {**_COMMON, **PRESETS[preset], **overrides, "vocab_size": vocab_size}
    _check_shape(fields)
    try:
        return LlamaConfig(**fields)
    except (StrictDataclassError, TypeError, ValueError) as exc:
        # transformers validates fields through huggingface_hub's strict dataclasses; their own message
        # (kept as the cause) names the field, the expected type and the value
        raise ConfigError(f"{COMPONENT}: invalid option: {exc.__cause__ or exc}") from exc


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_shape(fields: dict[str, Any]) -> None:
    """Sizes the model's shapes are computed from, checked by name before transformers divides by them."""
    for name in SIZE_FIELDS:
        value = fields.get(name)
        if value is not None and not _positive_int(value):
            raise ConfigError(f"{COMPONENT}: {name} must be a positive integer, got {value!r}")
    hidden, heads = fields["hidden_size"], fields["num_attention_heads"]
    kv_heads = fields.get("num_key_value_heads") or heads
    if hidden % heads:
        raise ConfigError(f"{COMPONENT}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    if heads % kv_heads:
        raise ConfigError(f"{COMPONENT}: num_attention_heads {heads} is not a multiple of num_key_value_heads "
                          f"{kv_heads}")
    activation = fields.get("hidden_act")
    if not isinstance(activation, str) or activation not in ACT2FN:
        raise ConfigError(f"{COMPONENT}: unknown hidden_act {activation!r}. Known: {', '.join(sorted(ACT2FN))}")


def build_llama(preset: str = "tiny", vocab_size: int = 6000, **overrides: Any) -> LlamaForCausalLM:
    """A freshly initialised LLaMA causal LM (no pretrained weights are ever downloaded)."""
    return LlamaForCausalLM(llama_config(preset, vocab_size, overrides))
