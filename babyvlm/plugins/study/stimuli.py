"""DevCV items as the screens a participant sees, and a participant's answers back as task responses.

Screens are derived from the task's own requests (``task.requests(item, "generate")``), so people see the
prompt a model sees, and answers are scored by the task's own ``score``/``aggregate``:

- a ``generate`` request is one screen: the prompt text with its images; ``(A) <image>`` options become
  clickable images, ``(A) text`` options buttons, otherwise the item's ``choices`` (counts, directions)
  are buttons, and an item with neither gets a text box. Five or more non-option images (a VDR clip) play
  as an animation;
- a ``multi_round`` request (Delayed Memory) is one screen per round, in order;
- a task whose requests are all single-image ``choice`` requests over the same phrases (Looking While
  Listening) is one screen per phrase showing every image: "which picture is '<phrase>'?". The choice
  of image p for phrase p is turned into the loss table the task scores (chosen pair 0, others 1).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import DataError
from babyvlm.core.records import Prediction, Request, TaskItem

LETTER_OPTION = re.compile(r"\(([A-H])\)\s*")
ANIMATION_MIN_FRAMES = 5
LAYOUTS = ("options", "animation", "phrase")


@dataclass
class Option:
    key: str  # what is recorded as the response (a letter, a choice, an image number)
    label: str
    image: int | None = None  # index into the item's images when the option is a picture


@dataclass
class Screen:
    """One trial's stimulus: ``segments`` are ``("text", str)`` / ``("image", index)`` in reading order."""

    layout: str
    segments: list[tuple[str, Any]]
    options: list[Option]
    gold: str
    free_text: bool = False
    frames: list[int] = field(default_factory=list)  # animation frames (image indices), played in order

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def accepts(self, response: str) -> bool:
        return self.free_text or response in {option.key for option in self.options}

    def is_correct(self, response: str) -> bool:
        return normalise(response) == normalise(self.gold)


def normalise(text: str) -> str:
    return " ".join(str(text).strip().lower().split())


def gold_letters(item: TaskItem) -> list[str]:
    """Each gpt turn's answer letter (the last token, as the leaderboard reads Memory)."""
    answers = []
    for turn in item.conversations:
        if turn.get("from") == "gpt":
            tokens = turn["value"].strip().split()
            answers.append(tokens[-1].strip("().") if tokens else "")
    return answers


def screens_for(task: Any, item: TaskItem) -> list[Screen]:
    """The screens of one item (see the module docstring); ``DataError`` for a shape no screen fits."""
    requests = task.requests(item, "generate")
    if requests and all(request.kind == "choice" for request in requests):
        return _phrase_screens(item, requests)
    screens: list[Screen] = []
    for request in requests:
        if request.kind == "multi_round":
            screens += _round_screens(item, request)
        elif request.kind == "generate":
            text = "\n".join(turn["value"] for turn in request.conversations if turn.get("from") == "human")
            screens.append(_screen(text, 0, len(request.images), item.answer, _answer_space(task, item)))
        else:
            raise DataError(f"{item.task} item {item.item_id!r}: request kind {request.kind!r} cannot be shown")
    return screens


def _answer_space(task: Any, item: TaskItem) -> list[str]:
    """The item's choices, or the task's answer space where it offers one (DevCV tasks do; optional)."""
    space = getattr(task, "answer_space", None)
    return list(item.choices) or (list(space(item)) if callable(space) else [])


def _round_screens(item: TaskItem, request: Request) -> list[Screen]:
    golds = gold_letters(item)
    if len(golds) != len(request.rounds):
        raise DataError(f"{item.task} item {item.item_id!r}: {len(request.rounds)} rounds but {len(golds)} answers")
    screens, used = [], 0
    for text, gold in zip(request.rounds, golds, strict=True):
        shown = text.count(IMAGE_TOKEN)
        screens.append(_screen(text, used, shown, gold, []))
        used += shown
    return screens


IMAGE_MARK = re.compile(r"\(([A-H])\)\s*" + re.escape(IMAGE_TOKEN) + "|" + re.escape(IMAGE_TOKEN))


def _screen(text: str, first_image: int, count: int, gold: str, choices: Sequence[str]) -> Screen:
    """A prompt with ``<image>`` tokens consuming images ``first_image ...`` in order."""
    missing = count - text.count(IMAGE_TOKEN)
    if missing > 0:  # the leaderboard's rule for prompts without tokens
        text = " ".join([IMAGE_TOKEN] * missing) + "\n" + text
    segments: list[tuple[str, Any]] = []
    options: list[Option] = []
    image, position = first_image, 0
    for mark in IMAGE_MARK.finditer(text):
        if text[position:mark.start()].strip():
            segments.append(("text", text[position:mark.start()].strip()))
        if mark.group(1):  # "(A) <image>": a picture to touch
            options.append(Option(key=mark.group(1), label=mark.group(1), image=image))
        else:
            segments.append(("image", image))
        image, position = image + 1, mark.end()
    if text[position:].strip():
        segments.append(("text", text[position:].strip()))
    if not options:
        options = _text_options(segments) or [Option(key=str(c), label=str(c)) for c in choices]
    prompt_images = [value for kind, value in segments if kind == "image"]
    animated = len(prompt_images) >= ANIMATION_MIN_FRAMES and all(option.image is None for option in options)
    return Screen(layout="animation" if animated else "options", segments=segments, options=options,
                  gold=str(gold).strip(), free_text=not options, frames=prompt_images if animated else [])


def _text_options(segments: list[tuple[str, Any]]) -> list[Option]:
    """``(A) top left or (B) top right ...`` in the prompt text -> letter buttons labelled with the text."""
    options = []
    for kind, value in segments:
        if kind != "text":
            continue
        marks = list(LETTER_OPTION.finditer(value))
        for index, mark in enumerate(marks):
            end = marks[index + 1].start() if index + 1 < len(marks) else len(value)
            label = re.sub(r"\s+(or|and)\s*$", "", value[mark.end():end].strip(" ,.?;")).strip(" ,.?;")
            options.append(Option(key=mark.group(1), label=label or mark.group(1)))
    return options


def _phrase_screens(item: TaskItem, requests: list[Request]) -> list[Screen]:
    phrases = list(requests[0].continuations)
    if any(len(r.images) != 1 or list(r.continuations) != phrases for r in requests) or len(phrases) != len(requests):
        raise DataError(f"{item.task} item {item.item_id!r}: likelihood-only requests of a shape the study "
                        f"cannot show (expected one image per request and one phrase per image)")
    options = [Option(key=str(number), label=chr(ord("A") + number), image=number) for number in range(len(requests))]
    return [Screen(layout="phrase", segments=[("text", phrase)], options=options, gold=str(number))
            for number, phrase in enumerate(phrases)]


def task_responses(task: Any, item: TaskItem, answers: Sequence[str]) -> list[Any]:
    """A participant's answers (one per screen, in order) as the responses ``task.score(..., "generate")``
    takes: the answer text per ``generate`` request, the list of round answers per ``multi_round``, and a
    loss table per ``choice`` request (the image chosen for a phrase gets 0, everything else 1)."""
    requests = task.requests(item, "generate")
    if requests and all(request.kind == "choice" for request in requests):
        chosen = [int(answer) for answer in answers]
        return [[(0.0 if chosen[phrase] == image else 1.0, False) for phrase in range(len(chosen))]
                for image in range(len(requests))]
    responses, position = [], 0
    for request in requests:
        if request.kind == "multi_round":
            responses.append(list(answers[position:position + len(request.rounds)]))
            position += len(request.rounds)
        else:
            responses.append(answers[position])
            position += 1
    return responses


def score_answers(task: Any, item: TaskItem, answers: Sequence[str]) -> Prediction:
    requests = task.requests(item, "generate")
    mode = "loglikelihood" if requests and all(r.kind == "choice" for r in requests) else "generate"
    return task.score(item, task_responses(task, item, answers), mode)
