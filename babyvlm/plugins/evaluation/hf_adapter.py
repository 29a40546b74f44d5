"""Eval adapter ``hf``: any local Hugging Face image-text-to-text folder (``AutoModelForImageTextToText`` +
``AutoProcessor``), read offline; nothing is downloaded.

Prompts: the processor's chat template when it has one (``prompt_format="auto"``), else babyvlm's
``baby_v1`` text shape (`` USER: {human} ASSISTANT: {gpt}</s>`` per turn, the tokenizer adding its BOS).
A turn goes to the chat template as the LLaVA text itself when the template renders string content
verbatim (babyvlm's own templates do: a babyvlm checkpoint then gets exactly the prompt its template
builds), else as image/text items whose separators the template re-inserts (``_content``). A chat
template writes its own BOS, so the tokenizer adds none after it (as ``apply_chat_template(tokenize=True)``).
Generation is greedy with left padding; a likelihood request runs one full forward per option (images
processed each time, as lmms-eval does) and scores the option's tokens by their mean loss.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import ConfigError, ModelInputError
from babyvlm.core.records import Request
from babyvlm.plugins.evaluation.babyvlm_adapter import chunks, hash_files
from babyvlm.plugins.evaluation.scoring import check_image_count, token_scores

PROMPT_FORMATS = ("auto", "chat_template", "baby_v1")
FINGERPRINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "preprocessor_config.json", "processor_config.json", "chat_template.jinja")


def decode_image(data: bytes, where: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except Exception as exc:  # Pillow raises several types for corrupt data
        raise ModelInputError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from exc


class HFAdapter:
    name = "hf"
    path_priority = 10  # after ``babyvlm``: a babyvlm checkpoint folder is also an HF folder

    def __init__(self, path: str | os.PathLike | None = None, batch_size: int = 16, device: str = "cpu",
                 dtype: str = "float32", prompt_format: str = "auto"):
        if path is None or not (Path(path) / "config.json").is_file():
            raise ConfigError(f"eval_adapter 'hf': {path} is not a Hugging Face model folder (no config.json)")
        if prompt_format not in PROMPT_FORMATS:
            raise ConfigError(f"eval_adapter 'hf': prompt_format must be one of {', '.join(PROMPT_FORMATS)}, "
                              f"got {prompt_format!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"eval_adapter 'hf': batch_size must be a positive integer, got {batch_size!r}")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.path, self.batch_size, self.dtype = Path(path), batch_size, dtype
        torch_dtype = getattr(torch, dtype, None)
        if not isinstance(torch_dtype, torch.dtype):
            raise ConfigError(f"eval_adapter 'hf': unknown dtype {dtype!r}")
        try:
            self.processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"eval_adapter 'hf': {self.path} has no usable processor for AutoProcessor "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
        self.model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=torch_dtype,
                                                                 local_files_only=True).to(device).eval()
        self.tokenizer = self.processor.tokenizer
        self.use_chat_template = prompt_format == "chat_template" or (
            prompt_format == "auto" and bool(getattr(self.processor, "chat_template", None)))
        self.string_content = self.use_chat_template and self._renders_strings_verbatim()
        self._hash = hash_files(self.path, FINGERPRINT_FILES)

    @classmethod
    def accepts_path(cls, path: Path) -> bool:
        return (path / "config.json").is_file()

    def fingerprint(self) -> str:
        settings = f"dtype={self.dtype};chat={self.use_chat_template}"
        return f"hf:{self._hash[:16]}:{hashlib.sha256(settings.encode()).hexdigest()[:8]}"

    # ---- prompts ------------------------------------------------------------------------------------
    def _renders_strings_verbatim(self) -> bool:
        """Whether the chat template puts a string ``content`` into the prompt unchanged."""
        probe = f"{IMAGE_TOKEN}{IMAGE_TOKEN} probe\n text?"
        try:
            rendered = self.processor.apply_chat_template([{"role": "user", "content": probe}],
                                                          add_generation_prompt=True, tokenize=False)
        except Exception:  # a template that only takes item lists may fail in any way on a string
            return False
        return isinstance(rendered, str) and probe in rendered

    def prompt_text(self, conversations: Sequence[dict[str, str]]) -> str:
        if self.use_chat_template:
            messages = [{"role": "user" if turn["from"] == "human" else "assistant",
                         "content": turn["value"] if self.string_content else _content(turn["value"])}
                        for turn in conversations]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        eos = self.tokenizer.eos_token or ""
        parts = []
        for turn in conversations:
            parts.append(f" USER: {turn['value']} ASSISTANT:" if turn["from"] == "human" else f" {turn['value']}{eos}")
        return "".join(parts)

    def _inputs(self, texts: Sequence[str], images: Sequence[Sequence[bytes]], where: Sequence[str],
                padding_side: str) -> dict[str, torch.Tensor]:
        flat = [decode_image(image, w) for row, w in zip(images, where, strict=True) for image in row]
        self.tokenizer.padding_side = padding_side
        inputs = self.processor(text=list(texts), images=flat or None, padding=True, return_tensors="pt",
                                add_special_tokens=not self.use_chat_template)
        return {key: value.to(self.model.device) for key, value in inputs.items()}

    # ---- the three calls ----------------------------------------------------------------------------
    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        for request in requests:
            check_image_count(request.conversations, request.images, _where(request))
        return self._generate([self.prompt_text(r.conversations) for r in requests],
                              [r.images for r in requests], requests)

    def _generate(self, texts: Sequence[str], images: Sequence[Sequence[bytes]], requests: Sequence[Request]) -> list[str]:
        answers: list[str] = [""] * len(texts)
        by_length: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            by_length.setdefault(int(request.max_new_tokens), []).append(index)
        for max_new_tokens, indices in by_length.items():
            for block in chunks(indices, self.batch_size):
                inputs = self._inputs([texts[i] for i in block], [images[i] for i in block],
                                      [_where(requests[i]) for i in block], "left")
                with torch.no_grad():
                    out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
                new = out[:, inputs["input_ids"].shape[1]:]
                for index, ids in zip(block, new, strict=True):
                    answers[index] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return answers

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        rows = []  # (request index, prompt + option text, option token count)
        for index, request in enumerate(requests):
            check_image_count(request.conversations, request.images, _where(request))
            prompt = self.prompt_text(request.conversations)
            prompt_ids = self._token_ids(prompt)
            for option in request.continuations:
                full = prompt + f" {option}"
                full_ids = self._token_ids(full)
                if full_ids[:len(prompt_ids)] != prompt_ids or len(full_ids) == len(prompt_ids):
                    raise ModelInputError(f"{_where(request)}: option {option!r} does not tokenise as a "
                                          f"continuation of the prompt")
                rows.append((index, full, len(full_ids) - len(prompt_ids)))
        scores: list[tuple[float, bool]] = []
        for block in chunks(rows, self.batch_size):
            scores.extend(self._score_block(block, requests))
        results: list[list[tuple[float, bool]]] = [[] for _ in requests]
        for (index, _, _), score in zip(rows, scores, strict=True):
            results[index].append(score)
        return results

    def _token_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=not self.use_chat_template).input_ids

    def _score_block(self, block: Sequence[tuple[int, str, int]], requests: Sequence[Request]) -> list[tuple[float, bool]]:
        inputs = self._inputs([text for _, text, _ in block], [requests[i].images for i, _, _ in block],
                              [_where(requests[i]) for i, _, _ in block], "right")
        with torch.no_grad():
            logits = self.model(**inputs).logits.float()
        lengths = inputs["attention_mask"].sum(dim=1)
        longest = max(count for _, _, count in block)
        picked = torch.zeros(len(block), longest, logits.shape[-1], device=logits.device)
        targets = torch.zeros(len(block), longest, dtype=torch.long, device=logits.device)
        real = torch.zeros(len(block), longest, dtype=torch.long, device=logits.device)
        for row, (_, _, count) in enumerate(block):
            end = int(lengths[row])
            picked[row, :count] = logits[row, end - count - 1:end - 1]
            targets[row, :count] = inputs["input_ids"][row, end - count:end]
            real[row, :count] = 1
        return token_scores(picked, targets, real)

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        turns = [list(r.conversations) for r in requests]
        seen = [sum(t["value"].count(IMAGE_TOKEN) for t in r.conversations) for r in requests]
        answers: list[list[str]] = [[] for _ in requests]
        for number in range(max((len(r.rounds) for r in requests), default=0)):
            active = [i for i, r in enumerate(requests) if number < len(r.rounds)]
            for i in active:
                turns[i].append({"from": "human", "value": requests[i].rounds[number]})
                seen[i] += requests[i].rounds[number].count(IMAGE_TOKEN)
            texts = [self.prompt_text(turns[i]) for i in active]
            images = [requests[i].images[:seen[i]] for i in active]
            outputs = self._generate(texts, images, [requests[i] for i in active])
            for i, text in zip(active, outputs, strict=True):
                turns[i].append({"from": "gpt", "value": text})
                answers[i].append(text)
        return answers


def _content(value: str) -> list[dict[str, str]]:
    """A turn's text as chat-template items: an image entry for each ``<image>``, the text between.

    Chat templates put their own separator between items (babyvlm's: a newline between an image and
    the text after it, a space elsewhere), so the separator the LLaVA text already has there is taken
    off the text: ``<image>\nHow many?`` becomes ``[image, "How many?"]``, not ``[image, "\nHow many?"]``
    (which renders ``<image>\n\nHow many?``)."""
    pieces = value.split(IMAGE_TOKEN)
    content: list[dict[str, str]] = []
    for position, piece in enumerate(pieces):
        if position:
            content.append({"type": "image"})
            piece = piece.removeprefix("\n")
        if position < len(pieces) - 1:
            piece = piece.removesuffix(" ")
        if piece.strip():
            content.append({"type": "text", "text": piece})
    return content


def _where(request: Request) -> str:
    return f"{request.task} item {request.item_id}"
