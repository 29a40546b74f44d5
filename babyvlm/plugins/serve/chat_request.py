"""An OpenAI chat-completion request body, validated, as a babyvlm generation job.

Messages (``system``/``user``/``assistant``, content a string or a list of ``text`` and ``image_url``
parts with base64 ``data:`` URLs) become LLaVA conversations with one ``<image>`` per image part. A
system message is prepended to the first user turn (babyvlm's templates have no system role). Remote
image URLs are refused: the server never fetches anything. Every value is checked here, in the request's
own thread, before the job can join a batch: images are decoded (``media.decode_image``: an undecodable
one is a 400, a decompression bomb a 413) and the seed must fit a generator.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import DataError
from babyvlm.media import ImageTooLarge, decode_image

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed takes on every platform
ROLE_NAMES = {"user": "human", "assistant": "gpt"}


class ApiError(Exception):
    """A request the server refuses: HTTP status + OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class ChatJob:
    """What the worker generates for one request."""

    conversations: list[dict[str, str]]
    images: list[bytes]
    max_tokens: int
    temperature: float
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float, integer: bool = False) -> Any:
    value = body.get(key, default)
    if value is None:
        value = default
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, f"'{key}' must be {kind} in [{low}, {high}], got {value!r}", param=key)
    return value


def decode_image_url(url: Any, param: str) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise ApiError(400, "image_url.url must be a base64 data URL (data:image/...;base64,...); the server "
                            "fetches no remote images", param=param)
    header, _, payload = url.partition(",")
    if ";base64" not in header or not header[5:].startswith("image/"):
        raise ApiError(400, f"image_url.url must be 'data:image/<type>;base64,<data>', got {header[:60]!r}", param=param)
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ApiError(413, f"image larger than {MAX_IMAGE_BYTES // 2**20} MiB", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image_url.url: invalid base64 data", param=param) from None
    try:  # decoded here, in the request's own thread: a bad image never reaches a batch
        decode_image(data, "image_url.url")
    except ImageTooLarge as exc:
        raise ApiError(413, str(exc), param=param) from None
    except DataError:
        raise ApiError(400, "image_url.url: the data is not a readable image", param=param) from None
    return data


def _content_text(content: Any, images: list[bytes], param: str) -> str:
    if isinstance(content, str):
        if IMAGE_TOKEN in content:
            raise ApiError(400, f"message text may not contain {IMAGE_TOKEN!r}; send images as image_url parts", param=param)
        return content
    if not isinstance(content, list) or not content:
        raise ApiError(400, "content must be a string or a non-empty list of parts", param=param)
    pieces = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if IMAGE_TOKEN in part["text"]:
                raise ApiError(400, f"text may not contain {IMAGE_TOKEN!r}", param=where)
            pieces.append(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            images.append(decode_image_url(part["image_url"].get("url"), f"{where}.image_url.url"))
            pieces.append(IMAGE_TOKEN)
        else:
            raise ApiError(400, "each content part must be {'type': 'text', 'text': ...} or {'type': "
                                "'image_url', 'image_url': {'url': ...}}", param=where)
    return "".join(pieces)


def conversations_from(messages: Any) -> tuple[list[dict[str, str]], list[bytes]]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    images: list[bytes] = []
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "user", "assistant"):
            raise ApiError(400, f"role must be system, user or assistant, got {role!r}", param=f"{param}.role")
        text = _content_text(message.get("content"), images, f"{param}.content")
        if role == "system":
            if turns:
                raise ApiError(400, "system messages must come before the conversation", param=param)
            system.append(text)
            continue
        expected = "user" if len(turns) % 2 == 0 else "assistant"
        if role != expected:
            raise ApiError(400, f"messages must alternate user and assistant, starting with user; {param} is "
                                f"{role!r}, expected {expected!r}", param=param)
        turns.append({"from": ROLE_NAMES[role], "value": text})
    if not turns or turns[-1]["from"] != "human":
        raise ApiError(400, "the last message must be from the user", param="messages")
    if system:
        turns[0] = {"from": "human", "value": "\n".join(system) + "\n" + turns[0]["value"]}
    return turns, images


def parse_chat_request(body: Any, max_tokens_limit: int) -> ChatJob:
    """Validate a ``/v1/chat/completions`` body; raises ``ApiError`` (4xx) naming the bad parameter."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if body.get("stream"):
        raise ApiError(400, "streaming is not supported; send stream=false", param="stream")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported", param="n")
    conversations, images = conversations_from(body.get("messages"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise ApiError(400, "'stop' must be a string or a list of up to 4 non-empty strings", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise ApiError(400, f"'seed' must be an integer in [0, {MAX_SEED}]", param="seed")
    return ChatJob(conversations=conversations, images=images,
                   max_tokens=_number({"max_tokens": max_tokens}, "max_tokens", 16, 1, max_tokens_limit, integer=True),
                   temperature=float(_number(body, "temperature", 1.0, 0.0, 2.0)),
                   top_p=float(_number(body, "top_p", 1.0, 0.0, 1.0)), seed=seed, stop=stop)
