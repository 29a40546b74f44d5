"""Category tables for detector outputs: class id -> name, from a file or a bundled table.

``class_names(spec)`` takes a path or a bundled name:

- ``coco``: the 80 COCO categories under their official ids (1-90 with gaps), what COCO-trained
  detectors write as ``category_id`` in COCO results;
- ``coco80``: the same 80 names as indices 0-79, what YOLO models trained on COCO write as ``class``;
- a ``.txt``/``.names`` file: one name per line, the line number (from 0) is the id (YOLO's
  ``classes.txt``);
- a ``.yaml``/``.yml`` file with ``names:`` as a list (ids from 0) or a mapping (YOLO's ``data.yaml``);
- a ``.json`` file: a COCO dataset (its ``categories``), a list of names (ids from 0), or ``{id: name}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import load_json, regular_file

COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
# the official COCO category ids of the 80 names above (the 2014/2017 annotation files skip 11 ids)
COCO_IDS = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83), *range(84, 91),
)
BUNDLED = {"coco": dict(zip(COCO_IDS, COCO80, strict=True)), "coco80": dict(enumerate(COCO80))}


def class_names(spec: str) -> dict[int, str]:
    """The id -> name table ``spec`` names (see the module docstring)."""
    if spec in BUNDLED:
        return dict(BUNDLED[spec])
    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"class names {spec!r}: no such file (or give a bundled table: {', '.join(BUNDLED)})")
    suffix = path.suffix.lower()
    if suffix == ".json":
        table = _from_data(load_json(path), path)
    elif suffix in (".yaml", ".yml"):
        table = _from_yaml(path)
    else:
        lines = regular_file(path).read_text(encoding="utf-8").splitlines()
        table = {number: line.strip() for number, line in enumerate(lines) if line.strip()}
    if not table:
        raise DataError(f"{path}: no class names in it")
    return table


def categories_of(data: Any, path: Path) -> dict[int, str] | None:
    """A COCO document's ``categories`` as id -> name (None when it has none)."""
    if not isinstance(data, Mapping) or "categories" not in data:
        return None
    categories = data["categories"]
    if not isinstance(categories, list):
        raise DataError(f"{path}: 'categories' must be a list of {{id, name}}")
    table = {}
    for number, entry in enumerate(categories):
        if not isinstance(entry, Mapping) or not _is_id(entry.get("id")) or not isinstance(entry.get("name"), str):
            raise DataError(f"{path}: categories[{number}] must be {{'id': int, 'name': str}}, got {entry!r:.80}")
        table[int(entry["id"])] = entry["name"].strip()
    return table


def _from_data(data: Any, path: Path) -> dict[int, str]:
    coco = categories_of(data, path)
    if coco is not None:
        return coco
    if isinstance(data, list) and all(isinstance(name, str) for name in data):
        return {number: name.strip() for number, name in enumerate(data)}
    if isinstance(data, Mapping) and all(isinstance(name, str) for name in data.values()):
        try:
            return {int(key): name.strip() for key, name in data.items()}
        except ValueError:
            pass
    raise DataError(f"{path}: expected a COCO dataset with 'categories', a list of names or {{id: name}}")


def _from_yaml(path: Path) -> dict[int, str]:
    import yaml  # mmengine depends on PyYAML

    try:
        data = yaml.safe_load(regular_file(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc
    names = data.get("names") if isinstance(data, Mapping) else None
    if names is None:
        raise DataError(f"{path}: no 'names:' list or mapping (a YOLO data.yaml has one)")
    return _from_data(names, path)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
