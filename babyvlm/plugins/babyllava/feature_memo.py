"""A frozen encoder's output per picture, computed once: the model side of a trainer's ``feature_cache_mb``.

Phases that freeze the vision encoder (the paper's 1-alignment and 2-joint; a phase 3 that freezes it) run
the same pictures through the same fixed function on every pass: a long phase on 1,200 items draws each
item's pictures 32 times. While a ``FeatureMemo`` is attached (``BabyLLaVA.remember_frozen_features``),
``encode_images`` looks each distinct picture up by its content (a 128-bit BLAKE2b digest of its pixel
tensor's bytes, shape and dtype), runs the encoder on the pictures it has not seen in one batch, and keeps
their outputs up to a byte budget, on the device they were computed on (GPU memory on a GPU). Only a *frozen*
encoder is looked up: no parameter that trains, and no module in training mode (batch norm on its running
statistics, dropout off: a picture's output depends on that picture alone), and no forward hooks (a cached
picture would skip them). Otherwise, or when the pixels need a gradient, the memo is passed by and the
pictures are counted as ``bypassed``.

Exactness: a kept output is what the encoder gave the picture in the batch that first held it. In fp32 the
bundled CNN and ViT give a picture the same output in any batch on CPU (tests check it), so training is
unchanged bit for bit. Under bf16 autocast the ViT's output depends on the batch size in the last bits, so
there (and with kernels that pick their algorithm by batch size, as on GPUs) a run with the memo differs from
one without it, and a resumed run (whose memo starts empty) from an uninterrupted one, in the last bits.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def picture_keys(pixels: torch.Tensor) -> list[bytes]:
    """The content key of each picture of a ``[N, ...]`` batch: its dtype, shape and bytes, digested. The
    batch is copied to the CPU once (one device sync), not once per picture."""
    rows = pixels.detach().contiguous().cpu()
    head = f"{rows.dtype}:{tuple(rows.shape[1:])}".encode()
    keys = []
    for row in rows.view(rows.shape[0], -1).view(torch.uint8):  # any dtype, bf16 too, as raw bytes
        digest = hashlib.blake2b(head, digest_size=16)
        digest.update(row.numpy().tobytes())
        keys.append(digest.digest())
    return keys


def encoder_is_frozen(encoder: torch.nn.Module) -> bool:
    """No parameter of ``encoder`` trains, no module of it is in training mode (batch norm on its running
    statistics, dropout off) and none has forward hooks (a picture served from the memo would skip them)."""
    modules = list(encoder.modules())
    return (not any(m.training for m in modules) and not any(p.requires_grad for p in encoder.parameters())
            and not any(m._forward_hooks or m._forward_pre_hooks for m in modules))


class FeatureMemo:
    """Encoder outputs by picture content, kept up to ``max_bytes``; counts what it served."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.kept: dict[bytes, torch.Tensor] = {}
        self.kept_bytes = self.kept_count = 0
        self.pictures = self.reused = self.encoded = self.over_budget = self.bypassed = 0

    def encode(self, pixels: torch.Tensor, encoder: torch.nn.Module) -> torch.Tensor:
        """``encoder(pixels)``, each picture's output taken from the memo where it is kept."""
        if pixels.requires_grad or not encoder_is_frozen(encoder):
            self.bypassed += int(pixels.shape[0])
            return encoder(pixels)
        keys = picture_keys(pixels)
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
        self.kept_count += 1

    def release(self) -> None:
        """Free the kept outputs (the counts stay)."""
        self.kept.clear()

    def stats(self) -> dict[str, Any]:
        """Pictures looked up, of them reused from the memo and encoded, outputs kept and their bytes, outputs
        not kept (the budget was spent), pictures passed straight to an encoder that trains."""
        return {"pictures": self.pictures, "reused": self.reused, "encoded": self.encoded,
                "kept": self.kept_count, "kept_bytes": self.kept_bytes, "over_budget": self.over_budget,
                "bypassed": self.bypassed}
