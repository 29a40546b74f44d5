"""Each picture fitted to the encoder once: the dataset wrapper of the trainer's vision-language phases.

A phase draws every item many times (the demo's phase 3: 640 draws over 300 items; a long phase 3 on 1,200
items: 32 passes). The store's dataset decodes an item's JPEGs on every draw and the model's
``prepare_batch`` pads and resizes them again each time. Here each item's pictures go through the model's
``fit_image`` once (``contracts.ImageFitting``: the pixels ``prepare_batch`` then only normalises) and the
fitted item is kept in memory up to a byte budget, so later draws cost a lookup. The batches are bit for bit
those of the plain dataset; items past the budget are fitted on every draw, and counted. Only numpy pictures
are kept (their bytes are what the budget counts); an encoder whose ``fit_image`` hands back bytes or PIL
images gets its items passed on as they come.

Each loader process keeps its own copy: the trainer splits ``image_cache_mb`` between its workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from babyvlm.core.errors import BabyVLMError


class FittedImages(torch.utils.data.Dataset):
    """``dataset``'s sample dicts with their ``images`` fitted by ``fit``, kept up to ``max_bytes``."""

    def __init__(self, dataset: Any, fit: Callable[[Any], Any], max_bytes: int):
        self.dataset, self.fit, self.max_bytes = dataset, fit, int(max_bytes)
        self.kept: dict[int, dict[str, Any]] = {}
        self.kept_bytes = 0
        self.draws = self.fitted = 0
        self.past_budget: set[int] = set()  # items fitted again on every draw: the budget was spent
        self.not_array_items: set[int] = set()  # items whose fitted pictures are not numpy arrays

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # the wrapped dataset's other members (sample_id, ...)
        if name == "dataset":  # not set yet (unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: Any) -> Any:
        self.draws += 1
        kept = self.kept.get(int(index))
        if kept is not None:
            return dict(kept, images=list(kept["images"]))  # the caller may edit its list, not the kept one
        item = self.dataset[index]
        if not (isinstance(item, dict) and isinstance(item.get("images"), list)):
            return item  # not a sample dict: the model's collate gets it as it is
        fitted = dict(item, images=[self._fit(image, index, item, n) for n, image in enumerate(item["images"])])
        self.fitted += 1
        if not all(isinstance(image, np.ndarray) for image in fitted["images"]):
            self.not_array_items.add(int(index))  # e.g. an encoder without fit_image: bytes or PIL images
            return fitted
        size = sum(image.nbytes for image in fitted["images"])
        if self.kept_bytes + size > self.max_bytes:
            self.past_budget.add(int(index))
            return fitted
        # copies: fit_image may hand back the dataset's own array (already the right size) or a view of a
        # larger one; the kept copy is read-only because every later draw shares it
        pictures = [np.array(image) for image in fitted["images"]]
        for picture in pictures:
            picture.flags.writeable = False
        self.kept[int(index)] = dict(fitted, images=pictures)
        self.kept_bytes += size
        return dict(fitted, images=list(pictures))

    def _fit(self, image: Any, index: Any, item: dict[str, Any], position: int) -> Any:
        try:
            return self.fit(image)
        except BabyVLMError as exc:  # name the sample the way prepare_batch would
            name = item.get("sample_id")
            raise type(exc)(f"item {index}{f' ({name})' if name else ''}, image {position}: {exc}") from exc

    def stats(self) -> dict[str, int]:
        """Draws served, fittings done (an item past the budget is fitted on each of its draws), items kept and
        their pictures' bytes, items past the budget, items whose fitted pictures are not numpy arrays (never
        kept)."""
        return {"draws": self.draws, "fitted": self.fitted, "kept_items": len(self.kept),
                "kept_bytes": self.kept_bytes, "over_budget": len(self.past_budget),
                "not_arrays": len(self.not_array_items)}
