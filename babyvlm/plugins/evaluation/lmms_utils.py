"""lmms-eval hooks for DevCV tasks exported by babyvlm (copied as ``utils.py`` beside the task YAMLs).

Each doc is one whole item (its JSON in the doc's ``babyvlm`` field), so ``--limit`` never splits an
item. ``process_results`` regroups the doc's answers into the item's responses (for a choice task:
choice ``i`` is option ``choice_map[i][1]`` of request ``choice_map[i][0]``); each metric's
``aggregate_<metric>`` lets the babyvlm task score and aggregate the items, so lmms-eval reports exactly
what ``babyvlm eval`` does. Image paths stay inside this folder.
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


def _whole(doc: dict[str, Any]) -> dict[str, Any]:
    return json.loads(doc["babyvlm"])


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """The item's images, opened lazily (their ``filename`` lets babyvlm read the exact bytes)."""
    from PIL import Image

    return [Image.open(_inside(path)) for path in _whole(doc)["item"]["images"]]


def doc_to_text(doc: dict[str, Any]) -> str:
    first = _whole(doc)["requests"][0]
    if doc["kind"] == "multi_round":
        return first["rounds"][0]
    return first["conversations"][-1]["value"]


def doc_to_choice(doc: dict[str, Any]) -> list[str]:
    """Every option of every request; a request's own text where the item has one request."""
    whole = _whole(doc)
    requests = whole["requests"]
    if len(requests) == 1:
        return list(requests[0]["continuations"])
    return [f"#{number} {requests[number]['continuations'][option]}" for number, option in whole["choice_map"]]


def doc_to_target(doc: dict[str, Any]) -> Any:
    """The gold option's index for a one-request choice item (lmms-eval logs it; babyvlm scores the item)."""
    if doc["kind"] == "choice":
        options = doc_to_choice(doc)
        return options.index(doc["target"]) if doc["target"] in options else 0
    return doc["target"]


def _pair(result: Any) -> Any:
    return getattr(result, "text", result)  # lmms-eval 0.7.3 may hand back GenerationResult objects


def _responses(doc: dict[str, Any], whole: dict[str, Any], results: list[Any]) -> list[Any]:
    """One response per request of the item, as ``task.score`` takes them."""
    if doc["kind"] == "choice":
        responses: list[list[Any]] = [[None] * len(r["continuations"]) for r in whole["requests"]]
        for (number, option), result in zip(whole["choice_map"], results, strict=True):
            loss, greedy = _pair(result)
            responses[number][option] = [float(loss), bool(greedy)]
        return responses
    text = results[0]
    return [json.loads(text) if doc["kind"] == "multi_round" else text]


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    whole = _whole(doc)
    payload = {"task": doc["task"], "mode": whole["mode"], "item": whole["item"],
               "responses": _responses(doc, whole, results)}
    from babyvlm import registry

    return {metric: payload for metric in registry.build("task", doc["task"]).metrics}


def score_payloads(payloads: list[dict[str, Any]]) -> dict[str, float]:
    """Every metric of the task, from the per-item payloads (scored and aggregated by the task)."""
    from babyvlm import registry
    from babyvlm.core.records import TaskItem

    if not payloads:
        return {}
    task = registry.build("task", payloads[0]["task"])
    items, predictions = [], []
    for payload in payloads:
        record = payload["item"]
        item = TaskItem(record["id"], task.name, [_inside(p).read_bytes() for p in record["images"]],
                        record["conversations"], record["answer"], record["choices"], record["extras"])
        items.append(item)
        predictions.append(task.score(item, payload["responses"], payload["mode"]))
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
