"""Model options that live inside the connector (``image_slots``' table, ``image_token_norm``'s statistics): added
as a sub-module named after the option, so they train, freeze and save with the connector."""

from __future__ import annotations

import torch

from babyvlm.core.errors import ConfigError


def add_to_connector(connector: torch.nn.Module, option: str, module: torch.nn.Module) -> None:
    """``module`` as ``connector.<option>``; a connector that is no ``nn.Module``, or that already has an attribute
    of that name, is a ``ConfigError`` naming the option."""
    if not isinstance(connector, torch.nn.Module):
        raise ConfigError(f"model 'babyllava': {option} needs a torch.nn.Module connector, got "
                          f"{type(connector).__name__}")
    if hasattr(connector, option):
        raise ConfigError(f"model 'babyllava': connector {type(connector).__name__} already has an attribute "
                          f"{option!r}; {option} cannot add its module there")
    connector.add_module(option, module)
