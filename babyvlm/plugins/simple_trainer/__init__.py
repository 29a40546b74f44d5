"""Trainer ``simple``: a single-process AdamW loop for one training phase.

Implements the published phase settings (AdamW, cosine schedule with linear warmup, gradient
clipping) and trains only the parts a phase names (``train=["connector"]`` for alignment); every
other part is frozen. It is deliberately small: enough for CPU demos and tests, and the reference
other trainer plugins are checked against.

The code lives in ``trainer.py``; importing this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["SimpleTrainer", "TrainResult", "cosine_with_warmup"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "trainer"))


@hookimpl
def register_trainers(register):
    register("simple", "babyvlm.plugins.simple_trainer.trainer:SimpleTrainer")
