"""Greedy decoding for BabyLLaVA with the language model's KV cache.

Prompts are expanded (images spliced in), moved to left padding so every row ends at the same column,
then decoded one token per step; position ids follow each row's real tokens, so padding never shifts
RoPE positions and batched results equal one-at-a-time results.
"""

from __future__ import annotations

from typing import Any

import torch

from babyvlm.core.errors import ModelInputError


def left_align(embeds: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor):
    """Right-padded ``[B, L, d]`` / ``[B, L]`` -> left-padded (each row rolled by its padding)."""
    total = embeds.shape[1]
    shifts = total - lengths  # [B]
    columns = torch.arange(total, device=embeds.device)
    source = (columns[None, :] - shifts[:, None]) % total  # where each left-aligned column reads from
    rows = torch.arange(embeds.shape[0], device=embeds.device)[:, None]
    return embeds[rows, source], mask[rows, source]


def greedy_generate(model: Any, prompts: list[list[int]], pixel_values: torch.Tensor, image_counts: torch.Tensor,
                    max_new_tokens: int) -> list[list[int]]:
    """New token ids per prompt, stopping at ``<eos>`` (excluded) or after ``max_new_tokens``."""
    if max_new_tokens < 0:
        raise ModelInputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if any(not ids for ids in prompts):
        raise ModelInputError("cannot generate from an empty prompt")
    device = model.device
    batch = model._pad(prompts)
    merged = model.embed(batch["input_ids"].to(device), pixel_values.to(device),
                         batch["attention_mask"].to(device), image_counts=image_counts)
    embeds, mask = left_align(merged.inputs_embeds, merged.attention_mask, merged.lengths)
    eos, pad = model.special_id("eos_id"), model.special_id("pad_id")
    lm = model.language_model
    results: list[list[int]] = [[] for _ in prompts]
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    step_inputs: dict[str, Any] = {"inputs_embeds": embeds}
    cache = None
    for _ in range(max_new_tokens):
        out = lm(**step_inputs, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                 logits_to_keep=1)
        cache = out.cache
        next_tokens = out.logits[:, -1].argmax(dim=-1)
        finished |= next_tokens == eos
        if bool(finished.all()):
            break
        for row in (~finished).nonzero(as_tuple=True)[0].tolist():
            results[row].append(int(next_tokens[row]))
        next_tokens = torch.where(finished, torch.full_like(next_tokens, pad), next_tokens)
        step_inputs = {"input_ids": next_tokens[:, None]}
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
    return results
