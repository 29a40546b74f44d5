"""Multi-crop augmentation for DINO, computed per sample from a generator seeded by the sampler's draw
(so the same draw always gives the same crops: exact resume with any number of workers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from babyvlm.core.errors import ConfigError

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_resized_crop(image: torch.Tensor, size: int, scale: tuple[float, float],
                        generator: torch.Generator) -> torch.Tensor:
    """``image`` [3, H, W] float in [0, 1] -> a random area/aspect crop resized to ``size`` x ``size``."""
    _, height, width = image.shape
    area = height * width
    for _ in range(10):
        target = area * _uniform(generator, *scale)
        ratio = math.exp(_uniform(generator, math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=generator))
            left = int(torch.randint(0, width - w + 1, (), generator=generator))
            break
    else:  # fall back to the centred square crop
        h = w = min(height, width)
        top, left = (height - h) // 2, (width - w) // 2
    crop = image[:, top:top + h, left:left + w][None]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


def colour_augment(crop: torch.Tensor, generator: torch.Generator, solarize: float) -> torch.Tensor:
    if float(torch.rand((), generator=generator)) < 0.5:
        crop = crop.flip(-1)
    if float(torch.rand((), generator=generator)) < 0.8:  # colour jitter (0.4, 0.4, 0.2)
        crop = crop * _uniform(generator, 0.6, 1.4)
        mean = crop.mean()
        crop = (crop - mean) * _uniform(generator, 0.6, 1.4) + mean
        grey = (0.299 * crop[0] + 0.587 * crop[1] + 0.114 * crop[2])[None]
        crop = (crop - grey) * _uniform(generator, 0.8, 1.2) + grey
    if float(torch.rand((), generator=generator)) < 0.2:
        crop = (0.299 * crop[0] + 0.587 * crop[1] + 0.114 * crop[2])[None].expand(3, -1, -1)
    crop = crop.clamp(0, 1)
    if float(torch.rand((), generator=generator)) < solarize:
        crop = torch.where(crop >= 0.5, 1 - crop, crop)
    return (crop - MEAN) / STD


class MultiCropDataset(torch.utils.data.Dataset):
    """Frames of a store dataset (the first image of each sample) as DINO multi-crops."""

    keyed_by_draw = True  # the trainer's sampler yields (index, draw)

    def __init__(self, base: Any, global_size: int, local_size: int, local_crops: int, seed: int = 0,
                 global_scale: tuple[float, float] = (0.4, 1.0), local_scale: tuple[float, float] = (0.05, 0.4)):
        self.base, self.global_size, self.local_size = base, global_size, local_size
        self.local_crops, self.seed = local_crops, seed
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: Any) -> dict[str, torch.Tensor]:
        index, draw = key if isinstance(key, tuple) else (key, key)
        sample = self.base[index]
        images = sample["images"] if isinstance(sample, dict) else sample
        if not images:
            raise ConfigError(f"0-vision: sample {sample.get('sample_id', index)} has no image")
        frame = images[0]
        image = torch.from_numpy(np.array(frame, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(draw))
        globals_ = [colour_augment(random_resized_crop(image, self.global_size, self.global_scale, generator),
                                   generator, solarize=0.2 if n == 1 else 0.0) for n in range(2)]
        locals_ = [colour_augment(random_resized_crop(image, self.local_size, self.local_scale, generator),
                                  generator, solarize=0.0) for _ in range(self.local_crops)]
        out = {"global_crops": torch.stack(globals_)}
        if locals_:
            out["local_crops"] = torch.stack(locals_)
        return out


def collate_crops(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}
