"""Vision encoder ``cnn``: a ResNeXt-style convolutional network (BabyVLM-V1 used a DINO ResNeXt-50)
whose final feature map becomes the image tokens.

Presets: ``tiny`` (conv3x3/2 stem + BN + ReLU, residual blocks 32->64/2 and 64->128/2, pooled to 4x4
plus a mean token: 17 tokens x 128 at 64 px, 136k parameters; trains on a CPU in minutes) and ``resnext50``
(ResNeXt-50 32x4d without its classifier, ~23M parameters; 7x7 = 49 tokens x 2048 at 224 px). Any
preset field is an option (``stages``, ``cardinality``, ``grid``, ``mean_token``, ``image_size``,
``channels_last``: the convolutions run on channels-last activations, 1.13-1.35x a training step on the
demo's CPU; off gives the same features to float rounding).
Preprocessing is BabyVLM's (pad to square with the mean colour, resize, ImageNet mean/std).

The code lives in ``encoder.py``; importing this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["CNNEncoder", "PRESETS"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "encoder"))


@hookimpl
def register_encoders(register):
    register("cnn", "babyvlm.plugins.cnn_encoder.encoder:CNNEncoder")
