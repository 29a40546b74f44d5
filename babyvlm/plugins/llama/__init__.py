"""Language model ``llama``: a randomly initialised ``transformers.LlamaForCausalLM``.

Presets: ``tiny`` (CPU-trainable) and ``tinyllama-1.1b`` (the BabyLLaVA-V2 shape: 22 layers, hidden 2048,
32 heads, 4 KV heads, FFN 5632, SiLU, RMSNorm eps 1e-5, RoPE theta 1e4, untied embeddings, 8192
positions). ``vocab_size`` defaults to 6000 (the paper's BPE vocabulary); the composed model sets it
from its tokenizer. Any ``LlamaConfig`` field given as an option overrides the preset.

The code lives in ``model.py``; importing this package (plugin discovery) does not import transformers.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["PRESETS", "build_llama", "llama_config"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "model"))


@hookimpl
def register_language_models(register):
    register("llama", "babyvlm.plugins.llama.model:build_llama")
