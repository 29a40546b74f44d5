"""Image-token standardisation: every channel of the connector's output centred and scaled by running
statistics over the picture tokens seen in training (``BabyLLaVA(image_token_norm="running")``; off by
default).

Why: after an MLP connector, the tokens of *different* pictures point almost the same way. Measured on the
demo's phase-2 model (seed 0): the same grid cell of two different Spatial Details pictures sits at cosine 0.93
(0.98 from a freshly initialised connector; the CNN's own post-ReLU features at 0.52), because one shared
direction — the mean token — dominates every token. Attention compares positions by dot product, so to the
language model every picture looks like every other until it learns to subtract that direction itself. With the
mean removed (and each channel at unit variance) the same two tokens sit at cosine ~0. What it changed, measured
(README, "Centred image tokens"; val only): nothing the demo shows at its 40 steps per task, and on the easy
match-to-sample stage a difference within three seeds' spread — an option to try in longer recipes, not a fix.

The statistics are buffers, updated only while the module trains — in training mode *and* with its own scale
trainable, so a frozen connector's statistics stay put whatever mode a trainer leaves it in — as an exponential
moving average (``momentum``) starting from the first training batch's own statistics. Under DDP each process
updates its own from its own batches (the trainer does not broadcast buffers) and rank 0's are saved; the
processes' statistics estimate the same thing from different samples. The forward always divides by the
buffers, never by the batch's statistics, so a picture's tokens depend on that picture alone (the model's
encode-each-distinct-picture-once path stays exact) and training and evaluation compute the same function. A learned per-channel scale and shift
(1 and 0 at first) follow, as in batch norm. The module lives in the connector (``connector.image_token_norm``),
so it trains and freezes with it; a Hugging Face LLaVA checkpoint has no place for it
(``hf_export.export_blocker``).
"""

from __future__ import annotations

import torch

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.babyllava.connector_parts import add_to_connector

ATTRIBUTE = "image_token_norm"
KINDS = ("running",)


def check_token_norm(kind: object) -> str | None:
    """``image_token_norm`` as ``None`` or one of ``KINDS``, or a ``ConfigError`` naming the option."""
    if kind is None or (isinstance(kind, str) and kind in KINDS):
        return kind
    raise ConfigError(f"model 'babyllava': image_token_norm must be None (off) or one of {', '.join(KINDS)}, "
                      f"got {kind!r}")


class RunningTokenNorm(torch.nn.Module):
    """``[N, T, d]`` tokens -> ``(x - mean) / sqrt(var + eps) * weight + bias`` per channel, with ``mean`` and
    ``var`` running statistics over every token of the training batches (see the module docstring)."""

    def __init__(self, width: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = torch.nn.Parameter(torch.ones(width))
        self.bias = torch.nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.training and self.weight.requires_grad and tokens.numel():
            self._update(tokens.detach())
        # in float32 (the buffers' dtype), back to the tokens' dtype at the end (bf16 under autocast)
        scale = self.weight.float() / torch.sqrt(self.running_var.float() + self.eps)
        out = (tokens.float() - self.running_mean.float()) * scale + self.bias.float()
        return out.to(tokens.dtype)

    @torch.no_grad()
    def _update(self, tokens: torch.Tensor) -> None:
        flat = tokens.reshape(-1, tokens.shape[-1]).float()
        mean, var = flat.mean(dim=0), flat.var(dim=0, unbiased=False)
        first = self.batches_seen == 0  # the first batch's statistics, not the 0 / 1 the buffers start at
        # torch.where, not an ``if`` on the count: no device-to-host sync on every training step
        for buffer, batch in ((self.running_mean, mean), (self.running_var, var)):
            batch = batch.to(buffer.dtype)
            buffer.copy_(torch.where(first, batch, buffer + self.momentum * (batch - buffer)))
        self.batches_seen += 1


def attach_token_norm(connector: torch.nn.Module, kind: str, width: int) -> None:
    """Give ``connector`` its ``image_token_norm`` sub-module (``kind`` from ``check_token_norm``)."""
    add_to_connector(connector, ATTRIBUTE, RunningTokenNorm(width))


def token_norm(connector: torch.nn.Module) -> RunningTokenNorm | None:
    """The connector's ``image_token_norm`` module, or None when the model has the option off."""
    return getattr(connector, ATTRIBUTE, None)
