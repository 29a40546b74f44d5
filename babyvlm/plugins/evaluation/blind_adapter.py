"""Eval adapter ``blind``: any adapter with every image replaced by a blank image of its mean colour.

The blank keeps each image's size and average colour, so what is left is the text and the answer
priors; a score far above its blind twin is evidence the model uses what it sees.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from babyvlm import registry
from babyvlm.core.errors import DataError
from babyvlm.core.records import Request
from babyvlm.core.specs import is_spec
from babyvlm.media import blank_image, encode_jpeg


def blank_like(data: bytes, where: str = "image") -> bytes:
    """A JPEG of the same size filled with the image's mean colour (``media.blank_image``, the same blank
    a blind twin trains on)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # Pillow raises several types for corrupt data
        raise DataError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return encode_jpeg(blank_image(rgb), quality=95)


class BlindAdapter:
    name = "blind"

    def __init__(self, adapter: Any = "random"):
        self.inner = registry.build("eval_adapter", adapter) if is_spec(adapter) else adapter
        self._blanks: dict[str, bytes] = {}

    def fingerprint(self) -> str:
        return f"blind({self.inner.fingerprint()})"

    def see_items(self, *args: Any, **kwargs: Any) -> None:
        see = getattr(self.inner, "see_items", None)  # optional: only item-aware adapters have it
        if see is not None:
            see(*args, **kwargs)

    def _blinded(self, requests: Sequence[Request]) -> list[Request]:
        return [replace(r, images=[self._blank(image, f"{r.task} item {r.item_id}") for image in r.images])
                for r in requests]

    def _blank(self, image: bytes, where: str) -> bytes:
        key = hashlib.sha1(image).hexdigest()
        if key not in self._blanks:
            self._blanks[key] = blank_like(image, where)
        return self._blanks[key]

    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        return self.inner.generate_until(self._blinded(requests))

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        return self.inner.loglikelihood(self._blinded(requests))

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        return self.inner.generate_until_multi_round(self._blinded(requests))
