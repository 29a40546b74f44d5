"""What each training stage trains, for BabyLLaVA (prismatic-style: the model, not the trainer, decides).

A model has three parts, ``encoder``, ``connector`` and ``language_model``; ``STAGES`` maps the paper's
training stages to the parts each one trains (everything else is frozen):

=================  =====================================================
``0-language``     language_model (LM pretraining on transcripts)
``0-vision``       encoder (DINO on frames)
``1-alignment``    connector
``2-joint``        connector, language_model
``3-instruction``  encoder, connector, language_model
=================  =====================================================

``BabyLLaVA.freeze_backbones(stage, train=None)`` applies a stage: ``train`` (a list of parts, or of
dotted sub-modules such as ``language_model.lm_head``) replaces the stage's parts when given, and then
``stage`` is only a label for messages. The model config's ``freeze`` list always wins in one way only:
what it names stays frozen in every stage, and a stage or ``train`` list that asks to train a frozen
part (or something inside one) is a ``ConfigError`` naming both, never a silent override. A frozen
sub-module inside a trained part (``freeze=["language_model.model.embed_tokens"]`` with ``2-joint``)
is not a conflict: the rest of the part trains and the sub-module stays frozen.

It returns ``{part: {"params": n, "trainable": n}}``; ``describe_trainable`` makes that a log line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from babyvlm.core.constants import LANGUAGE_STAGE
from babyvlm.core.errors import ConfigError

if TYPE_CHECKING:  # importing the stage table needs no torch
    import torch

PARTS: tuple[str, ...] = ("encoder", "connector", "language_model")
STAGES: dict[str, tuple[str, ...]] = {
    LANGUAGE_STAGE: ("language_model",),
    "0-vision": ("encoder",),
    "1-alignment": ("connector",),
    "2-joint": ("connector", "language_model"),
    "3-instruction": ("encoder", "connector", "language_model"),
}


def as_names(value: str | Sequence[str] | None, what: str) -> list[str]:
    """A part list from a config value (a single name is a one-item list); anything else is refused."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) and name for name in names):
        raise ConfigError(f"model 'babyllava': {what} must be a list of part names ({', '.join(PARTS)}), "
                          f"got {value!r}")
    return list(names)


def trained_parts(stage: str, train: str | Sequence[str] | None) -> list[str]:
    """The parts (or sub-modules) ``stage`` trains; an explicit ``train`` list replaces them."""
    if train is not None:
        names = as_names(train, "train")
        if not names:
            raise ConfigError(f"model 'babyllava': train=[] for stage {stage!r} trains nothing; name at least "
                              f"one part ({', '.join(PARTS)})")
        return names
    if stage not in STAGES:
        raise ConfigError(f"model 'babyllava': unknown training stage {stage!r}. Stages: {', '.join(STAGES)} "
                          f"(or give train=[parts] explicitly)")
    return list(STAGES[stage])


def check_not_frozen(stage: str, trained: Sequence[str], frozen: Sequence[str], explicit: bool) -> None:
    """A ``ConfigError`` when something to train is, or lies inside, a part the model config freezes."""
    for name in trained:
        for held in frozen:
            if name == held or name.startswith(held + "."):
                asked = f"train={list(trained)!r} (stage {stage!r})" if explicit else f"stage {stage!r}"
                raise ConfigError(f"model 'babyllava': {asked} trains {name!r}, but the model config freezes "
                                  f"{held!r} (freeze={list(frozen)!r}); remove it from one of the two")


def module_of(model: torch.nn.Module, name: str, what: str) -> torch.nn.Module:
    """The part or dotted sub-module ``name``; a ``ConfigError`` listing the parts when there is none."""
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise ConfigError(f"model 'babyllava': cannot {what} {name!r}: no such part or sub-module "
                          f"(parts: {', '.join(PARTS)})") from exc


def count(module: torch.nn.Module) -> dict[str, int]:
    params = list(module.parameters())
    return {"params": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}


def human_count(value: int) -> str:
    """``1234567`` -> ``1.235M``: parameter counts for people."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:.4g}{suffix}"
    return str(value)


def describe_trainable(counts: Mapping[str, Mapping[str, int]]) -> str:
    """One log line from ``freeze_backbones``' counts:
    ``trainable: encoder frozen (1.2M), connector 33.0K/33.0K, ...; total 1.1M of 2.3M (48.1%)``."""
    pieces = []
    for part, numbers in counts.items():
        params, trainable = int(numbers["params"]), int(numbers["trainable"])
        pieces.append(f"{part} frozen ({human_count(params)})" if trainable == 0 and params
                      else f"{part} {human_count(trainable)}/{human_count(params)}")
    total = sum(int(numbers["params"]) for numbers in counts.values())
    trainable = sum(int(numbers["trainable"]) for numbers in counts.values())
    share = f" ({100 * trainable / total:.1f}%)" if total else ""
    return f"trainable: {', '.join(pieces)}; total {human_count(trainable)} of {human_count(total)}{share}"
