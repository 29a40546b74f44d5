"""Vision encoder ``vit``: a from-scratch Hugging Face ViT whose final-LayerNorm output (CLS included) is
the image representation, plus the BabyVLM image preprocessing (pad to square with the image's mean
colour, bicubic resize, ImageNet mean/std).

Presets: ``tiny`` (CPU-trainable) and ``vit-l-16`` (the paper's ViT-L/16 at 224 px: 197 tokens x 1024).
Any ``transformers.ViTConfig`` field given as an option overrides the preset.

For Hugging Face export it offers the LLaVA vision-tower mapping and ``llava_image_processor_config``:
the stock ``LlavaImageProcessor`` settings closest to this preprocessing (they differ only in the padding
colour of non-square images; see that method's docstring).

The code lives in ``encoder.py``; importing this package (plugin discovery) does not import it.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PRESETS", "ImageLike", "ViTEncoder", "fit_image", "pad_to_square",
           "preprocess_image", "to_rgb_array", "vit_config"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "encoder"))


@hookimpl
def register_encoders(register):
    register("vit", "babyvlm.plugins.vit.encoder:ViTEncoder")
