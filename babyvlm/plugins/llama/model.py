"""``build_llama``: the ``llama`` language model, a randomly initialised ``transformers.LlamaForCausalLM``.

Presets and options are described in the plugin's package docstring (``babyvlm/plugins/llama/__init__.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transformers import LlamaConfig, LlamaForCausalLM

from babyvlm.core.errors import ConfigError

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
        raise ConfigError(f"language_model 'llama': unknown preset {preset!r}. Presets: {', '.join(PRESETS)}")
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ConfigError(f"language_model 'llama': vocab_size must be a positive integer, got {vocab_size!r}")
    known = {f.name for f in dataclasses.fields(LlamaConfig)} | set(LlamaConfig().to_dict())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"language_model 'llama': unknown option(s) {', '.join(unknown)} (not LlamaConfig fields)")
    return LlamaConfig(**{**_COMMON, **PRESETS[preset], **overrides, "vocab_size": vocab_size})


def build_llama(preset: str = "tiny", vocab_size: int = 6000, **overrides: Any) -> LlamaForCausalLM:
    """A freshly initialised LLaMA causal LM (no pretrained weights are ever downloaded)."""
    return LlamaForCausalLM(llama_config(preset, vocab_size, overrides))
