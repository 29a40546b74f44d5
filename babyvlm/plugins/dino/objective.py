"""The DINO objective: student (encoder + head) against an EMA teacher's centred, sharpened outputs
over every (teacher global crop, other student crop) pair; reports the teacher's entropies."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from babyvlm.plugins.dino.head import DinoHead


class EncoderWithHead(nn.Module):
    def __init__(self, backbone: nn.Module, head: DinoHead):
        super().__init__()
        self.backbone, self.head = backbone, head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images).float().mean(dim=1)  # any encoder's tokens -> one vector per image

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class DinoObjective(nn.Module):
    def __init__(self, encoder: nn.Module, out_dim: int, hidden_dim: int, bottleneck_dim: int,
                 student_temp: float = 0.1, center_momentum: float = 0.9, head_bn: bool = False):
        super().__init__()
        head = DinoHead(encoder.hidden_size, out_dim, hidden_dim, bottleneck_dim, batch_norm=head_bn)
        self.student = EncoderWithHead(encoder, head)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.student_temp, self.center_momentum, self.out_dim = student_temp, center_momentum, out_dim
        self.teacher_temp = 0.04  # set every step by the schedule hook
        self.freeze_last_layer = False
        for param in self.student.head.last_layer_parameters():
            param.register_hook(lambda grad: torch.zeros_like(grad) if self.freeze_last_layer else grad)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        global_crops = batch["global_crops"].transpose(0, 1).flatten(0, 1)  # crop-major: [2B, 3, S, S]
        crops = [global_crops]
        if "local_crops" in batch:
            crops.append(batch["local_crops"].transpose(0, 1).flatten(0, 1))
        batch_size = batch["global_crops"].shape[0]
        with torch.no_grad():
            teacher_logits = self.teacher(global_crops).float()
            teacher_probs = torch.softmax((teacher_logits - self.center) / self.teacher_temp, dim=-1)
        student_logits = torch.cat([self.student(c).float() for c in crops]) / self.student_temp
        student_chunks = student_logits.split(batch_size)
        teacher_chunks = teacher_probs.split(batch_size)
        total, terms = student_logits.new_zeros(()), 0
        for t_index, target in enumerate(teacher_chunks):
            for s_index, chunk in enumerate(student_chunks):
                if s_index == t_index:
                    continue
                total = total + torch.sum(-target * torch.log_softmax(chunk, dim=-1), dim=-1).mean()
                terms += 1
        self._update_center(teacher_logits)
        return {"loss": total / terms, **self.entropies(teacher_probs),
                "n_samples": torch.tensor(float(batch_size)), "n_tokens": torch.tensor(0.0)}

    def entropies(self, probs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean per-sample entropy and the entropy of the batch-mean distribution, as fractions of log K."""
        log_k = math.log(self.out_dim)
        per_sample = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
        mean = probs.mean(0)
        batch = -(mean * mean.clamp_min(1e-12).log()).sum()
        return {"teacher_entropy": (per_sample / log_k).detach(), "batch_entropy": (batch / log_k).detach()}

    @torch.no_grad()
    def _update_center(self, teacher_logits: torch.Tensor) -> None:
        batch_center = teacher_logits.mean(dim=0, keepdim=True)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_center)
            batch_center /= torch.distributed.get_world_size()
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        for student, teacher in zip(self.student.parameters(), self.teacher.parameters(), strict=True):
            teacher.mul_(momentum).add_(student.detach(), alpha=1 - momentum)
