"""Text–image similarity scorers that filter pretraining samples (component kind ``scorer``).

A scorer has ``video_threshold`` and ``image_threshold`` and two methods:

* ``score_video(frames, text) -> float | None`` — one clip's frames against its utterance;
* ``score_images(images, texts) -> list[float] | None`` — each image against its text.

``None`` means "no opinion": the builder keeps everything and picks the middle frame of each
segment for interleaved sequences. Bundled: ``none`` (keeps all) and ``open_clip``, an adapter over
the ``open_clip`` package that loads weights from a local checkpoint the user points to (it never
downloads). Its video score is the cosine between the text embedding and the mean of the frames'
normalised embeddings — a CLIP stand-in for the paper's X-CLIP; the defaults are the paper's
thresholds (0.1 video, 0.2 image), which are calibrated for those models, so tune them per checkpoint.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from babyvlm.core.errors import ConfigError
from babyvlm.core.hookspecs import hookimpl

PAPER_VIDEO_THRESHOLD = 0.1
PAPER_IMAGE_THRESHOLD = 0.2


class NoScorer:
    """Keeps every sample (``--scorer none``)."""

    video_threshold = float("-inf")
    image_threshold = float("-inf")

    def score_video(self, frames: Sequence[np.ndarray], text: str) -> float | None:
        return None

    def score_images(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[float] | None:
        return None


class OpenClipScorer:
    """CLIP similarity through ``open_clip`` with local weights (``checkpoint=PATH``)."""

    def __init__(self, checkpoint: str | os.PathLike | None = None, model: str = "ViT-B-32",
                 video_threshold: float = PAPER_VIDEO_THRESHOLD, image_threshold: float = PAPER_IMAGE_THRESHOLD,
                 device: str = "cpu", batch_size: int = 32):
        open_clip = _import_open_clip()
        if not checkpoint:
            raise ConfigError("scorer 'open_clip' needs local weights: pass checkpoint=PATH "
                              "(e.g. --scorer-opt checkpoint=/models/open_clip_ViT-B-32.bin); it never downloads")
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ConfigError(f"scorer 'open_clip': checkpoint {path} not found")
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(model, pretrained=str(path),
                                                                                   device=device)
            self.tokenizer = open_clip.get_tokenizer(model)
        except Exception as exc:  # open_clip raises assorted errors for a wrong model/checkpoint pair
            raise ConfigError(f"scorer 'open_clip': cannot load model {model!r} from {path} "
                              f"({type(exc).__name__}: {exc})") from exc
        self.model.eval()
        self.device, self.batch_size = device, max(1, int(batch_size))
        self.video_threshold, self.image_threshold = float(video_threshold), float(image_threshold)

    def _image_embeddings(self, images: Sequence[np.ndarray]):
        import torch
        from PIL import Image

        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack([self.preprocess(Image.fromarray(np.asarray(im)))
                                     for im in images[start:start + self.batch_size]]).to(self.device)
                chunks.append(torch.nn.functional.normalize(self.model.encode_image(batch).float(), dim=-1))
        return torch.cat(chunks)

    def _text_embeddings(self, texts: Sequence[str]):
        import torch

        with torch.no_grad():
            tokens = self.tokenizer(list(texts)).to(self.device)
            return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def score_images(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[float]:
        if len(images) != len(texts):
            raise ValueError(f"score_images: {len(images)} images but {len(texts)} texts")
        if not images:
            return []
        return (self._image_embeddings(images) * self._text_embeddings(texts)).sum(-1).tolist()

    def score_video(self, frames: Sequence[np.ndarray], text: str) -> float:
        import torch

        pooled = torch.nn.functional.normalize(self._image_embeddings(frames).mean(0, keepdim=True), dim=-1)
        return float((pooled * self._text_embeddings([text])).sum())


def _import_open_clip():
    try:
        return importlib.import_module("open_clip")
    except ImportError as exc:
        raise ConfigError("scorer 'open_clip' needs the 'open_clip' package, which is not installed "
                          f"(pip install open_clip_torch) — {exc}") from exc


@hookimpl
def register_scorers(register):
    register("none", NoScorer)
    register("open_clip", OpenClipScorer)
