"""The connector modules ``MLP2xGELU`` (``mlp2x_gelu``) and ``LinearConnector`` (``linear``).

The package docstring (``babyvlm/plugins/connectors/__init__.py``) describes their role and LLaVA layout.
"""

from __future__ import annotations

import torch

from babyvlm.core.errors import ConfigError


def _check_sizes(name: str, in_features: int, out_features: int) -> None:
    for label, value in (("in_features", in_features), ("out_features", out_features)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"connector {name!r}: {label} must be a positive integer, got {value!r}")


class MLP2xGELU(torch.nn.Module):
    """Linear(in -> out) -> GELU -> Linear(out -> out)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        _check_sizes("mlp2x_gelu", in_features, out_features)
        self.in_features, self.out_features = in_features, out_features
        self.linear_1 = torch.nn.Linear(in_features, out_features)
        self.act = torch.nn.GELU()  # exact (erf) GELU, the same function as HF's "gelu"
        self.linear_2 = torch.nn.Linear(out_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))

    def output_tokens(self, input_tokens: int) -> int:
        """Applied to each token independently: as many tokens out as in."""
        return int(input_tokens)

    # ---- Hugging Face LLaVA export protocol ------------------------------------------------
    def llava_projector_config(self) -> dict:
        return {"projector_hidden_act": "gelu", "multimodal_projector_bias": True}

    def llava_projector_state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.state_dict())

    def load_llava_projector_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, strict=True)


class LinearConnector(torch.nn.Module):
    """A single Linear(in -> out), LLaVA-1.0 style."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        _check_sizes("linear", in_features, out_features)
        self.in_features, self.out_features = in_features, out_features
        self.proj = torch.nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)

    def output_tokens(self, input_tokens: int) -> int:
        """Applied to each token independently: as many tokens out as in."""
        return int(input_tokens)
