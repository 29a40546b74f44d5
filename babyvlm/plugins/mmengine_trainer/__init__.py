"""Trainer ``mmengine``: one training phase on mmengine's ``Runner`` (the default in bundled configs).

Iteration-based; AdamW with parameter groups (``lr_per_part``: e.g. the ViT's own lr in phase 3);
linear warmup + cosine (the schedule shared with ``simple``); gradient clipping and accumulation; bf16
autocast on CPU and CUDA (``precision="bf16"``); gradient checkpointing; device chosen automatically;
checkpoints every ``checkpoint_every`` iterations (weights as safetensors, optimizer / scheduler / RNG /
sampler state beside them as safetensors + JSON, SHA-256 checked, never pickled: ``checkpoints.py``) and
exact resume; TensorBoard events and a JSONL metrics log; ETA and throughput in the progress lines; DDP
under ``torchrun`` (gloo on CPU), FSDP on CUDA. The model decides what trains (``freeze_backbones(stage)``); per-part counts are logged first.

Objectives: ``vlm`` (the model's own loss on store samples) and ``causal_lm`` (``0-language``: utterances
packed into fixed-length blocks). The ``dino`` trainer plugs its own objective into the same runner.
Importing this package (plugin discovery) does not import torch or mmengine.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["MMEngineTrainer", "ResumableSampler", "PackedTextDataset"]
__getattr__ = lazy_exports(__name__, {"MMEngineTrainer": "trainer", "ResumableSampler": "sampler",
                                      "PackedTextDataset": "packing"})


@hookimpl
def register_trainers(register):
    register("mmengine", "babyvlm.plugins.mmengine_trainer.trainer:MMEngineTrainer")
