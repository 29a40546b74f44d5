"""Trainer ``dino`` (phase ``0-vision``): DINO self-distillation of the model's image encoder on frames
from the store, on the ``mmengine`` trainer's runner (same checkpoints, exact resume, DDP, logs).

Student = the model's encoder + a projection head (3-layer MLP, L2-normalised bottleneck, weight-normed
prototypes); teacher = their EMA (momentum cosine ``teacher_momentum`` -> 1). Multi-crop sized to the
encoder (2 global crops at its image size, scale 0.4-1; ``local_crops`` at 96/224 of it, scale
0.05-0.4; flip, colour jitter, greyscale, solarise on the second global crop), keyed by the sampler's
draw so a resumed run sees the same crops. Teacher outputs are centred (EMA 0.9) and sharpened
(temperature warm-up 0.04 -> 0.07); student temperature 0.1; the last layer is frozen for the first
``freeze_last_layer`` steps. Reference settings: facebookresearch/dino (see docs/training.md).

Quality: a scikit-learn k-NN probe on annotated object crops of the held-out recordings (bank and
queries from the two halves of each recording), every ``probe_every`` steps and at
the end, beside its chance level (the majority class share) and the untrained encoder's score.
Collapse: the teacher's mean per-sample entropy near its maximum (uniform outputs) or the entropy of
its batch-mean distribution near zero (one prototype for everything) is reported as ``collapse``.
At the end the teacher's backbone becomes the model's encoder. Importing this package imports no torch.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("dino", "babyvlm.plugins.dino.trainer:DinoTrainer")
