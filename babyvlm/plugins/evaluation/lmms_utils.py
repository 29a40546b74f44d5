"""lmms-eval hooks for DevCV tasks exported by babyvlm (copied as ``utils.py`` beside the task YAMLs).

Each doc is one request of one item. ``process_results`` passes the raw response on; each metric's
``aggregate_<metric>`` regroups the responses per item and lets the babyvlm task score and aggregate
them, so lmms-eval reports exactly what ``babyvlm eval`` does. Image paths stay inside this folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _inside(relative: str) -> Path:
    path = (HERE / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(HERE):
        raise ValueError(f"{HERE}: image path {relative!r} leaves the task folder; refused")
    return path


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """The request's images, opened lazily (their ``filename`` lets babyvlm read the exact bytes)."""
    from PIL import Image

    return [Image.open(_inside(path)) for path in doc["images"]]


def doc_to_text(doc: dict[str, Any]) -> str:
    if doc["kind"] == "multi_round":
        return doc["rounds"][0]
    return doc["conversations"][-1]["value"]


def doc_to_choice(doc: dict[str, Any]) -> list[str]:
    return list(doc["continuations"])


def doc_to_target(doc: dict[str, Any]) -> Any:
    if doc["kind"] == "choice":
        options = list(doc["continuations"])
        return options.index(doc["target"]) if doc["target"] in options else 0
    return doc["target"]


def _response(doc: dict[str, Any], results: list[Any]) -> Any:
    if doc["kind"] == "choice":
        return [[float(_pair(r)[0]), bool(_pair(r)[1])] for r in results]
    text = results[0]
    return json.loads(text) if doc["kind"] == "multi_round" else text


def _pair(result: Any) -> Any:
    return getattr(result, "text", result)  # lmms-eval 0.7.3 may hand back GenerationResult objects


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    payload = {"task": doc["task"], "mode": doc["mode"], "item_id": doc["item_id"],
               "request_index": doc["request_index"], "requests_per_item": doc["requests_per_item"],
               "response": _response(doc, results), "item": doc["item"] if doc["request_index"] == 0 else None}
    from babyvlm import registry

    metrics = registry.build("task", doc["task"]).metrics
    return {metric: payload for metric in metrics}


def score_payloads(payloads: list[dict[str, Any]]) -> dict[str, float]:
    """Every metric of the task, from the per-doc payloads (regrouped per item, scored by the task)."""
    from babyvlm import registry
    from babyvlm.core.records import TaskItem

    if not payloads:
        return {}
    task = registry.build("task", payloads[0]["task"])
    by_item: dict[str, dict[int, Any]] = {}
    records: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        by_item.setdefault(payload["item_id"], {})[payload["request_index"]] = payload["response"]
        if payload["item"] is not None:
            records[payload["item_id"]] = payload["item"]
    items, predictions = [], []
    for item_id, record in records.items():
        item = TaskItem(record["id"], task.name, [_inside(p).read_bytes() for p in record["images"]],
                        record["conversations"], record["answer"], record["choices"], record["extras"])
        responses = [by_item[item_id][index] for index in sorted(by_item[item_id])]
        items.append(item)
        predictions.append(task.score(item, responses, payloads[0]["mode"]))
    return dict(task.aggregate(items, predictions))


class _Aggregation:
    def __init__(self, metric: str):
        self.metric = metric

    def __call__(self, payloads: list[dict[str, Any]]) -> float:
        return score_payloads(payloads).get(self.metric, 0.0)


def __getattr__(name: str) -> Any:
    """``aggregate_<metric>`` for any metric a task reports (the YAML names them)."""
    if name.startswith("aggregate_"):
        return _Aggregation(name[len("aggregate_"):])
    raise AttributeError(name)
