"""Picture-slot tags: a learned embedding of each picture's place in its sample (1st, 2nd, ...) added to all of
that picture's tokens (``BabyLLaVA(image_slots=K)``; off, 0, by default).

Why: under RoPE a token's *value* carries no position, so when a later position attends to a picture's tokens
it learns what is there but not which picture it was — the letter of a picture option ("(B) <image>") is
two attention hops away. With every picture's tokens tagged by its slot, choosing the picture that matches a
query needs one hop less. Measured (README, "An easy version of the task first"; few seeds): on an easy
match-to-sample task the tiny VLM left its answer-prior plateau with these tags on 4 of 5 Spatial Details runs
(on no Left/Right run), and not on the one Spatial Details run without them.

``image_slots`` must cover the most pictures any sample has (DevCV's Delayed Memory items carry 29); a sample
with more is refused by name, which stops the run. A picture encoded on its own (``encode_images`` without
positions, as the contrastive phase does) is tagged as slot 0, as a one-picture sample shows it.

The table lives in the connector (``connector.image_slots``), so it trains whenever the connector trains
and is frozen with it. A Hugging Face LLaVA checkpoint has no place for it: such a model is saved in the
babyvlm layout (``hf_export.export_blocker``).
"""

from __future__ import annotations

import torch

from babyvlm.core.errors import ConfigError, ModelInputError
from babyvlm.plugins.babyllava.connector_parts import add_to_connector

ATTRIBUTE = "image_slots"


def check_slot_count(slots: object) -> int:
    """``image_slots`` as an int >= 0, or a ``ConfigError`` naming the option."""
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
        raise ConfigError(f"model 'babyllava': image_slots must be an integer >= 0 (0: no picture-slot tags), "
                          f"got {slots!r}")
    return slots


def attach_slot_table(connector: torch.nn.Module, slots: int, width: int) -> None:
    """Give ``connector`` a ``[slots, width]`` embedding table (N(0, 1), torch's default) as a sub-module."""
    add_to_connector(connector, ATTRIBUTE, torch.nn.Embedding(slots, width))


def slot_table(connector: torch.nn.Module) -> torch.nn.Embedding | None:
    return getattr(connector, ATTRIBUTE, None)


def slot_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_id: int, slots: int) -> torch.Tensor:
    """Each picture's slot in its sample, in reading order (sample 0's pictures first), from the ``<image>``
    tokens of each row; a sample with more pictures than ``slots`` is a ``ModelInputError`` naming it."""
    counts = ((input_ids == image_id) & attention_mask.bool()).sum(dim=1).tolist()
    for row, count in enumerate(counts):
        if count > slots:
            raise ModelInputError(f"sample {row}: {count} images, but the model tags at most {slots} picture "
                                  f"slots (image_slots={slots}); build it with a larger image_slots")
    return torch.cat([torch.arange(count, dtype=torch.long) for count in counts]) if counts else \
        torch.zeros(0, dtype=torch.long)


def add_slot_tags(features: torch.Tensor, table: torch.nn.Embedding, positions: torch.Tensor) -> torch.Tensor:
    """``features`` ``[N, T, d]`` with each picture's slot embedding added to all its T tokens."""
    tags = table(positions.to(table.weight.device)).to(features.dtype)
    return features + tags.unsqueeze(1)
