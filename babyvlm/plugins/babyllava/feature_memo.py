"""A frozen encoder's output per picture, computed once: the model side of a trainer's ``feature_cache_mb``.

Phases that freeze the vision encoder (the paper's 1-alignment and 2-joint; a phase 3 that freezes it) run
the same pictures through the same fixed function on every pass: a long phase on 1,200 items draws each
item's pictures 32 times. While a ``FeatureMemo`` is attached (``BabyLLaVA.remember_frozen_features``),
``encode_images`` looks each distinct picture up by its content (a 128-bit BLAKE2b digest of its pixel
tensor's bytes, shape and dtype), runs the encoder on the pictures it has not seen in one batch, and keeps
their outputs up to a byte budget. Only a *frozen* encoder is looked up: no parameter that trains and eval
mode (so batch norm uses its running statistics and dropout is off: a picture's output depends on that
picture alone). While the encoder trains, or when the pixels need a gradient, the memo is bypassed and
the bypass is counted.

The outputs are those the encoder gives the picture in a batch of its own; for the bundled encoders that is
bit for bit what it gives it inside any other batch on CPU (tests check it), but a kernel that picks its
algorithm by batch size may differ in the last bits.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def picture_key(pixels: torch.Tensor) -> bytes:
    """The content key of one picture's pixel tensor: its dtype, shape and bytes, digested."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{pixels.dtype}:{tuple(pixels.shape)}".encode())
    digest.update(pixels.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())  # any dtype, bf16 too
    return digest.digest()


def encoder_is_frozen(encoder: torch.nn.Module) -> bool:
    """No parameter of ``encoder`` trains and it is in eval mode (batch norm on running statistics)."""
    return not encoder.training and not any(p.requires_grad for p in encoder.parameters())


class FeatureMemo:
    """Encoder outputs by picture content, kept up to ``max_bytes``; counts what it served."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.kept: dict[bytes, torch.Tensor] = {}
        self.kept_bytes = 0
        self.pictures = self.reused = self.encoded = self.over_budget = self.bypassed = 0

    def encode(self, pixels: torch.Tensor, encoder: torch.nn.Module) -> torch.Tensor:
        """``encoder(pixels)``, each picture's output taken from the memo where it is kept."""
        if pixels.requires_grad or not encoder_is_frozen(encoder):
            self.bypassed += int(pixels.shape[0])
            return encoder(pixels)
        keys = [picture_key(picture) for picture in pixels]
        self.pictures += len(keys)
        new: dict[bytes, int] = {}  # first row of each picture not kept yet
        for row, key in enumerate(keys):
            if key not in self.kept and key not in new:
                new[key] = row
        fresh: dict[bytes, torch.Tensor] = {}
        if new:
            rows = torch.tensor(list(new.values()), dtype=torch.long, device=pixels.device)
            with torch.no_grad():
                outputs = encoder(pixels.index_select(0, rows))
            self.encoded += len(new)
            for key, output in zip(new, outputs, strict=True):
                fresh[key] = output
                self._keep(key, output)
        self.reused += len(keys) - len(new)
        return torch.stack([self.kept[key] if key in self.kept else fresh[key] for key in keys])

    def _keep(self, key: bytes, output: torch.Tensor) -> None:
        size = output.numel() * output.element_size()
        if self.kept_bytes + size > self.max_bytes:
            self.over_budget += 1
            return
        self.kept[key] = output.detach().clone()  # a row of the batch's output would keep the whole batch alive
        self.kept_bytes += size

    def stats(self) -> dict[str, Any]:
        """Pictures looked up, of them reused from the memo and encoded, outputs kept and their bytes, outputs
        not kept (the budget was spent), pictures passed straight to an encoder that trains."""
        return {"pictures": self.pictures, "reused": self.reused, "encoded": self.encoded,
                "kept": len(self.kept), "kept_bytes": self.kept_bytes, "over_budget": self.over_budget,
                "bypassed": self.bypassed}
