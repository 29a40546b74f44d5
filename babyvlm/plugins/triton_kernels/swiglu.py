"""Fused SwiGLU (``silu(gate) * up``, the LLaMA MLP activation): one elementwise pass each way.

Forward reads gate and up once and writes the product; nothing but the two inputs is saved. Backward
recomputes ``sigmoid(gate)`` instead of storing ``silu(gate)`` and writes the two input gradients over
the saved gate/up buffers, which are dead after this backward (no extra ``2 x tokens x ffn``
allocation at the peak of the backward). The write is followed by a version bump, so a second
backward through the same graph fails loudly instead of reading overwritten inputs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from .runtime import kernels_can_run

BLOCK = 1024


@triton.jit
def _swiglu_forward_kernel(GATE, UP, OUT, n_elements, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements
    gate = tl.load(GATE + offsets, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(UP + offsets, mask=mask, other=0.0).to(tl.float32)
    silu = gate * tl.sigmoid(gate)
    tl.store(OUT + offsets, (silu * up).to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_backward_kernel(DOUT, GATE, UP, DGATE, DUP, n_elements, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements
    dout = tl.load(DOUT + offsets, mask=mask, other=0.0).to(tl.float32)
    gate = tl.load(GATE + offsets, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(UP + offsets, mask=mask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(gate)
    silu = gate * sig
    dgate = dout * up * sig * (1.0 + gate * (1.0 - sig))
    tl.store(DGATE + offsets, dgate.to(DGATE.dtype.element_ty), mask=mask)
    tl.store(DUP + offsets, (dout * silu).to(DUP.dtype.element_ty), mask=mask)


def _bump_version(t: torch.Tensor) -> None:
    """Mark ``t`` as modified for autograd's saved-tensor checks (a Triton store does not)."""
    t.view(-1)[:0].zero_()


class _SwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        gate_c, up_c = gate.contiguous(), up.contiguous()
        out = torch.empty_like(gate_c)
        n = out.numel()
        if n:
            _swiglu_forward_kernel[(triton.cdiv(n, BLOCK),)](gate_c, up_c, out, n, BLOCK=BLOCK, num_warps=4)
        # Reuse the buffers in backward only if they are private to this op (copies made here).
        ctx.overwrite_inputs = gate_c is not gate and up_c is not up
        ctx.save_for_backward(gate_c, up_c)
        return out

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        gate, up = ctx.saved_tensors
        dout = dout.contiguous()
        overwrite = _may_overwrite(ctx, gate, up)
        dgate = gate if overwrite else torch.empty_like(gate)
        dup = up if overwrite else torch.empty_like(up)
        n = gate.numel()
        if n:
            _swiglu_backward_kernel[(triton.cdiv(n, BLOCK),)](dout, gate, up, dgate, dup, n, BLOCK=BLOCK, num_warps=4)
        if overwrite:
            _bump_version(gate)
            _bump_version(up)
        return dgate, dup


def _may_overwrite(ctx, gate: torch.Tensor, up: torch.Tensor) -> bool:
    """Writing the gradients over gate/up is safe when nothing else can read them afterwards: either
    this op made private copies, or the caller declared them private (``swiglu(..., inputs_private=True)``)."""
    return (ctx.overwrite_inputs or getattr(ctx, "inputs_private", False)) and gate.data_ptr() != up.data_ptr()


class _PrivateInputsSwiGLUFunction(_SwiGLUFunction):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        out = _SwiGLUFunction.forward(ctx, gate, up)
        ctx.inputs_private = True
        return out


def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``act_fn(gate) * up`` as ``transformers``' LlamaMLP computes it with ``hidden_act="silu"``."""
    return nn.functional.silu(gate) * up


def swiglu(gate: torch.Tensor, up: torch.Tensor, inputs_private: bool = False) -> torch.Tensor:
    """``silu(gate) * up``. ``inputs_private=True`` promises that nothing else keeps ``gate``/``up``
    (true inside an MLP, where they are fresh projection outputs), so the backward may reuse them."""
    if gate.shape != up.shape or gate.dtype != up.dtype:
        raise ValueError(f"swiglu: gate {tuple(gate.shape)} {gate.dtype} and up {tuple(up.shape)} {up.dtype} differ")
    if not kernels_can_run(gate, up):
        return swiglu_reference(gate, up)
    function = _PrivateInputsSwiGLUFunction if inputs_private else _SwiGLUFunction
    return function.apply(gate, up)


class TritonSwiGLUMLP(nn.Module):
    """Drop-in for ``LlamaMLP`` (SiLU) that keeps the original projections (same state-dict keys)."""

    def __init__(self, gate_proj: nn.Module, up_proj: nn.Module, down_proj: nn.Module) -> None:
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = gate_proj, up_proj, down_proj

    @classmethod
    def from_module(cls, module: nn.Module) -> TritonSwiGLUMLP:
        return cls(module.gate_proj, module.up_proj, module.down_proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x), inputs_private=True))
