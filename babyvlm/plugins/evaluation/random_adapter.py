"""Eval adapter ``random``: a seeded uniform guesser, the chance baseline every score is read against.

Answers depend only on (seed, task, item id, request position), never on call order or batching, so a
resumed or sharded run guesses the same. A generated answer is drawn from the item's answer space
when the engine has shown the items (``see_items``: the task's ``answer_space(item)``, else its
``choices``), else from the option letters the prompt lists ("(A) ... (B) ..."); likelihood requests get independent uniform losses, so the lowest is a uniform pick.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from typing import Any

from babyvlm.core.records import Request, TaskItem

OPTION_LETTER = re.compile(r"\(([A-Z])\)")


def seeded_rng(*parts: Any) -> random.Random:
    """A generator seeded by the parts' text (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def prompt_letters(text: str) -> list[str]:
    return sorted(set(OPTION_LETTER.findall(text)))


class RandomAdapter:
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._choices: dict[tuple[str, str], list[str]] = {}

    def fingerprint(self) -> str:
        return f"random:seed={self.seed}"

    def see_items(self, task_name: str, items: Sequence[TaskItem], task: Any = None, mode: str = "generate") -> None:
        space = getattr(task, "answer_space", None)  # optional: DevCV tasks name each item's answers
        for item in items:
            options = list(space(item)) if callable(space) else list(item.choices)
            if not options:
                continue
            self._choices[(task_name, item.item_id)] = [str(c) for c in options]
            if task is not None:  # a task may give its requests their own ids
                for request in task.requests(item, mode):
                    self._choices[(task_name, request.item_id)] = [str(c) for c in options]

    def _pick(self, request: Request, text: str, *where: Any) -> str:
        options = self._choices.get((request.task, request.item_id)) or prompt_letters(text)
        if not options:
            return ""
        return seeded_rng(self.seed, request.task, request.item_id, *where).choice(options)

    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        answers = []
        for request in requests:
            prompt = " ".join(turn.get("value", "") for turn in request.conversations)
            answers.append(self._pick(request, prompt, "generate", _position(request)))
        return answers

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        results = []
        for request in requests:
            rng = seeded_rng(self.seed, request.task, request.item_id, "choice", _position(request))
            results.append([(rng.random(), False) for _ in request.continuations])
        return results

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        return [[self._pick(request, text, "round", number) for number, text in enumerate(request.rounds)]
                for request in requests]


def _position(request: Request) -> str:
    """Which of its item's requests this is, by content (not batch position), so batching cannot matter."""
    return hashlib.sha256(repr((request.conversations, request.continuations, request.rounds)).encode()).hexdigest()[:12]
