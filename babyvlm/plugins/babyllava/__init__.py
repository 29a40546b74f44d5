"""Model ``babyllava``: the BabyLLaVA-V2 architecture (ViT + MLP connector + LLaMA) composed from
registered components, with Hugging Face LLaVA-compatible checkpoints."""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["BabyLLaVA", "CheckpointInfo", "linear_cross_entropy"]
__getattr__ = lazy_exports(__name__, {"BabyLLaVA": "model", "CheckpointInfo": "hf_export",
                                      "linear_cross_entropy": "model"})


@hookimpl
def register_models(register):
    register("babyllava", "babyvlm.plugins.babyllava.model:BabyLLaVA")
