"""Eval adapter ``oracle``: answers from the gold labels, to validate tasks and scoring (never a result).

The engine shows it the items (``see_items``) before a task's requests. Per item it answers, in order
of preference: what the task says a gold-answering model responds (``task.respond_with(item, mode,
task.oracle_answer(item))``, where the task offers both, as the DevCV tasks do); else the gold text for a
generated answer, the item's gpt turns for a multi-round request and loss 0 for the continuation equal
to the answer (1 for the rest); and when the task does not score that correct (Looking While Listening
prefers a different phrase per image), every pick of one preferred continuation per request until the
task scores one correct. A task whose gold cannot be reached therefore shows up below 100%.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from babyvlm.core.errors import ConfigError
from babyvlm.core.records import Request, TaskItem

MAX_SEARCH = 4096  # picks tried per item before giving up


class OracleAdapter:
    name = "oracle"

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], TaskItem] = {}
        self._tasks: dict[str, tuple[Any, str]] = {}
        self._solved: dict[tuple[str, str], list[Any]] = {}

    def fingerprint(self) -> str:
        return "oracle"

    def see_items(self, task_name: str, items: Sequence[TaskItem], task: Any = None, mode: str = "generate") -> None:
        for item in items:
            self._items[(task_name, item.item_id)] = item
            self._solved.pop((task_name, item.item_id), None)
            if task is not None:  # a task may give its requests their own ids (one per image, ...)
                for request in task.requests(item, mode):
                    self._items[(task_name, request.item_id)] = item
        if task is not None:
            self._tasks[task_name] = (task, mode)

    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        return [self._answer(request) for request in requests]

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        return [self._answer(request) for request in requests]

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        return [self._answer(request) for request in requests]

    # ---- per item ---------------------------------------------------------------------------------
    def _answer(self, request: Request) -> Any:
        item = self._items.get((request.task, request.item_id))
        if item is None:
            raise ConfigError(f"eval_adapter 'oracle': no gold label for {request.task} item {request.item_id}; "
                              f"the oracle only runs inside the evaluation engine, which shows it the items")
        if request.task not in self._tasks:
            return gold_response(item, request)
        task, mode = self._tasks[request.task]
        key = (request.task, item.item_id)
        requests = list(task.requests(item, mode))
        if key not in self._solved:
            self._solved[key] = solve(task, item, mode, requests)
        # which of the item's requests this is: by id and text (images only to tell apart requests that
        # differ in nothing else, so a blind wrapper's blank images still find their request)
        same = [index for index, other in enumerate(requests)
                if (other.item_id, other.kind, other.conversations, other.continuations, other.rounds) ==
                (request.item_id, request.kind, request.conversations, request.continuations, request.rounds)]
        exact = [index for index in same if requests[index].images == request.images]
        if exact or same:
            return self._solved[key][(exact or same)[0]]
        return gold_response(item, request)


def gold_response(item: TaskItem, request: Request) -> Any:
    if request.kind == "generate":
        return item.answer
    if request.kind == "multi_round":
        gold = [turn["value"] for turn in item.conversations if turn.get("from") == "gpt"]
        return (gold + [item.answer] * len(request.rounds))[:len(request.rounds)]
    answer = item.answer.strip().lower()
    return [(0.0, True) if str(option).strip().lower() == answer else (1.0, False) for option in request.continuations]


def solve(task: Any, item: TaskItem, mode: str, requests: list[Request]) -> list[Any]:
    """Responses for every request of the item that the task scores correct (best effort, see above)."""
    respond, gold = getattr(task, "respond_with", None), getattr(task, "oracle_answer", None)
    if callable(respond) and callable(gold):  # optional task extension: the task knows its gold responses
        return list(respond(item, mode, gold(item)))
    simple = [gold_response(item, request) for request in requests]
    if task.score(item, simple, mode).correct:
        return simple
    sizes = [len(r.continuations) if r.kind == "choice" else 1 for r in requests]
    for pick in itertools.islice(itertools.product(*[range(max(1, n)) for n in sizes]), MAX_SEARCH):
        responses = [[(0.0 if i == chosen else 1.0, i == chosen) for i in range(len(r.continuations))]
                     if r.kind == "choice" else answer for r, chosen, answer in zip(requests, pick, simple, strict=True)]
        if task.score(item, responses, mode).correct:
            return responses
    return simple
