"""Continuation scoring for a BabyLLaVA-style model: the shared prefix encoded once, options scored from it.

``score_shared`` runs the image + question prefix of every request once (images through the encoder,
then the language model with ``use_cache=True``), repeats each request's KV cache once per option and
scores all continuations in one more call. ``score_full`` is the reference the way lmms-eval does it:
one full forward (images included) per (request, option). Both return, per request, one
``(mean_token_loss, is_greedy)`` per option, in fp32, and give the same numbers (within float
rounding) whatever the batch composition:

- prefixes are left-aligned, so every row's last real token sits in the last column;
- position ids count each row's real tokens only, so padding never shifts RoPE positions;
- padded keys are masked; continuations are right-padded after the prefix, and a causal model never
  lets a real token see the padding that follows it.

Only the model's public pieces are used: ``encoder.preprocess``, ``embed``, ``language_model`` (called
with ``cache=``), ``tokenizer``, ``template`` and ``special_id``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import ModelInputError
from babyvlm.core.records import Request


@dataclass
class EncodedChoice:
    """One ``choice`` request as ids: the shared prefix and each continuation's ids after it."""

    prefix: list[int]
    continuations: list[list[int]]
    images: list[bytes]


def encode_choice(model: Any, request: Request, include_eos: bool = False) -> EncodedChoice:
    """Prefix ids (the template's generation prompt) and each continuation's answer ids after it.

    The continuation ids are cut from the template's encoding of the whole conversation with the option
    as the answer, so they are exactly what training supervised (tokenisation at the boundary included).
    """
    template, tokenizer = model.template, model.tokenizer
    where = f"{request.task} item {request.item_id}"
    check_image_count(request.conversations, request.images, where)
    if not request.continuations:
        raise ModelInputError(f"{where}: a choice request needs at least one continuation")
    try:
        prefix = template.prompt(request.conversations, tokenizer)
    except ModelInputError as exc:
        raise ModelInputError(f"{where}: {exc}") from exc
    eos = int(tokenizer.eos_id)
    continuations = []
    for index, text in enumerate(request.continuations):
        try:
            full = template.encode([*request.conversations, {"from": "gpt", "value": text}], tokenizer).input_ids
        except ModelInputError as exc:
            raise ModelInputError(f"{where}, continuation {index} ({text!r}): {exc}") from exc
        if full[:len(prefix)] != prefix:
            raise ModelInputError(f"{where}: template {template.name!r} does not encode the prompt as a prefix of "
                                  f"the answered conversation; cannot score continuations after it")
        tail = full[len(prefix):]
        if not include_eos and len(tail) > 1 and tail[-1] == eos:
            tail = tail[:-1]
        continuations.append(tail)
    return EncodedChoice(prefix, continuations, list(request.images))


def check_image_count(conversations: Sequence[dict[str, str]], images: Sequence[Any], where: str) -> None:
    tokens = sum(str(turn.get("value", "")).count(IMAGE_TOKEN) for turn in conversations)
    if tokens != len(images):
        raise ModelInputError(f"{where}: {tokens} {IMAGE_TOKEN} token(s) but {len(images)} image(s); each "
                              f"{IMAGE_TOKEN} consumes exactly one image")


def autocast_of(model: Any):
    """The model's own autocast setting (None on CPU fp32 runs: nothing changes)."""
    dtype = getattr(model, "autocast_dtype", None)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(model.device.type, dtype=dtype)


def pixel_batch(model: Any, images: Sequence[Sequence[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every request's images, preprocessed and stacked in reading order, plus per-request counts. An image
    that recurs in the batch (an item's requests share their pictures) is preprocessed once."""
    preprocessed: dict[Any, torch.Tensor] = {}
    flat = []
    for row in images:
        for image in row:
            key = image if isinstance(image, bytes) else id(image)  # the rows hold every array while this runs
            if key not in preprocessed:
                preprocessed[key] = model.encoder.preprocess(image)
            flat.append(preprocessed[key])
    size = int(model.encoder.image_size)
    pixels = torch.stack(flat) if flat else torch.zeros(0, 3, size, size)
    return pixels.to(model.device), torch.tensor([len(row) for row in images], dtype=torch.long)


def right_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(row) for row in rows)
    ids = torch.full((len(rows), longest), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[index, :len(row)] = 1
    return ids, mask


def left_align(embeds: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows rolled so each ends in the last column (padding moves to the left)."""
    total = embeds.shape[1]
    columns = torch.arange(total, device=embeds.device)
    source = (columns[None, :] - (total - lengths)[:, None]) % total
    rows = torch.arange(embeds.shape[0], device=embeds.device)[:, None]
    return embeds[rows, source], mask[rows, source]


def embedded_prefixes(model: Any, prefixes: Sequence[Sequence[int]], images: Sequence[Sequence[Any]]):
    """Left-aligned prefix embeddings (images spliced in), their mask and real lengths."""
    device = model.device
    ids, mask = right_pad(prefixes, model.special_id("pad_id"))
    pixels, counts = pixel_batch(model, images)
    merged = model.embed(ids.to(device), pixels, mask.to(device), image_counts=counts)
    embeds, aligned_mask = left_align(merged.inputs_embeds, merged.attention_mask, merged.lengths)
    return embeds, aligned_mask, merged.lengths


def token_scores(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> list[tuple[float, bool]]:
    """Per row: mean negative log-probability of the real targets, and whether each is the argmax."""
    logprobs = logits.float().log_softmax(dim=-1)
    picked = logprobs.gather(-1, targets[..., None])[..., 0]
    real = mask.bool()
    counts = real.sum(dim=1).clamp(min=1)
    losses = -(picked * real).sum(dim=1) / counts
    greedy = ((logprobs.argmax(dim=-1) == targets) | ~real).all(dim=1)
    return [(float(loss), bool(exact)) for loss, exact in zip(losses.tolist(), greedy.tolist(), strict=True)]


@torch.no_grad()
def score_shared(model: Any, choices: Sequence[EncodedChoice]) -> list[list[tuple[float, bool]]]:
    """Every request's prefix encoded once (KV cache), every continuation scored from it."""
    if not choices:
        return []
    device = model.device
    lm = model.language_model
    with autocast_of(model):
        embeds, mask, lengths = embedded_prefixes(model, [c.prefix for c in choices], [c.images for c in choices])
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        owners = torch.tensor([row for row, c in enumerate(choices) for _ in c.continuations], device=device)
        options = [ids for c in choices for ids in c.continuations]
        cont_ids, cont_mask = right_pad(options, model.special_id("pad_id"))
        cont_ids, cont_mask = cont_ids.to(device), cont_mask.to(device)
        # the prefix's last position predicts every option's first token: one-token options (letters,
        # numbers) are scored from it alone; only longer options need the cached continuation pass
        logits = out.logits[:, -1][owners].float()[:, None].repeat(1, cont_ids.shape[1], 1)
        longer = [index for index, ids in enumerate(options) if len(ids) > 1]
        if longer:
            rows = torch.tensor(longer, device=device)
            cache = out.cache
            cache.batch_select_indices(owners[rows])  # one copy of its request's prefix per longer option
            ids, real = cont_ids[rows, :-1], cont_mask[rows, :-1]
            full_mask = torch.cat([mask[owners[rows]], real.to(mask.dtype)], dim=1)
            positions = lengths[owners[rows]][:, None] + torch.arange(ids.shape[1], device=device)[None, :]
            cont_out = lm(input_ids=ids, attention_mask=full_mask, position_ids=positions, cache=cache, use_cache=True)
            logits[rows, 1:] = cont_out.logits.float()
    scores = token_scores(logits, cont_ids, cont_mask)
    return _split(scores, [len(c.continuations) for c in choices])


@torch.no_grad()
def score_full(model: Any, choices: Sequence[EncodedChoice]) -> list[list[tuple[float, bool]]]:
    """The reference: one full forward (images re-encoded) per (request, option), right-padded."""
    if not choices:
        return []
    device = model.device
    rows = [(c.prefix + ids, c.images, len(c.prefix), len(ids)) for c in choices for ids in c.continuations]
    ids, mask = right_pad([r[0] for r in rows], model.special_id("pad_id"))
    with autocast_of(model):
        pixels, counts = pixel_batch(model, [r[1] for r in rows])
        merged = model.embed(ids.to(device), pixels, mask.to(device), image_counts=counts)
        out = model.language_model(inputs_embeds=merged.inputs_embeds, attention_mask=merged.attention_mask)
        logits = out.logits.float()
    # where each continuation sits in the expanded (image-spliced) sequence: it is the tail of the row
    longest = max(r[3] for r in rows)
    picked = torch.zeros(len(rows), longest, logits.shape[-1], device=device)
    targets = torch.zeros(len(rows), longest, dtype=torch.long, device=device)
    real = torch.zeros(len(rows), longest, dtype=torch.long, device=device)
    for index, (row_ids, _, _, count) in enumerate(rows):
        end = int(merged.lengths[index])
        picked[index, :count] = logits[index, end - count - 1:end - 1]
        targets[index, :count] = torch.tensor(row_ids[-count:], dtype=torch.long, device=device)
        real[index, :count] = 1
    scores = token_scores(picked, targets, real)
    return _split(scores, [len(c.continuations) for c in choices])


def _split(flat: list[Any], sizes: Sequence[int]) -> list[list[Any]]:
    out, start = [], 0
    for size in sizes:
        out.append(flat[start:start + size])
        start += size
    return out
