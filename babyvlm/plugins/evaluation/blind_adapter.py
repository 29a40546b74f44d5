"""Eval adapter ``blind``: any adapter with every image replaced by one constant grey picture.

Every slot of every item gets the same bytes (``media.constant_blank``), so no statistic of the real image
— its colour, size or file size — reaches the model: what is left is the text and the answer priors, and
a score far above the blind baseline is evidence the model uses what it sees. ``blank="mean_colour"``
keeps the older blank of each image's own size and mean colour as a named option; it is not blind
(equal pictures get equal blanks, so matching options stay findable).
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
from babyvlm.core.contracts import show_items
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.records import Request, TaskItem
from babyvlm.core.specs import is_spec
from babyvlm.media import BLANK_KINDS, blank_image, constant_blank, encode_jpeg


def blank_like(data: bytes, where: str = "image", kind: str = "mean_colour") -> bytes:
    """The JPEG a blind baseline sees instead of ``data`` (``media.blank_image``, the blank a blind twin
    trains on); ``grey`` needs no decoding: it is the same for every picture."""
    if kind == "grey":
        return encode_jpeg(constant_blank(), quality=95)
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # Pillow raises several types for corrupt data
        raise DataError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return encode_jpeg(blank_image(rgb, kind), quality=95)


class BlindAdapter:
    name = "blind"

    def __init__(self, adapter: Any = "random", blank: str = "grey"):
        if blank not in BLANK_KINDS:
            raise ConfigError(f"eval adapter 'blind': blank must be one of {BLANK_KINDS}, got {blank!r}")
        self.inner = registry.build("eval_adapter", adapter) if is_spec(adapter) else adapter
        self.blank = blank
        self._blanks: dict[str, bytes] = {}

    def fingerprint(self) -> str:
        suffix = "" if self.blank == "grey" else f",blank={self.blank}"
        return f"blind({self.inner.fingerprint()}{suffix})"

    def see_items(self, task_name: str, items: Sequence[TaskItem], task: Any = None, mode: str = "generate") -> None:
        show_items(self.inner, task_name, items, task=task, mode=mode)

    def blinded(self, requests: Sequence[Request]) -> list[Request]:
        """The requests as the inner adapter receives them."""
        return [replace(r, images=[self.blank_of(image, f"{r.task} item {r.item_id}") for image in r.images])
                for r in requests]

    def blank_of(self, image: bytes, where: str) -> bytes:
        """The picture the inner adapter sees in place of ``image`` (``where`` names it in errors)."""
        key = "grey" if self.blank == "grey" else hashlib.sha1(image).hexdigest()
        if key not in self._blanks:
            self._blanks[key] = blank_like(image, where, self.blank)
        return self._blanks[key]

    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        return self.inner.generate_until(self.blinded(requests))

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        return self.inner.loglikelihood(self.blinded(requests))

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        return self.inner.generate_until_multi_round(self.blinded(requests))
