"""Model ``babyllava``: the BabyLLaVA-V2 architecture (ViT + MLP connector + LLaMA) composed from
registered components, with Hugging Face LLaVA-compatible checkpoints.

Modules: ``model.py`` (the composed model), ``freezing.py`` (parts, training stages and
``freeze_backbones``), ``merge.py`` (splicing image tokens in), ``generation.py`` (greedy decoding),
``hf_export.py`` (checkpoint folders, their integrity checks) and ``hf_processor.py`` (the
``AutoProcessor`` files every Hugging Face-layout checkpoint ships).
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["PARTS", "STAGES", "BabyLLaVA", "CheckpointInfo", "describe_trainable", "linear_cross_entropy"]
__getattr__ = lazy_exports(__name__, {"BabyLLaVA": "model", "CheckpointInfo": "hf_export",
                                      "linear_cross_entropy": "model", "PARTS": "freezing", "STAGES": "freezing",
                                      "describe_trainable": "freezing"})


@hookimpl
def register_models(register):
    register("babyllava", "babyvlm.plugins.babyllava.model:BabyLLaVA")
