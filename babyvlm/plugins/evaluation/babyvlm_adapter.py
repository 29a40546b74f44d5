"""Eval adapter ``babyvlm``: a babyvlm checkpoint folder (any composition of plugins) answering requests.

- ``generate_until``: greedy decoding with the model's own ``generate`` (left-aligned, position ids per
  row, so a batch answers exactly as one item at a time), ``max_new_tokens`` per request.
- ``loglikelihood``: the shared prefix (images + question) encoded once, every option scored from its
  KV cache (``scoring="shared"``); ``scoring="full"`` runs one full forward per option instead, the
  reference the benchmark and tests compare against. Each option's score is its mean token loss.
- ``generate_until_multi_round``: each round is asked with every earlier round, its images and the
  model's own earlier answers (as generated token ids) in the conversation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from babyvlm.core.compose import CHECKPOINT_META_NAME
from babyvlm.core.errors import ConfigError, ModelInputError
from babyvlm.core.records import Request
from babyvlm.plugins.evaluation.scoring import check_image_count, encode_choice, score_full, score_shared

CHECKPOINT_MARKER = CHECKPOINT_META_NAME
SCORING_MODES = ("shared", "full")
DEFAULT_QUESTION_TEMPLATE = "baby_v1"  # for checkpoints whose own template cannot ask a question


def hash_files(folder: Path, names: Sequence[str]) -> str:
    """sha256 over the named files that exist in ``folder`` (name and bytes), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for name in names:
        path = folder / name
        if not path.is_file():
            continue
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _use_template(model: Any, template: str) -> None:
    use = getattr(model, "use_template", None)  # a babyllava also records it in its spec
    if use is not None:
        use(template)
    else:
        from babyvlm import registry

        model.template = registry.build("template", template)


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


class BabyVLMAdapter:
    """``path``: a folder written by ``save_pretrained`` / ``babyvlm model build`` (or a built model)."""

    name = "babyvlm"
    path_priority = 0  # tried first when ``--model`` is a folder: a babyvlm checkpoint is also HF-loadable

    def __init__(self, path: str | os.PathLike | None = None, model: Any = None, template: str | None = None,
                 batch_size: int = 16, scoring: str = "shared", include_eos: bool = False, device: str = "cpu"):
        if scoring not in SCORING_MODES:
            raise ConfigError(f"eval_adapter 'babyvlm': scoring must be one of {', '.join(SCORING_MODES)}, "
                              f"got {scoring!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"eval_adapter 'babyvlm': batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size, self.scoring, self.include_eos = batch_size, scoring, include_eos
        if model is None:
            self.path = self._checked_folder(path)
            from babyvlm.plugins.babyllava.model import BabyLLaVA  # heavy: only when an adapter is built

            model = BabyLLaVA.from_pretrained(self.path)
            self._weights_hash = hash_files(self.path, [CHECKPOINT_MARKER, "model.safetensors", "tokenizer.json"])
        else:
            self.path = None
            self._weights_hash = None  # hashed on first fingerprint(): a 1B model's state is large
        self.template_name, self.template_source = self._choose_template(model, template)
        if model.tokenizer is None or model.template is None:
            raise ConfigError(f"eval_adapter 'babyvlm': the model at {self.path or '(in memory)'} has no tokenizer/"
                              f"template; it cannot read prompts")
        self.model = model.to(device).eval()

    @staticmethod
    def _choose_template(model: Any, template: str | None) -> tuple[str | None, str]:
        """The template the prompts are built with, and why: the one asked for, else the checkpoint's own
        (what its last phase trained with), else ``baby_v1`` where the checkpoint's own cannot hold a
        question (``baby_plain``, an alignment-phase checkpoint) or it records none."""
        if template:
            _use_template(model, template)
            return template, "option"
        own = model.template
        if own is not None and getattr(own, "asks_questions", True):
            return own.name, "checkpoint"
        _use_template(model, DEFAULT_QUESTION_TEMPLATE)
        reason = f"checkpoint's {own.name} holds no questions" if own is not None else "checkpoint records none"
        return DEFAULT_QUESTION_TEMPLATE, f"default ({reason})"

    def describe(self) -> dict[str, Any]:
        """The settings a result depends on beyond the weights, recorded in the results files."""
        return {"template": self.template_name, "template_source": self.template_source,
                "scoring": self.scoring, "include_eos": self.include_eos}

    @classmethod
    def accepts_path(cls, path: Path) -> bool:
        return (path / CHECKPOINT_MARKER).is_file()

    @staticmethod
    def _checked_folder(path: Any) -> Path:
        if path is None:
            raise ConfigError("eval_adapter 'babyvlm': give path=CHECKPOINT_FOLDER")
        folder = Path(path)
        if not (folder / CHECKPOINT_MARKER).is_file():
            raise ConfigError(f"eval_adapter 'babyvlm': {folder} is not a babyvlm checkpoint (no {CHECKPOINT_MARKER})")
        return folder

    def fingerprint(self) -> str:
        if self._weights_hash is None:
            self._weights_hash = _state_hash(self.model)
        # the template's text too, not only its name: a fix to how a template renders (baby_v1_qfirst once moved a
        # query picture past its options) must not let a resumed evaluation reuse answers given under the old one
        rendering = hashlib.sha256(str(getattr(self.model.template, "jinja", "")).encode()).hexdigest()[:8]
        settings = (f"template={self.template_name}@{rendering};eos={self.include_eos};"
                    f"dtype={_dtype_of(self.model)}")
        return f"babyvlm:{self._weights_hash[:16]}:{hashlib.sha256(settings.encode()).hexdigest()[:8]}"

    # ---- generation --------------------------------------------------------------------------------
    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        samples = [self._prompt_sample(request) for request in requests]
        return [self.model.tokenizer.decode(ids) for ids in self._generate_ids(samples, requests)]

    def _prompt_sample(self, request: Request) -> dict[str, Any]:
        where = f"{request.task} item {request.item_id}"
        check_image_count(request.conversations, request.images, where)
        try:
            ids = self.model.template.prompt(request.conversations, self.model.tokenizer)
        except ModelInputError as exc:
            raise ModelInputError(f"{where}: {exc}") from exc
        return {"input_ids": ids, "images": list(request.images)}

    def _generate_ids(self, samples: Sequence[dict[str, Any]], requests: Sequence[Request]) -> list[list[int]]:
        """Greedy ids per sample, batched by ``batch_size`` among requests sharing ``max_new_tokens``."""
        results: list[list[int] | None] = [None] * len(samples)
        by_length: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            by_length.setdefault(int(request.max_new_tokens), []).append(index)
        for max_new_tokens, indices in by_length.items():
            for block in chunks(indices, self.batch_size):
                outputs = self.model.generate([samples[i] for i in block], max_new_tokens=max_new_tokens)
                for index, ids in zip(block, outputs, strict=True):
                    results[index] = list(ids)
        return [ids or [] for ids in results]

    # ---- likelihood ----------------------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        encoded = [encode_choice(self.model, request, self.include_eos) for request in requests]
        score = score_shared if self.scoring == "shared" else score_full
        results: list[list[tuple[float, bool]]] = []
        for block in chunks(encoded, self.batch_size):
            results.extend(score(self.model, block))
        return results

    # ---- multi-round ---------------------------------------------------------------------------------
    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        states = [_Conversation(request) for request in requests]
        tokenizer, template = self.model.tokenizer, self.model.template
        answers: list[list[str]] = [[] for _ in requests]
        rounds = max((len(r.rounds) for r in requests), default=0)
        for number in range(rounds):
            active = [i for i, request in enumerate(requests) if number < len(request.rounds)]
            samples = [states[i].ask(number, template, tokenizer) for i in active]
            outputs = self._generate_ids(samples, [requests[i] for i in active])
            for index, ids in zip(active, outputs, strict=True):
                text = tokenizer.decode(ids)
                states[index].answered(ids, text, tokenizer)
                answers[index].append(text)
        return answers


class _Conversation:
    """One multi-round request's growing prompt: earlier rounds, their images and the model's answers."""

    def __init__(self, request: Request):
        self.request = request
        self.where = f"{request.task} item {request.item_id}"
        self.turns: list[dict[str, str]] = list(request.conversations)
        self.ids: list[int] = []
        self.used_images = 0
        total = sum(text.count("<image>") for text in request.rounds) + sum(
            turn["value"].count("<image>") for turn in request.conversations)
        if total != len(request.images):
            raise ModelInputError(f"{self.where}: {total} <image> token(s) over its rounds but "
                                  f"{len(request.images)} image(s)")

    def ask(self, number: int, template: Any, tokenizer: Any) -> dict[str, Any]:
        question = {"from": "human", "value": self.request.rounds[number]}
        try:
            if not self.ids:
                self.ids = template.prompt([*self.turns, question], tokenizer)
            else:
                # the new human turn's ids, as the template writes them after the turns so far (their text
                # answers stand in; the ids already hold the model's own generated answer tokens)
                before = template.encode(self.turns, tokenizer).input_ids
                self.ids = self.ids + template.prompt([*self.turns, question], tokenizer)[len(before):]
        except ModelInputError as exc:
            raise ModelInputError(f"{self.where}, round {number}: {exc}") from exc
        self.turns.append(question)
        self.used_images += question["value"].count("<image>")
        images = list(self.request.images[:self.used_images + _leading_images(self.request)])
        return {"input_ids": list(self.ids), "images": images}

    def answered(self, ids: list[int], text: str, tokenizer: Any) -> None:
        self.ids = self.ids + list(ids) + [int(tokenizer.eos_id)]
        # an empty answer still needs text for the template's checks; its ids above are what the model saw
        self.turns.append({"from": "gpt", "value": text if text.strip() else "-"})


def _leading_images(request: Request) -> int:
    return sum(turn["value"].count("<image>") for turn in request.conversations)


def _dtype_of(model: Any) -> str:
    autocast = getattr(model, "autocast_dtype", None)
    if autocast is not None:
        return str(autocast)
    return str(next(model.parameters()).dtype)


def _state_hash(model: Any) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-dim too
    return digest.hexdigest()
