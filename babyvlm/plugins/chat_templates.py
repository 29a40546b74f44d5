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

Each template also carries ``jinja``: the same prompt format as a Hugging Face chat template, which
checkpoints ship (``chat_template.jinja``) so ``processor.apply_chat_template(messages)`` builds exactly
the ids ``encode``/``prompt`` build. Messages are HF's ``{"role": "user"|"assistant", "content": ...}``;
``content`` is a string (used as the LLaVA ``value`` as is, ``<image>`` tokens included) or a list of
``{"type": "image"}`` / ``{"type": "text", "text": ...}`` items, rendered in order with images as
``<image>``: two neighbouring items are separated by a space, except an image and the text right
after it, which are separated by a newline (``<image> <image>\\nwhich one is the ball?``: the DevCV
leaderboard's layout). User turns come first and alternate with assistant turns; other roles, images in
an assistant turn and empty answers are refused (``raise_exception``), as ``encode`` refuses them.
A conversation ending in a user turn renders as the generation prompt; ``add_generation_prompt``
changes nothing, since a baby_v1 user turn already ends with ``ASSISTANT:``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from babyvlm.core.constants import IGNORE_INDEX, IMAGE_TOKEN
from babyvlm.core.errors import ModelInputError
from babyvlm.core.hookspecs import hookimpl

HUMAN, GPT = "human", "gpt"

# Jinja pieces shared by both chat templates (see the module docstring for the rules they implement).
_JINJA_CHECK_TURN = (
    "{%- if message['role'] not in ['user', 'assistant'] -%}"
    "{{ raise_exception('NAME: message ' ~ loop.index0 ~ ' has role ' ~ message['role'] ~ "
    "'; only user and assistant turns are supported') }}{%- endif -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('NAME: turns must alternate user, assistant, user, ... starting with user; message ' "
    "~ loop.index0 ~ ' is ' ~ message['role']) }}{%- endif -%}"
)
_JINJA_CONTENT_TEXT = (
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}{%- else -%}"
    "{%- set ns = namespace(text='', previous='') -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{%- set piece = 'IMAGE' -%}"
    "{%- elif item['type'] == 'text' -%}{%- set piece = item['text'] -%}"
    "{%- else -%}{{ raise_exception('NAME: unsupported content type ' ~ item['type']) }}{%- endif -%}"
    "{%- if ns.previous == '' -%}{%- set gap = '' -%}"
    "{%- elif ns.previous == 'image' and item['type'] == 'text' -%}{%- set gap = '\\n' -%}"
    "{%- else -%}{%- set gap = ' ' -%}{%- endif -%}"
    "{%- set ns.text = ns.text ~ gap ~ piece -%}{%- set ns.previous = item['type'] -%}"
    "{%- endfor -%}{%- set text = ns.text -%}{%- endif -%}"
)
_JINJA_CHECK_ANSWER = (
    "{%- if message['role'] == 'assistant' and 'IMAGE' in text -%}"
    "{{ raise_exception('NAME: assistant message ' ~ loop.index0 ~ ' contains IMAGE; images belong in user "
    "turns') }}{%- endif -%}"
    "{%- if message['role'] == 'assistant' and text | trim == '' -%}"
    "{{ raise_exception('NAME: assistant message ' ~ loop.index0 ~ ' is empty') }}{%- endif -%}"
)


def jinja_template(name: str, render_user: str, render_answer: str) -> str:
    """A complete chat template: ``bos`` then each checked turn through ``render_user``/``render_answer``
    (Jinja expressions over ``text``, the turn's content as a LLaVA value)."""
    body = (_JINJA_CHECK_TURN + _JINJA_CONTENT_TEXT + _JINJA_CHECK_ANSWER).replace("NAME", name)
    text = ("{{- bos_token -}}{%- for message in messages -%}" + body.replace("IMAGE", IMAGE_TOKEN)
            + "{%- if message['role'] == 'user' -%}{{ " + render_user + " }}"
            + "{%- else -%}{{ " + render_answer + " }}{%- endif -%}{%- endfor -%}")
    # one tag per line for people reading chat_template.jinja; every tag trims the whitespace around it
    return text.replace("-%}{", "-%}\n{").replace("}}{%-", "}}\n{%-")


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
    # whether a human turn may hold text (a question): what evaluation needs of a checkpoint's own template
    asks_questions = True
    jinja = ""  # the same format as a Hugging Face chat template (see the module docstring)

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
    asks_questions = False  # alignment: human turns hold only images
    jinja = jinja_template(
        "baby_plain",
        # a user turn holds only images: whitespace between them is dropped, any other text refused
        f"raise_exception('baby_plain: user message ' ~ loop.index0 ~ ' may hold only {IMAGE_TOKEN} tokens; use "
        f"baby_v1 for text prompts') if text.replace('{IMAGE_TOKEN}', '') | trim != '' "
        f"else '{IMAGE_TOKEN}' * text.count('{IMAGE_TOKEN}')",
        "text ~ eos_token")

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
    jinja = jinja_template("baby_v1", f"' {user} ' ~ text ~ ' {assistant}'", "' ' ~ text ~ eos_token")

    def human_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        return tokenizer.encode(f" {self.user} {turn.value} {self.assistant}")

    def answer_ids(self, turn: Turn, tokenizer: TemplateTokenizer) -> list[int]:
        # The space after "ASSISTANT:" starts the answer: byte-level BPE glues it to the first word.
        return tokenizer.encode(f" {turn.value}")


@hookimpl
def register_templates(register) -> None:
    register("baby_plain", BabyPlainTemplate)
    register("baby_v1", BabyV1Template)
