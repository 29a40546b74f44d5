"""Model ``babyllava``: the BabyLLaVA-V2 architecture (ViT + MLP connector + LLaMA) composed from
registered components, with Hugging Face LLaVA-compatible checkpoints."""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins.babyllava.hf_export import CheckpointInfo
from babyvlm.plugins.babyllava.model import BabyLLaVA, linear_cross_entropy

__all__ = ["BabyLLaVA", "CheckpointInfo", "linear_cross_entropy"]


@hookimpl
def register_models(register):
    register("babyllava", BabyLLaVA)
