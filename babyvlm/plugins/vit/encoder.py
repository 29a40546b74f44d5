"""The ``vit`` encoder (``ViTEncoder``, a from-scratch Hugging Face ViT) and BabyVLM's image preprocessing.

Presets and options are described in the plugin's package docstring (``babyvlm/plugins/vit/__init__.py``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import ViTConfig, ViTModel

from babyvlm.core.errors import ModelInputError
from babyvlm.media import decode_jpeg
from babyvlm.plugins.hf_config import (
    check_activation,
    check_known_fields,
    check_multiple,
    check_positive_ints,
    make_config,
    preset_fields,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# DINO-style ViTs use LayerNorm eps 1e-6 (HF's ViT default is 1e-12); a setting like every other field.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(image_size=64, patch_size=16, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=512, layer_norm_eps=1e-6),
    "vit-l-16": dict(image_size=224, patch_size=16, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, layer_norm_eps=1e-6),
}

ImageLike = np.ndarray | Image.Image | bytes | bytearray
COMPONENT = "encoder 'vit'"
# square images only: image_size and patch_size are single integers here
SIZE_FIELDS = ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "num_channels")


def vit_config(preset: str, overrides: dict[str, Any]) -> ViTConfig:
    """The ViTConfig for a preset with option overrides; unknown presets, fields or bad values raise
    ``ConfigError`` naming the field."""
    preset_values = preset_fields(COMPONENT, PRESETS, preset)
    check_known_fields(COMPONENT, ViTConfig, overrides)
    fields = {**preset_values, **overrides}
    _check_shape(fields)
    # LLaVA reads hidden_states[-1]; tying it to last_hidden_state makes that the final-LayerNorm output.
    fields["tie_last_hidden_states"] = True
    return make_config(COMPONENT, ViTConfig, fields)


def _check_shape(fields: dict[str, Any]) -> None:
    """Sizes the encoder's shapes are computed from, checked by name before transformers uses them."""
    check_positive_ints(COMPONENT, fields, SIZE_FIELDS)
    check_multiple(COMPONENT, fields, "image_size", "patch_size")
    # HF's ViT would silently use heads * (hidden // heads) < hidden attention channels
    check_multiple(COMPONENT, fields, "hidden_size", "num_attention_heads")
    check_activation(COMPONENT, fields.get("hidden_act", "gelu"))


class ViTEncoder(torch.nn.Module):
    """Images ``[B, 3, H, W]`` -> final-LayerNorm features ``[B, num_tokens, hidden_size]`` (CLS first)."""

    def __init__(self, preset: str = "tiny", **overrides: Any):
        super().__init__()
        self.preset = preset
        self.config = vit_config(preset, overrides)
        self.model = ViTModel(self.config, add_pooling_layer=False)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def num_tokens(self) -> int:
        return (self.image_size // int(self.config.patch_size)) ** 2 + 1

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        weight = self.model.embeddings.patch_embeddings.projection.weight
        return self.model(pixel_values=pixel_values.to(weight.dtype)).last_hidden_state

    def fit_image(self, image: ImageLike) -> np.ndarray:
        """One image -> the uint8 ``[S, S, 3]`` pixels ``preprocess`` normalises (``ImageFitting``)."""
        return fit_image(image, self.image_size)

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """One image (uint8 HxWx3 array, PIL image or JPEG bytes) -> normalized float tensor ``[3, S, S]``."""
        return preprocess_image(image, self.image_size)

    # ---- Hugging Face LLaVA export protocol (used by babyllava's hf_export) --------------------
    def llava_vision_config(self) -> ViTConfig:
        return copy.deepcopy(self.config)

    def llava_vision_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights keyed as LLaVA's ``vision_tower`` (a ViTModel, which also owns an unused pooler)."""
        state = dict(self.model.state_dict())
        width = self.hidden_size
        # LLaVA builds ViTModel with its pooler but never reads it; zeros keep loading deterministic and
        # free of "newly initialized weights" warnings.
        state["pooler.dense.weight"] = torch.zeros(width, width, dtype=state["layernorm.weight"].dtype)
        state["pooler.dense.bias"] = torch.zeros(width, dtype=state["layernorm.weight"].dtype)
        return state

    def load_llava_vision_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
        self.model.load_state_dict(state, strict=True)

    def llava_image_processor_config(self) -> dict[str, Any]:
        """Settings of the stock ``LlavaImageProcessor`` (PIL backend) closest to ``preprocess``.

        It pads to a centred square, resizes to ``image_size`` with PIL's bicubic filter, rescales by
        1/255 and normalises with ImageNet mean/std, like ``preprocess_image``. One difference: it pads
        with a fixed colour, ImageNet's mean as bytes ``(123, 116, 103)`` (``int(mean * 255)``), where
        babyvlm pads with each image's own mean colour; no stock processor does that. Square images are
        never padded, so for them the two agree (to float rounding, ~1e-6); for other shapes only the
        padded band and the pixels the bicubic filter mixes into it differ. With torchvision installed,
        ``AutoProcessor`` prefers the torchvision backend, whose bicubic resize differs slightly from
        PIL's; pass ``backend="pil"`` to get this one.
        """
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

        size = {"height": self.image_size, "width": self.image_size}
        processor = LlavaImageProcessorPil(
            do_convert_rgb=True, do_pad=True, do_resize=True, size=size, resample=Image.Resampling.BICUBIC,
            do_center_crop=False, crop_size=size, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
            image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
        return processor.to_dict()


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """Accepts uint8 HxWx3 arrays, PIL images and JPEG bytes; anything else is a ``ModelInputError``."""
    if isinstance(image, (bytes, bytearray)):
        return decode_jpeg(bytes(image))
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ModelInputError(f"image array must be uint8 HxWx3, got dtype {image.dtype} shape {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ModelInputError(f"image array is empty (shape {image.shape})")
        return image
    raise ModelInputError(f"unsupported image type {type(image).__name__}: expected uint8 HxWx3 array, "
                          f"PIL image or JPEG bytes")


def pad_to_square(rgb: np.ndarray) -> np.ndarray:
    """Centre the image on a square canvas filled with the image's own mean colour."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    if height == width:
        return rgb
    mean_colour = np.round(rgb.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = mean_colour
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top:top + height, left:left + width] = rgb
    return canvas


def fit_image(image: ImageLike, image_size: int) -> np.ndarray:
    """The uint8 ``image_size`` x ``image_size`` x 3 pixels ``preprocess_image`` normalises: padded to a square
    with the image's mean colour, resized bicubically. ``preprocess_image`` of the result is bit for bit
    ``preprocess_image`` of ``image`` (a square of the right size is neither padded nor resized), so a loader
    can fit each picture once and keep it."""
    square = pad_to_square(to_rgb_array(image))
    if square.shape[0] == image_size:
        return square
    resized = Image.fromarray(square).resize((image_size, image_size), resample=Image.Resampling.BICUBIC)
    return np.asarray(resized)


def preprocess_image(image: ImageLike, image_size: int) -> torch.Tensor:
    pixels = torch.from_numpy(np.asarray(fit_image(image, image_size), dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels - mean) / std
