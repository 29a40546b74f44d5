"""Connectors ``mlp2x_gelu`` and ``linear``: project vision features into the language model's width.

``mlp2x_gelu`` is LLaVA-1.5's projector (Linear -> GELU -> Linear), the BabyLLaVA-V2 default; its
layer names match LLaVA's ``multi_modal_projector`` so checkpoints export to Hugging Face LLaVA.

Every connector declares ``output_tokens(input_tokens)``: how many language-model tokens it emits per
image for an encoder's ``num_tokens``. Both of these map each token on its own (identity); a resampler
(Q-Former, perceiver, pooling) returns fewer, and the model's ``tokens_per_image`` follows it.

The modules live in ``projectors.py``; importing this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["LinearConnector", "MLP2xGELU"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "projectors"))


@hookimpl
def register_connectors(register):
    register("mlp2x_gelu", "babyvlm.plugins.connectors.projectors:MLP2xGELU")
    register("linear", "babyvlm.plugins.connectors.projectors:LinearConnector")
