"""Which evaluation items belong together: items built from one recording, or sharing a picture, are not
independent, so intervals and tests resample or count them as groups.

``cluster_items`` groups items by the recording they were built from (``extras["recording"]``), else by
shared images (items joined when any picture is byte-identical), else — when either leaves fewer than
``MIN_CLUSTERS`` groups — by item, and says which it used. ``design_effect`` is Kish's: how much larger the
variance of a mean over clustered items is than over as many independent ones (an effective sample size is
n / design effect).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from babyvlm.core.records import TaskItem

MIN_CLUSTERS = 5


def cluster_items(items: Sequence[TaskItem]) -> tuple[list[int], str]:
    """A cluster label per item and what the clusters are (``"recording"``, ``"shared images"`` or
    ``"item"``); see the module docstring."""
    recordings = [item.extras.get("recording") for item in items]
    if items and all(isinstance(r, str) and r for r in recordings):
        labels = _labels(recordings)
        if len(set(labels)) >= MIN_CLUSTERS:
            return labels, "recording"
    labels = _shared_image_groups(items)
    if len(set(labels)) >= MIN_CLUSTERS:
        return labels, "shared images"
    return list(range(len(items))), "item"


def _labels(keys: Sequence[Any]) -> list[int]:
    index: dict[Any, int] = {}
    return [index.setdefault(key, len(index)) for key in keys]


def _shared_image_groups(items: Sequence[TaskItem]) -> list[int]:
    """Connected groups of items that share a byte-identical picture (union-find over image digests)."""
    parent = list(range(len(items)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    owner: dict[bytes, int] = {}
    for number, item in enumerate(items):
        for image in item.images:
            digest = hashlib.sha1(image).digest()
            if digest in owner:
                parent[root(number)] = root(owner[digest])
            else:
                owner[digest] = number
    return _labels([root(k) for k in range(len(items))])



def design_effect(values: Sequence[float], clusters: Sequence[int]) -> float:
    """The variance of the mean of ``values`` with clusters resampled, over its variance with items
    independent (at least 1; 1 for fewer than two clusters or no spread)."""
    count = len(values)
    groups: dict[int, list[float]] = {}
    for value, label in zip(values, clusters, strict=True):
        groups.setdefault(label, []).append(float(value))
    if count < 2 or len(groups) < 2:
        return 1.0
    mean = sum(values) / count
    item_variance = sum((v - mean) ** 2 for v in values) / (count - 1) / count
    if item_variance <= 0:
        return 1.0
    residuals = [sum(group) - len(group) * mean for group in groups.values()]
    cluster_variance = len(groups) / (len(groups) - 1) * sum(r * r for r in residuals) / count ** 2
    return max(1.0, cluster_variance / item_variance)
