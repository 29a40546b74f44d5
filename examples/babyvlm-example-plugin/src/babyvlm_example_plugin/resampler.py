"""The ``query_resampler`` connector: a small Q-Former-like resampler.

A fixed set of learned queries attends over the encoder's N tokens (one cross-attention layer and an
MLP, each with a residual), so every image becomes ``num_queries`` language-model tokens whatever N is:
cheaper sequences than a per-token projector such as ``mlp2x_gelu``. ``output_tokens`` tells the
composed model how many positions each ``<image>`` becomes.
"""

from __future__ import annotations

import torch

from babyvlm.core.errors import ConfigError, ModelInputError


class QueryResampler(torch.nn.Module):
    """``[B, N, in_features]`` -> ``[B, num_queries, out_features]``."""

    def __init__(self, in_features: int, out_features: int, num_queries: int = 4, num_heads: int = 4,
                 dropout: float = 0.0):
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features),
                             ("num_queries", num_queries), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"connector 'query_resampler': {label} must be a positive integer, got {value!r}")
        if out_features % num_heads:
            raise ConfigError(f"connector 'query_resampler': out_features ({out_features}) must be divisible by "
                              f"num_heads ({num_heads})")
        self.in_features, self.out_features, self.num_queries = in_features, out_features, num_queries
        self.queries = torch.nn.Parameter(torch.randn(num_queries, out_features) * 0.02)
        self.project_in = torch.nn.Linear(in_features, out_features)
        self.attention = torch.nn.MultiheadAttention(out_features, num_heads, dropout=dropout, batch_first=True)
        self.norm_attention = torch.nn.LayerNorm(out_features)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(out_features, 2 * out_features), torch.nn.GELU(),
                                       torch.nn.Linear(2 * out_features, out_features))
        self.norm_mlp = torch.nn.LayerNorm(out_features)

    def output_tokens(self, input_tokens: int) -> int:
        """Always ``num_queries``, whatever the encoder gives."""
        return self.num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 3 or features.shape[-1] != self.in_features:
            raise ModelInputError(f"connector 'query_resampler': expected features [batch, tokens, {self.in_features}], "
                              f"got {list(features.shape)}")
        keys = self.project_in(features)
        queries = self.queries.unsqueeze(0).expand(features.shape[0], -1, -1)
        attended, _ = self.attention(queries, keys, keys, need_weights=False)
        hidden = self.norm_attention(queries + attended)
        return self.norm_mlp(hidden + self.mlp(hidden))
