"""The k-NN probe: object-category accuracy of an encoder's features on annotated object crops of
held-out recordings (scikit-learn ``KNeighborsClassifier``, cosine distance), beside its chance level
and the same probe of a random-init encoder of the same architecture.

Bank and queries come from different halves of each held-out recording (first half of its frames
vs second), so near-identical neighbouring frames never answer themselves.

Made hard enough that a random encoder does not solve it: in the synthetic world each category has its
own colour, so tight crops in colour are named by their mean colour alone (a random CNN scored
0.80-0.99). The probe's crops are therefore greyscale (shape and pattern, not colour, must name them)
and taken in context — a square window ``context`` times the object's longer side, with the background
and neighbouring objects in it (clutter) — which brought a random encoder to ~0.4 on the demo corpus.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from babyvlm.core.compose import build
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import load_json
from babyvlm.media import iter_lazy_frames

LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 weights


@dataclass
class ObjectCrop:
    recording_id: str
    order: int  # frame index within the recording
    category: str
    image: np.ndarray  # HxWx3 uint8


def load_object_crops(source: dict[str, Any], root: str | Path, recording_ids: Sequence[str],
                      max_per_recording: int = 200, min_side: int = 6, context: float = 1.0,
                      greyscale: bool = False) -> list[ObjectCrop]:
    """Crops of the annotated objects in the given recordings (boxes >= min_side; per recording at most
    ``max_per_recording``, the categories taken in turn, each spread over the recording's frames);
    ``context`` > 1 widens each crop to a square window that many times the box's longer side, centred
    on the object, so background and neighbouring objects come with it (clutter); ``greyscale`` keeps
    only the luma, so colour cannot name the object."""
    wanted = set(recording_ids)
    crops: list[ObjectCrop] = []
    for recording in build("source", source, root=str(root)).recordings():
        if recording.recording_id not in wanted or recording.annotations_path is None:
            continue
        crops += _recording_crops(recording, max_per_recording, min_side, context, greyscale)
    return crops


def _recording_crops(recording: Any, limit: int, min_side: int, context: float,
                     greyscale: bool) -> list[ObjectCrop]:
    path = Path(recording.annotations_path)
    coco = load_json(path)
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path}: not a COCO-style object file (images, annotations, categories lists)")
    names = {c["id"]: c["name"] for c in coco["categories"]}
    frame_of = {image["id"]: int(image["frame_index"]) for image in coco["images"]}
    boxes: dict[int, list[tuple[list[float], str]]] = {}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        if min(w, h) >= min_side and ann.get("visible_fraction", 1.0) >= 0.5 and ann["image_id"] in frame_of:
            boxes.setdefault(frame_of[ann["image_id"]], []).append((ann["bbox"], names.get(ann["category_id"], "?")))
    if not boxes:
        return []
    keep = _balanced_boxes(boxes, limit)
    crops: list[ObjectCrop] = []
    for index, (_, frame) in enumerate(iter_lazy_frames(recording.video_path, rotation=recording.rotation)):
        if index not in keep:
            continue
        rgb = _grey(frame.to_rgb()) if greyscale else frame.to_rgb()
        for box, name in keep[index]:
            x0, y0, x1, y1 = crop_window(box, context, rgb.shape[1], rgb.shape[0])
            if x1 - x0 >= min_side and y1 - y0 >= min_side:
                crops.append(ObjectCrop(recording.recording_id, index, name, np.ascontiguousarray(rgb[y0:y1, x0:x1])))
    return crops


def _balanced_boxes(boxes: dict[int, list[tuple[list[float], str]]],
                    limit: int) -> dict[int, list[tuple[list[float], str]]]:
    """Up to ``limit`` boxes taken round-robin over the categories, each category's boxes evenly spread
    over the recording: a recording's focus object can fill most of its frames, and a probe whose
    queries are mostly one category measures the majority share, not the features."""
    by_category: dict[str, list[tuple[int, list[float]]]] = {}
    for index in sorted(boxes):
        for box, name in boxes[index]:
            by_category.setdefault(name, []).append((index, box))
    quota = {name: 0 for name in by_category}
    remaining = limit
    while remaining > 0:
        # the fewest-taken first: a round cut short by the limit goes to the categories with the most boxes
        # (then by name), never to one already ahead
        open_names = sorted((n for n in quota if quota[n] < len(by_category[n])),
                            key=lambda n: (quota[n], -len(by_category[n]), n))
        if not open_names:
            break
        for name in open_names[:remaining]:
            quota[name] += 1
        remaining -= min(remaining, len(open_names))
    keep: dict[int, list[tuple[list[float], str]]] = {}
    for name, found in by_category.items():
        for k in range(quota[name]):  # centred positions: a quota of one is the middle box, not the first
            index, box = found[int((k + 0.5) * len(found) / quota[name])]
            keep.setdefault(index, []).append((box, name))
    return keep


def _grey(rgb: np.ndarray) -> np.ndarray:
    luma = (rgb.astype(np.float32) @ LUMA).round().clip(0, 255).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=2)


def crop_window(box: Sequence[float], context: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel bounds (x0, y0, x1, y1) of a COCO box, or with ``context`` > 1 of a square window of side
    ``context`` x the box's longer side centred on it; clipped to the frame."""
    x, y, w, h = box
    if context > 1.0:
        side = context * max(w, h)
        x, y, w, h = x + w / 2 - side / 2, y + h / 2 - side / 2, side, side
    return max(0, int(x)), max(0, int(y)), min(width, int(x + w + 0.5)), min(height, int(y + h + 0.5))


def split_bank_queries(crops: Sequence[ObjectCrop]) -> tuple[list[ObjectCrop], list[ObjectCrop]]:
    """Per recording, the first half of its frames is the bank and the second half the queries (objects
    recur within a recording, not always across recordings); queries of a category missing from the
    bank are dropped, since no neighbour could name them."""
    bank: list[ObjectCrop] = []
    queries: list[ObjectCrop] = []
    for recording in sorted({c.recording_id for c in crops}):
        ordered = sorted((c for c in crops if c.recording_id == recording), key=lambda c: c.order)
        middle = ordered[len(ordered) // 2].order if ordered else 0
        bank += [c for c in ordered if c.order < middle]
        queries += [c for c in ordered if c.order >= middle]
    known = {c.category for c in bank}
    return bank, [c for c in queries if c.category in known]


@torch.no_grad()
def encoder_features(encoder: torch.nn.Module, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([encoder.preprocess(image) for image in images[start:start + batch_size]]).to(device)
        out.append(torch.nn.functional.normalize(encoder(pixels).float().mean(dim=1), dim=-1).cpu())
    encoder.train(was_training)
    return torch.cat(out).numpy()


def random_init_copy(encoder: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of ``encoder`` with fresh random weights (every submodule's own ``reset_parameters``, under a
    fixed seed that leaves the caller's random state alone): the probe's random-encoder reference."""
    fresh = copy.deepcopy(encoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return fresh


def knn_probe(encoder: torch.nn.Module, crops: Sequence[ObjectCrop], k: int = 10) -> dict[str, Any]:
    """Accuracy on the query crops, with the majority-class share as chance."""
    from sklearn.neighbors import KNeighborsClassifier

    bank, queries = split_bank_queries(crops)
    if len(bank) < 2 or not queries:
        raise ConfigError(f"k-NN probe: too few annotated object crops in the held-out recordings "
                          f"({len(bank)} bank, {len(queries)} queries); hold out recordings with object annotations")
    classifier = KNeighborsClassifier(n_neighbors=min(k, len(bank)), metric="cosine", weights="distance")
    classifier.fit(encoder_features(encoder, [c.image for c in bank]), [c.category for c in bank])
    labels = [c.category for c in queries]
    predicted = classifier.predict(encoder_features(encoder, [c.image for c in queries]))
    accuracy = float(np.mean([p == t for p, t in zip(predicted, labels, strict=True)]))
    majority = Counter(labels).most_common(1)[0][1] / len(labels)
    return {"accuracy": round(accuracy, 4), "chance": round(majority, 4), "bank": len(bank), "queries": len(queries),
            "categories": len(set(labels) | {c.category for c in bank})}
