"""Batched generation for the server: greedy through the model's own ``generate`` (so served answers are
exactly what evaluating the checkpoint gives), temperature / top-p sampling in a KV-cached loop beside it.

The sampling loop mirrors ``babyvlm.plugins.babyllava.generation.greedy_generate`` (left-aligned rows,
positions following each row's real tokens) and draws each row's next token with that row's own
``torch.Generator``, so a request's ``seed`` makes its answer reproducible whatever it is batched with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from babyvlm.plugins.babyllava.generation import left_align
from babyvlm.plugins.serve.chat_request import ChatJob


def samples_of(jobs: Sequence[ChatJob]) -> list[dict[str, Any]]:
    return [{"conversations": job.conversations, "images": job.images} for job in jobs]


def greedy_ids(model: Any, jobs: Sequence[ChatJob]) -> list[list[int]]:
    """One forward pass per step for the whole batch; each row cut to its own ``max_tokens`` (greedy rows
    do not depend on their batch neighbours, so cutting equals generating with that limit)."""
    outputs = model.generate(samples_of(jobs), max_new_tokens=max(job.max_tokens for job in jobs))
    return [ids[: job.max_tokens] for ids, job in zip(outputs, jobs, strict=True)]


def _next_tokens(logits: torch.Tensor, jobs: Sequence[ChatJob], generators: list[torch.Generator]) -> torch.Tensor:
    tokens = []
    for row, job in enumerate(jobs):
        probabilities = torch.softmax(logits[row].float() / job.temperature, dim=-1)
        if job.top_p < 1.0:  # nucleus: keep the smallest set of tokens whose mass reaches top_p
            ordered, order = probabilities.sort(descending=True)
            keep = ordered.cumsum(0) - ordered < max(job.top_p, 1e-6)
            probabilities = torch.zeros_like(probabilities).scatter(0, order[keep], ordered[keep])
        tokens.append(torch.multinomial(probabilities, 1, generator=generators[row]))
    return torch.cat(tokens)


@torch.no_grad()
def sampled_ids(model: Any, jobs: Sequence[ChatJob]) -> list[list[int]]:
    """Temperature (and top-p) sampling, stopping each row at ``<eos>`` or its ``max_tokens``."""
    samples = samples_of(jobs)
    prompts = [model.prompt_ids(sample, index) for index, sample in enumerate(samples)]
    pixels = model._pixels([sample["images"] for sample in samples])
    device = model.device
    generators = []
    for job in jobs:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(job.seed if job.seed is not None else int(torch.randint(0, 2**62, (1,))))
        generators.append(generator)
    batch = model._pad(prompts)
    merged = model.embed(batch["input_ids"].to(device), pixels["pixel_values"].to(device),
                         batch["attention_mask"].to(device), image_counts=pixels["image_counts"])
    embeds, mask = left_align(merged.inputs_embeds, merged.attention_mask, merged.lengths)
    eos, pad = model.special_id("eos_id"), model.special_id("pad_id")
    limits = torch.tensor([job.max_tokens for job in jobs])
    results: list[list[int]] = [[] for _ in jobs]
    finished = torch.zeros(len(jobs), dtype=torch.bool)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    step_inputs: dict[str, Any] = {"inputs_embeds": embeds}
    cache = None
    for step in range(int(limits.max())):
        out = model.language_model(**step_inputs, attention_mask=mask, position_ids=positions, cache=cache,
                                   use_cache=True, logits_to_keep=1)
        cache = out.cache
        next_tokens = _next_tokens(out.logits[:, -1].cpu(), jobs, generators)
        finished |= (next_tokens == eos) | (limits <= step)
        if bool(finished.all()):
            break
        for row in (~finished).nonzero(as_tuple=True)[0].tolist():
            results[row].append(int(next_tokens[row]))
        next_tokens = torch.where(finished, torch.full_like(next_tokens, pad), next_tokens).to(device)
        step_inputs = {"input_ids": next_tokens[:, None]}
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
    return results
