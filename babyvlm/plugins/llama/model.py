"""``build_llama``: the ``llama`` language model, a randomly initialised ``transformers.LlamaForCausalLM``.

Presets and options are described in the plugin's package docstring (``babyvlm/plugins/llama/__init__.py``).
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig, LlamaForCausalLM

from babyvlm.core.constants import EOS_ID, PAD_ID, SOS_ID
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.hf_config import (
    check_activation,
    check_known_fields,
    check_multiple,
    check_positive_ints,
    is_positive_int,
    make_config,
    preset_fields,
)

COMPONENT = "language_model 'llama'"
SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "intermediate_size", "max_position_embeddings")

_COMMON: dict[str, Any] = dict(hidden_act="silu", rms_norm_eps=1e-5, tie_word_embeddings=False,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                               # the shared specials (<pad>, <sos>, <eos>), defined once in babyvlm.core.constants
                               pad_token_id=PAD_ID, bos_token_id=SOS_ID, eos_token_id=EOS_ID)

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=344, max_position_embeddings=2048),
    "tinyllama-1.1b": dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                           intermediate_size=5632, max_position_embeddings=8192),
}


def llama_config(preset: str, vocab_size: int, overrides: dict[str, Any]) -> LlamaConfig:
    """The LlamaConfig for a preset with option overrides; unknown presets or fields raise ``ConfigError``."""
    preset_values = preset_fields(COMPONENT, PRESETS, preset)
    if not is_positive_int(vocab_size):
        raise ConfigError(f"{COMPONENT}: vocab_size must be a positive integer, got {vocab_size!r}")
    check_known_fields(COMPONENT, LlamaConfig, overrides)
    fields = {**_COMMON, **preset_values, **overrides, "vocab_size": vocab_size}
    _check_shape(fields)
    return make_config(COMPONENT, LlamaConfig, fields)


def _check_shape(fields: dict[str, Any]) -> None:
    """Sizes the model's shapes are computed from, checked by name before transformers divides by them."""
    check_positive_ints(COMPONENT, fields, SIZE_FIELDS, optional=("num_key_value_heads",))
    check_multiple(COMPONENT, fields, "hidden_size", "num_attention_heads")
    if fields.get("num_key_value_heads"):  # None means as many as the attention heads
        check_multiple(COMPONENT, fields, "num_attention_heads", "num_key_value_heads")
    check_activation(COMPONENT, fields.get("hidden_act"))


def build_llama(preset: str = "tiny", vocab_size: int = 6000, **overrides: Any) -> LlamaForCausalLM:
    """A freshly initialised LLaMA causal LM (no pretrained weights are ever downloaded)."""
    return LlamaForCausalLM(llama_config(preset, vocab_size, overrides))
