"""``PackedTextDataset`` (phase ``0-language``): utterances as ``<sos> ... <eos>`` packed end to end
into fixed-length blocks for the causal LM (labels = inputs; the model shifts them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from babyvlm.core.errors import ConfigError


class PackedTextDataset(torch.utils.data.Dataset):
    def __init__(self, texts: Sequence[str], tokenizer: Any, block_size: int):
        if tokenizer is None:
            raise ConfigError("objective 'causal_lm' needs a tokenizer (the experiment's trained BPE)")
        stream: list[int] = []
        for text in texts:
            stream += [tokenizer.sos_id, *tokenizer.encode(text), tokenizer.eos_id]
        blocks = len(stream) // block_size
        if blocks == 0:
            raise ConfigError(f"objective 'causal_lm': {len(stream)} tokens of text fill no block of "
                              f"block_size={block_size}; lower block_size")
        self.blocks = torch.tensor(stream[: blocks * block_size], dtype=torch.long).view(blocks, block_size)
        self.token_count = len(stream)

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.blocks[index]


def collate_blocks(blocks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    ids = torch.stack(blocks)
    return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
