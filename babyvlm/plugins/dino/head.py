"""The DINO projection head: 3-layer MLP -> L2-normalised bottleneck -> weight-normed prototypes."""

from __future__ import annotations

import torch
from torch import nn


class DinoHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 batch_norm: bool = False):
        super().__init__()
        norm = (lambda: nn.BatchNorm1d(hidden_dim)) if batch_norm else nn.Identity
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), norm(), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 norm(), nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        last = nn.Linear(bottleneck_dim, out_dim, bias=False)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)
        # norm_last_layer: the prototypes' lengths stay 1 (DINO's default; steadier for small data)
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad_(False)
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        projected = nn.functional.normalize(self.mlp(features), dim=-1)
        return self.last_layer(projected)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return [self.last_layer.parametrizations.weight.original1]
