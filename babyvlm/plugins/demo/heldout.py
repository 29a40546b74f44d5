"""Held-out loss, with each sample's own images and with images swapped between samples (does the
model use what it sees?). An evaluation plugin function: the core ``Experiment`` knows nothing of it."""

from __future__ import annotations

import random
from typing import Any


def heldout_loss(model: Any, samples: list[dict[str, Any]], shuffle_seed: int | None = None,
                 batch_size: int = 16) -> float:
    """Mean loss over ``samples``; with ``shuffle_seed`` each sample gets another sample's images
    (repeated or cut to its own image count)."""
    import torch

    if shuffle_seed is not None:
        donors = list(samples)
        random.Random(shuffle_seed).shuffle(donors)
        samples = [dict(s, images=_fit_images(d["images"], len(s["images"]))) for s, d in zip(samples, donors, strict=True)]
    model.eval()
    device = model.device if hasattr(model, "device") else torch.device("cpu")
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            batch = {k: v.to(device) for k, v in model.prepare_batch(chunk).items()}
            total += float(model(**batch)["loss"]) * len(chunk)
    return round(total / len(samples), 4)


def evaluate_heldout(experiment: Any, seed: int = 0) -> dict[str, Any]:
    """Held-out loss (true vs swapped images) over all held-out samples of an experiment."""
    heldout = list(experiment.dataset(split="heldout"))
    if not heldout:
        return {}
    model = experiment.model
    return {"heldout_samples": len(heldout), "heldout_loss": heldout_loss(model, heldout),
            "heldout_loss_shuffled_images": heldout_loss(model, heldout, shuffle_seed=seed)}


def _fit_images(images: list[Any], count: int) -> list[Any]:
    repeated = list(images) * (count // max(1, len(images)) + 1)
    return repeated[:count]
