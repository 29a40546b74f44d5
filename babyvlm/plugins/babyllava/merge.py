"""Splice image features into a token sequence: every ``<image>`` id is replaced, in place, by that
image's projected tokens; labels and the attention mask are expanded to match (right padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from babyvlm.core.constants import IGNORE_INDEX
from babyvlm.core.errors import ModelInputError


@dataclass
class MergedInputs:
    """The language model's inputs after image expansion; all ``[B, L, ...]``, right-padded."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None
    lengths: torch.Tensor  # real (unpadded) length of each row


def check_image_counts(image_tokens_per_sample: list[int], images_per_sample: list[int],
                       sample_names: list[str] | None = None) -> None:
    """``ModelInputError`` naming the first sample whose ``<image>`` count differs from its image count."""
    if len(image_tokens_per_sample) != len(images_per_sample):
        raise ModelInputError(f"batch has {len(image_tokens_per_sample)} samples but image counts for "
                              f"{len(images_per_sample)}")
    for index, (tokens, images) in enumerate(zip(image_tokens_per_sample, images_per_sample, strict=True)):
        if tokens != images:
            name = f" ({sample_names[index]})" if sample_names and sample_names[index] else ""
            raise ModelInputError(f"sample {index}{name}: {tokens} <image> token(s) but {images} image(s); "
                                  f"each <image> consumes exactly one image (a video is one <image> per frame)")


def merge_image_features(text_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         image_features: torch.Tensor | None, image_id: int, labels: torch.Tensor | None = None,
                         max_length: int | None = None, tokens_per_image: int | None = None) -> MergedInputs:
    """Build the expanded sequence.

    ``text_embeds`` ``[B, S, d]`` embeds ``input_ids`` ``[B, S]``; ``image_features`` ``[N, T, d]`` holds the
    batch's images in reading order (sample 0's images first, left to right). Each ``<image>`` becomes
    ``tokens_per_image`` positions (the model's, from its connector; when None, ``T``). Padding positions
    (``attention_mask == 0``) are dropped and re-added at the end of each row.
    """
    valid = attention_mask.bool()
    is_image = (input_ids == image_id) & valid
    _check_total(is_image, image_features)
    tokens_per_image = _image_width(image_features, tokens_per_image)
    widths = torch.where(is_image, tokens_per_image, 1) * valid  # how many positions each token becomes
    lengths = widths.sum(dim=1)
    _check_max_length(lengths, max_length)
    starts = widths.cumsum(dim=1) - widths
    batch, width = input_ids.shape[0], text_embeds.shape[-1]
    total = int(lengths.max()) if batch else 0

    text_rows, text_cols = (valid & ~is_image).nonzero(as_tuple=True)
    text_targets = starts[text_rows, text_cols]
    embeds = text_embeds.new_zeros(batch, total, width)
    embeds = embeds.index_put((text_rows, text_targets), text_embeds[text_rows, text_cols])
    if image_features is not None and image_features.shape[0]:
        image_rows, image_cols = is_image.nonzero(as_tuple=True)  # row-major = reading order
        offsets = torch.arange(tokens_per_image, device=input_ids.device)
        image_targets = starts[image_rows, image_cols][:, None] + offsets  # [N, T]
        rows = image_rows[:, None].expand_as(image_targets)
        embeds = embeds.index_put((rows.reshape(-1), image_targets.reshape(-1)),
                                  image_features.reshape(-1, width).to(embeds.dtype))

    positions = torch.arange(total, device=input_ids.device)
    merged_mask = (positions[None, :] < lengths[:, None]).to(attention_mask.dtype)
    merged_labels = None
    if labels is not None:
        merged_labels = torch.full((batch, total), IGNORE_INDEX, dtype=labels.dtype, device=labels.device)
        merged_labels[text_rows, text_targets] = labels[text_rows, text_cols]
    return MergedInputs(embeds, merged_mask, merged_labels, lengths)


def _image_width(image_features: torch.Tensor | None, tokens_per_image: int | None) -> int:
    """Positions per ``<image>``: the declared count, which the features must match."""
    produced = None if image_features is None else int(image_features.shape[1])
    if tokens_per_image is None:
        return produced or 0
    if produced is not None and image_features.shape[0] and produced != tokens_per_image:
        raise ModelInputError(f"image features have {produced} tokens per image but the model declares "
                              f"{tokens_per_image} (its connector's output_tokens)")
    return int(tokens_per_image)


def _check_total(is_image: torch.Tensor, image_features: torch.Tensor | None) -> None:
    tokens = is_image.sum(dim=1).tolist()
    images = 0 if image_features is None else int(image_features.shape[0])
    if sum(tokens) != images:
        raise ModelInputError(f"batch has {sum(tokens)} <image> token(s) (per sample: {tokens}) but {images} "
                              f"image(s); each <image> consumes exactly one image")


def _check_max_length(lengths: torch.Tensor, max_length: int | None) -> None:
    if max_length is None:
        return
    too_long = (lengths > max_length).nonzero(as_tuple=True)[0]
    if too_long.numel():
        index = int(too_long[0])
        raise ModelInputError(f"sample {index}: {int(lengths[index])} tokens after expanding its images, more than "
                              f"the language model's {max_length} positions; use fewer images or shorter text")
