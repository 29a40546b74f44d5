"""Template plugin: chat templates turning LLaVA conversations into token ids and loss labels.

Registered (kind ``template``):

- ``baby_plain`` (alignment): ``<sos><image>{utterance}<eos>``; with several human/gpt turns
  (interleaved sequences) ``<sos><image>{u1}<eos><image>{u2}<eos>...``. Human turns may hold only
  ``<image>`` tokens (whitespace between them is dropped); every gpt turn and its ``<eos>`` is supervised.
- ``baby_v1`` (joint / instruction): ``<sos>`` then `` USER: {human} ASSISTANT: {gpt}<eos>`` per turn.
  The scaffolding and human turns are masked; each answer is supervised from the space after
  ``ASSISTANT:`` through its ``<eos>``, so generation starts right after ``ASSISTANT:``.

``labels`` are aligned with ``input_ids`` (not shifted; the model shifts) and hold ``-100`` where no loss is
taken. Each ``<image>`` is one id (the tokenizer's ``image_id``); the model expands it into image features.
``prompt`` is built from the same pieces as ``encode``, so it is always an exact prefix of ``encode``'s ids.

A template works with any tokenizer offering ``encode(text)``, ``sos_id``, ``eos_id`` and ``image_id``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from babyvlm.core.errors import ModelInputError
from babyvlm.core.hookspecs import hookimpl
from babyvlm.core.records import IMAGE_TOKEN

IGNORE_INDEX = -100
HUMAN, GPT = "human", "gpt"


class TemplateTokenizer(Protocol):
    sos_id: int
    eos_id: int
    image_id: int

    def encode(self, text: str) -> list[int]: ...


@dataclass
class EncodedConversation:
    """Token ids of a whole conversation and the per-position loss targets (``-100`` = no loss)."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_supervised(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass(frozen=True)
class Turn:
    """One validated conversation turn; ``index`` is its position, for error messages."""

    index: int
    role: str
    value: str


class ChatTemplate(ABC):
    """Shared checks and assembly; subclasses say how one human turn and one answer become ids."""

    name = "template"

    def encode(self, conversations: Sequence[Mapping[str, Any]], tokenizer: TemplateTokenizer) -> EncodedConversation:
        """Ids and labels for a conversation of alternating human/gpt turns ending with a gpt turn."""
        turns = self._checked_turns(conversations)
        if all(turn.role == HUMAN for turn in turns):
            raise ModelInputError(f"{self.name}: conversation has no gpt turn, so it would leave no supervised token")
        if turns[-1].role == HUMAN:
            raise ModelInputError(f"{self.name}: conversation ends with human turn {turns[-1].index}, which has no "
                                  "answer to supervise; drop it, or use prompt() to generate one")
        input_ids, labels = [tokenizer.sos_id], [IGNORE_INDEX]
        for turn in turns:
            ids = self._turn_ids(turn, tokenizer)
            input_ids += ids
            labels += ids if turn.role == GPT else [IGNORE_INDEX] * len(ids)
        return EncodedConversation(input_ids, labels)

    def prompt(self, conversations: Sequence[Mapping[str, Any]], tokenizer: TemplateTokenizer) -> list[int]:
        """Ids up to where the final answer starts; a trailing gpt turn (the reference answer) is dropped."""
        turns = self._checked_turns(conversations)
        if turns[-1].role == GPT:
            turns = turns[:-1]
        ids = [tokenizer.sos_id]
        for turn in turns:
            ids += self._turn_ids(turn, tokenizer)
        return ids

    # ---- per-template text (what a subclass defines) ---------------------------------------
    @abstractmethod
    def human_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        """Ids of a human turn plus any scaffolding up to where the answer starts (all masked)."""

    @abstractmethod
    def answer_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        """Ids of a gpt turn's answer (supervised); ``<eos>`` is appended by the caller."""

    def _turn_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        if turn.role == HUMAN:
            return self.human_ids(turn, tokenizer)
        self._check_answer(turn)  # only answers actually encoded: prompt() may drop an empty reference
        return self.answer_ids(turn, tokenizer) + [tokenizer.eos_id]

    # ---- validation ----------------------------------------------------------------------
    def _checked_turns(self, conversations: Sequence[Mapping[str, Any]]) -> list[Turn]:
        if isinstance(conversations, (str, bytes)) or not isinstance(conversations, Sequence):
            raise ModelInputError(f"{self.name}: conversations must be a list of turns, got "
                                  f"{type(conversations).__name__}")
        if not conversations:
            raise ModelInputError(f"{self.name}: empty conversation (no turns)")
        turns = [self._checked_turn(i, turn) for i, turn in enumerate(conversations)]
        for turn in turns:
            expected = HUMAN if turn.index % 2 == 0 else GPT
            if turn.role != expected:
                raise ModelInputError(f"{self.name}: turns must alternate human, gpt, human, ... starting with "
                                      f"human; turn {turn.index} is {turn.role!r}, expected {expected!r}")
        return turns

    def _checked_turn(self, index: int, turn: Any) -> Turn:
        if not isinstance(turn, Mapping):
            raise ModelInputError(f"{self.name}: turn {index} must be a dict with 'from' and 'value', "
                                  f"got {type(turn).__name__}")
        for key in ("from", "value"):
            if key not in turn:
                raise ModelInputError(f"{self.name}: turn {index} has no {key!r} key")
        role, value = turn["from"], turn["value"]
        if role not in (HUMAN, GPT):
            raise ModelInputError(f"{self.name}: turn {index} has unknown role {role!r} (expected 'human' or 'gpt')")
        if not isinstance(value, str):
            raise ModelInputError(f"{self.name}: turn {index} 'value' must be a string, got {type(value).__name__}")
        return Turn(index, role, value)

    def _check_answer(self, turn: Turn) -> None:
        if not turn.value.strip():
            raise ModelInputError(f"{self.name}: gpt turn {turn.index} is empty; an answer needs text to supervise")
        if IMAGE_TOKEN in turn.value:
            raise ModelInputError(f"{self.name}: gpt turn {turn.index} contains {IMAGE_TOKEN}; images belong in "
                                  "human turns")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BabyPlainTemplate(ChatTemplate):
    """``<image>{utterance}<eos>``: image-only human turns, every utterance supervised (alignment)."""

    name = "baby_plain"

    def human_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        count = turn.value.count(IMAGE_TOKEN)
        if turn.value.replace(IMAGE_TOKEN, "").strip():
            raise ModelInputError(f"baby_plain: human turn {turn.index} may hold only {IMAGE_TOKEN} tokens, got "
                                  f"{turn.value!r}; use baby_v1 for text prompts")
        return [tokenizer.image_id] * count

    def answer_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        return tokenizer.encode(turn.value)


class BabyV1Template(ChatTemplate):
    """`` USER: {human} ASSISTANT: {gpt}<eos>`` per turn, only the answers supervised."""

    name = "baby_v1"
    user, assistant = "USER:", "ASSISTANT:"

    def human_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        return tokenizer.encode(f" {self.user} {turn.value} {self.assistant}")

    def answer_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        # The space after "ASSISTANT:" starts the answer: byte-level BPE glues it to the first word.
        return tokenizer.encode(f" {turn.value}")


@hookimpl
def register_templates(register) -> None:
    register("baby_plain", BabyPlainTemplate)
    register("baby_v1", BabyV1Template)
