"""``CNNEncoder`` (encoder ``cnn``): ResNeXt-style blocks; images ``[B, 3, S, S]`` -> tokens
``[B, num_tokens, hidden_size]``. Presets and options: the package docstring."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from babyvlm.core.errors import ConfigError

COMPONENT = "encoder 'cnn'"
# stages: (output channels, blocks, stride); bottleneck width = out * width_ratio (grouped 3x3 inside)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(image_size=64, stem_channels=32, stem_kernel=3, stem_pool=False,
                 stages=[(64, 1, 2), (128, 1, 2)], cardinality=2, width_ratio=1.0, grid=4, mean_token=True,
                 channels_last=True),
    "resnext50": dict(image_size=224, stem_channels=64, stem_kernel=7, stem_pool=True,
                      stages=[(256, 3, 1), (512, 4, 2), (1024, 6, 2), (2048, 3, 2)], cardinality=32,
                      width_ratio=0.5, grid=None, mean_token=False, channels_last=True),
}


class Bottleneck(nn.Module):
    """1x1 reduce -> grouped 3x3 (stride) -> 1x1 expand, plus a projected shortcut when shapes change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, cardinality: int, width_ratio: float):
        super().__init__()
        width = max(cardinality, int(out_channels * width_ratio) // cardinality * cardinality)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class CNNEncoder(nn.Module):
    def __init__(self, preset: str = "tiny", **overrides: Any):
        super().__init__()
        if preset not in PRESETS:
            raise ConfigError(f"{COMPONENT}: unknown preset {preset!r} (presets: {', '.join(PRESETS)})")
        unknown = sorted(set(overrides) - set(PRESETS[preset]))
        if unknown:
            raise ConfigError(f"{COMPONENT}: unknown option {unknown[0]!r} (options: {', '.join(PRESETS[preset])})")
        self.preset = preset
        self.settings = {**PRESETS[preset], **overrides}
        self._check(self.settings)
        s = self.settings
        stem = [nn.Conv2d(3, s["stem_channels"], s["stem_kernel"], stride=2, padding=s["stem_kernel"] // 2, bias=False),
                nn.BatchNorm2d(s["stem_channels"]), nn.ReLU(inplace=True)]
        if s["stem_pool"]:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        blocks, channels = [], s["stem_channels"]
        for out_channels, count, stride in s["stages"]:
            for number in range(count):
                blocks.append(Bottleneck(channels, out_channels, stride if number == 0 else 1, s["cardinality"],
                                         s["width_ratio"]))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self._hidden = channels
        self._side = self._feature_side()

    @staticmethod
    def _check(s: dict[str, Any]) -> None:
        for key in ("image_size", "stem_channels", "stem_kernel", "cardinality"):
            if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 1:
                raise ConfigError(f"{COMPONENT}: {key} must be a whole number >= 1, got {s[key]!r}")
        if not s["stages"] or any(len(stage) != 3 or min(stage) < 1 for stage in s["stages"]):
            raise ConfigError(f"{COMPONENT}: stages must be a non-empty list of (channels, blocks, stride), "
                              f"got {s['stages']!r}")
        if not isinstance(s["channels_last"], bool):
            raise ConfigError(f"{COMPONENT}: channels_last must be true or false, got {s['channels_last']!r}")
        if s["grid"] is not None and (not isinstance(s["grid"], int) or s["grid"] < 1):
            raise ConfigError(f"{COMPONENT}: grid must be None (the whole feature map) or a whole number >= 1")

    def _feature_side(self) -> int:
        side = (self.settings["image_size"] + 1) // 2
        if self.settings["stem_pool"]:
            side = (side + 1) // 2
        for _, _, stride in self.settings["stages"]:
            side = (side + stride - 1) // stride
        grid = self.settings["grid"]
        if grid is not None and grid > side:
            raise ConfigError(f"{COMPONENT}: grid={grid} is larger than the {side}x{side} feature map at "
                              f"image_size={self.settings['image_size']}")
        return grid or side

    @property
    def hidden_size(self) -> int:
        return self._hidden

    @property
    def image_size(self) -> int:
        return int(self.settings["image_size"])

    @property
    def num_tokens(self) -> int:
        return self._side ** 2 + int(bool(self.settings["mean_token"]))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        weight = self.stem[0].weight
        # oneDNN's convolutions run faster on NHWC activations: 1.13-1.35x a training step on the demo's CPU
        # (benchmarks/encoder_layout.py; not measured on a GPU). Only the activations change layout; the
        # weights stay contiguous, so checkpoints are what they were.
        layout = torch.channels_last if self.settings["channels_last"] else torch.contiguous_format
        features = self.blocks(self.stem(pixel_values.to(weight.dtype, memory_format=layout)))
        if self.settings["grid"] is not None:
            features = nn.functional.adaptive_avg_pool2d(features, self._side)
        tokens = features.flatten(2).transpose(1, 2)  # [B, side*side, C]
        if self.settings["mean_token"]:
            tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        return tokens

    def fit_image(self, image: Any) -> Any:
        """One image -> the uint8 ``[S, S, 3]`` pixels ``preprocess`` normalises (``ImageFitting``)."""
        from babyvlm.plugins.vit.encoder import fit_image

        return fit_image(image, self.image_size)

    def preprocess(self, image: Any) -> torch.Tensor:
        """One image (uint8 HxWx3 array, PIL image or JPEG bytes) -> normalized float tensor ``[3, S, S]``."""
        from babyvlm.plugins.vit.encoder import preprocess_image

        return preprocess_image(image, self.image_size)
