"""Image–utterance pairs from a store dataset, their batches, and the symmetric InfoNCE objective with
duplicate utterances kept out of each other's negatives."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from babyvlm.core.errors import ConfigError

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp: a temperature never below 0.01
IMAGE_TOKEN = "<image>"


def utterance_of(sample: Any) -> str:
    """The utterance of an image sample: its non-human turns' text, ``<image>`` markers removed."""
    turns = sample.get("conversations", []) if isinstance(sample, dict) else []
    texts = [str(turn.get("value", "")).replace(IMAGE_TOKEN, " ") for turn in turns
             if isinstance(turn, dict) and turn.get("from") != "human"]
    return " ".join(" ".join(texts).split())


def utterance_key(text: str) -> str:
    """Equal keys = the same utterance (never each other's negative): lower case, whitespace folded."""
    return re.sub(r"\s+", " ", text.strip().lower())


class PairDataset(torch.utils.data.Dataset):
    """``(first image, utterance)`` of each sample of a store dataset."""

    def __init__(self, base: Any, where: str = "contrastive"):
        self.base, self.where = base, where

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        sample = self.base[index]
        name = sample.get("sample_id", index) if isinstance(sample, dict) else index
        images = sample.get("images") if isinstance(sample, dict) else None
        if not images:
            raise ConfigError(f"{self.where}: sample {name} has no image (the phase needs formats=['image'])")
        text = utterance_of(sample)
        if not text:
            raise ConfigError(f"{self.where}: sample {name} has no utterance to pair with its image")
        return images[0], text


class PairCollate:
    """A list of pairs -> ``pixel_values`` [B, 3, S, S], the utterances' ``input_ids`` / ``attention_mask``
    (right-padded, special tokens dropped) and ``text_keys`` (equal for equal utterances)."""

    def __init__(self, preprocess: Any, tokenizer: Any, drop_ids: Sequence[int], pad_id: int):
        self.preprocess, self.tokenizer = preprocess, tokenizer
        self.drop_ids, self.pad_id = set(int(i) for i in drop_ids), int(pad_id)

    def __call__(self, pairs: Sequence[tuple[Any, str]]) -> dict[str, torch.Tensor]:
        pixels = torch.stack([self.preprocess(image) for image, _ in pairs])
        keys: dict[str, int] = {}
        text_keys = torch.tensor([keys.setdefault(utterance_key(text), len(keys)) for _, text in pairs])
        return {"pixel_values": pixels, **self.tokens([text for _, text in pairs]), "text_keys": text_keys}

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        ids = [[i for i in self.tokenizer.encode(text) if i not in self.drop_ids] for text in texts]
        for text, row in zip(texts, ids, strict=True):
            if not row:
                raise ConfigError(f"contrastive: utterance {text!r} has no tokens besides special ones")
        longest = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), longest), dtype=torch.long)
        for row, tokens in enumerate(ids):
            input_ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, :len(tokens)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


def info_nce(image: torch.Tensor, text: torch.Tensor, keys: torch.Tensor, logit_scale: torch.Tensor):
    """Symmetric InfoNCE of L2-normalised ``image`` [B, D] and ``text`` [B, D] embeddings, pair ``i`` the
    positive of row ``i``; another pair with the same ``keys`` value (the same utterance) is masked out of
    both directions' negatives. Returns ``(loss, image->text top-1 accuracy counting duplicates right)``."""
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * image @ text.t()
    same = keys[:, None] == keys[None, :]
    duplicate = same & ~torch.eye(len(keys), dtype=torch.bool, device=keys.device)
    targets = torch.arange(len(keys), device=logits.device)
    masked = logits.masked_fill(duplicate, float("-inf"))
    loss = (F.cross_entropy(masked, targets) + F.cross_entropy(masked.t(), targets)) / 2
    with torch.no_grad():
        accuracy = same[targets, logits.argmax(dim=1)].float().mean()
    return loss, accuracy


class ContrastiveObjective(nn.Module):
    """The model's image embedding (encoder -> connector -> mean over visual tokens) against its utterance
    embedding (mean of the LM input embeddings of the utterance's tokens, optionally projected)."""

    def __init__(self, model: nn.Module, temperature: float = 0.07, learn_temperature: bool = True,
                 text_projection: bool = False):
        super().__init__()
        self.model = model
        scale = torch.tensor(math.log(1.0 / temperature))
        self.logit_scale = nn.Parameter(scale, requires_grad=learn_temperature)
        width = model.language_model.get_input_embeddings().weight.shape[1]
        self.text_projection = None
        if text_projection:
            self.text_projection = nn.Linear(width, width, bias=False)
            with torch.no_grad():
                self.text_projection.weight.copy_(torch.eye(width))

    def train(self, mode: bool = True) -> ContrastiveObjective:
        """Frozen parts stay in eval mode (their batch-norm statistics do not move), as in ``ModelLoss``."""
        from babyvlm.plugins.mmengine_trainer.objectives import keep_frozen_parts_in_eval

        super().train(mode)
        if mode:
            keep_frozen_parts_in_eval(self.model)
        return self

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_images(pixel_values).float().mean(dim=1), dim=-1)

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeds = self.model.language_model.get_input_embeddings()(input_ids).float()
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (embeds * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        if self.text_projection is not None:
            pooled = self.text_projection(pooled)
        return F.normalize(pooled, dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = self.image_embeddings(batch["pixel_values"])
        text = self.text_embeddings(batch["input_ids"], batch["attention_mask"])
        loss, accuracy = info_nce(image, text, batch["text_keys"], self.logit_scale)
        return {"loss": loss, "batch_accuracy": accuracy,
                "temperature": (1.0 / self.logit_scale.detach().clamp(max=MAX_LOGIT_SCALE).exp()),
                "n_samples": torch.tensor(float(len(image))), "n_tokens": batch["attention_mask"].sum().float()}


@torch.no_grad()
def retrieval(objective: ContrastiveObjective, pairs: Sequence[tuple[Any, str]], collate: PairCollate,
              batch_size: int = 64) -> dict[str, Any]:
    """Image -> utterance top-1 retrieval among the distinct utterances of ``pairs``, beside chance
    (1 / distinct utterances) and the share of the most frequent utterance (a blind guess's best)."""
    was_training = objective.training
    objective.eval()
    try:
        keys = [utterance_key(text) for _, text in pairs]
        distinct = list(dict.fromkeys(keys))
        first_text = {}
        for (_, text), key in zip(pairs, keys, strict=True):
            first_text.setdefault(key, text)
        device = objective.logit_scale.device
        text_batch = collate.tokens([first_text[key] for key in distinct])
        texts = objective.text_embeddings(text_batch["input_ids"].to(device), text_batch["attention_mask"].to(device))
        hits = 0
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            images = objective.image_embeddings(collate(chunk)["pixel_values"].to(device))
            best = (images @ texts.t()).argmax(dim=1).tolist()
            hits += sum(distinct[b] == keys[start + row] for row, b in enumerate(best))
        majority = max(keys.count(k) for k in distinct) / len(keys)
        return {"accuracy": round(hits / len(pairs), 4), "chance": round(1 / len(distinct), 4),
                "majority": round(majority, 4), "pairs": len(pairs), "utterances": len(distinct)}
    finally:
        objective.train(was_training)
