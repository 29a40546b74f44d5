"""``Request`` records -> OpenAI chat messages: LLaVA human/gpt turns become user/assistant messages and
every ``<image>`` token becomes a base64 ``image_url`` data-URL part at its place in the text."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from typing import Any

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import ModelInputError

ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:3] == b"GIF":
        return "image/gif"
    return "image/jpeg"


def data_url(data: bytes) -> str:
    return f"data:{image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def content_parts(text: str, images: Iterator[bytes], where: str) -> list[dict[str, Any]] | str:
    """Text with ``<image>`` tokens -> OpenAI content parts (plain text when it holds no image)."""
    if IMAGE_TOKEN not in text:
        return text
    parts: list[dict[str, Any]] = []
    pieces = text.split(IMAGE_TOKEN)
    for index, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if index < len(pieces) - 1:
            image = next(images, None)
            if image is None:
                raise ModelInputError(f"{where}: more {IMAGE_TOKEN} tokens than images")
            parts.append({"type": "image_url", "image_url": {"url": data_url(bytes(image))}})
    return parts


def turn_messages(turns: Sequence[dict[str, str]], images: Iterator[bytes], where: str) -> list[dict[str, Any]]:
    messages = []
    for number, turn in enumerate(turns):
        role = ROLES.get(turn.get("from", ""))
        if role is None:
            raise ModelInputError(f"{where}: turn {number} has role {turn.get('from')!r}; expected human or gpt")
        messages.append({"role": role, "content": content_parts(turn.get("value", ""), images, where)})
    return messages


def prompt_turns(conversations: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The prompt without a trailing reference answer (as the chat templates drop it)."""
    turns = list(conversations)
    if turns and turns[-1].get("from") == "gpt":
        turns = turns[:-1]
    return turns
