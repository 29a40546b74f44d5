"""Fused RMSNorm (LLaMA's): one Triton pass forward, one backward with the weight-grad reduction fused.

Forward: one program per row, ``BLOCK = next_pow2(width)``; the row's ``rstd`` (fp32) is saved so the
backward never recomputes the mean square. Backward: a grid-stride kernel over tiles of rows; each
program keeps a running fp32 sum of its rows' weight gradients in registers and writes one partial
row, so the weight gradient costs one small ``sum`` instead of a second pass over the activations.

Numerics follow ``transformers``' ``LlamaRMSNorm``: statistics in fp32, the normalised value rounded to
the input dtype before the weight multiply, output in ``promote(x.dtype, weight.dtype)``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from .runtime import kernels_can_run, next_power_of_2, persistent_programs, warps_for_block

BACKWARD_TILE_ELEMENTS = 4096  # rows per backward tile = this / width: several rows' loads in flight
MAX_FUSED_WIDTH = 65536  # one row must fit a program's registers; wider rows take the PyTorch path


@triton.jit
def _rms_norm_forward_kernel(X, W, Y, RSTD, x_row_stride, y_row_stride, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    normed = (x * rstd).to(X.dtype.element_ty).to(tl.float32)  # LlamaRMSNorm rounds here
    tl.store(Y + row * y_row_stride + cols, (normed * w).to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rms_norm_backward_kernel(
    DY, X, W, RSTD, DX, DW_PARTIAL,
    dy_row_stride, x_row_stride, dx_row_stride,
    n_rows, n_cols, n_programs,
    TILES_PER_PROGRAM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_mask = cols < n_cols
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for step in range(0, TILES_PER_PROGRAM):
        tile = pid + step * n_programs  # tiles past the end are fully masked
        rows = (tile * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
        row_mask = rows < n_rows
        mask = row_mask[:, None] & col_mask[None, :]
        x = tl.load(X + rows[:, None] * x_row_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + rows[:, None] * dy_row_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + rows, mask=row_mask, other=0.0)
        x_hat = x * rstd[:, None]
        dw_acc += tl.sum(dy * x_hat.to(X.dtype.element_ty).to(tl.float32), axis=0)
        g = dy * w[None, :]
        mean_g_xhat = tl.sum(g * x_hat, axis=1) / n_cols
        dx = rstd[:, None] * (g - x_hat * mean_g_xhat[:, None])
        tl.store(DX + rows[:, None] * dx_row_stride + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
    tl.store(DW_PARTIAL + pid.to(tl.int64) * n_cols + cols, dw_acc, mask=col_mask)


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    rows = t.reshape(-1, t.shape[-1])
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def _backward_grid(device: torch.device, n_tiles: int) -> tuple[int, int]:
    """(tiles per program, programs). The loop count is a power of two and a compile-time constant:
    few distinct compilations across sequence lengths, and no runtime loop bound (which the CPU
    interpreter of triton 3.6 cannot take under numpy >= 2.4)."""
    target = persistent_programs(device, n_tiles)
    tiles_per_program = next_power_of_2(triton.cdiv(n_tiles, target))
    return tiles_per_program, triton.cdiv(n_tiles, tiles_per_program)


class _RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        x_rows = _as_rows(x)
        n_rows, n_cols = x_rows.shape
        y = torch.empty((n_rows, n_cols), dtype=torch.promote_types(x.dtype, weight.dtype), device=x.device)
        rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        block = next_power_of_2(n_cols)
        if n_rows:
            _rms_norm_forward_kernel[(n_rows,)](
                x_rows, weight, y, rstd, x_rows.stride(0), y.stride(0), n_cols, eps,
                BLOCK=block, num_warps=warps_for_block(block),
            )
        ctx.save_for_backward(x_rows, weight, rstd)
        ctx.x_shape = x.shape
        return y.view(*x.shape[:-1], n_cols)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x_rows, weight, rstd = ctx.saved_tensors
        n_rows, n_cols = x_rows.shape
        dy_rows = _as_rows(dy)
        dx = torch.empty_like(x_rows)
        block_n = next_power_of_2(n_cols)
        block_m = max(1, min(16, BACKWARD_TILE_ELEMENTS // block_n))
        tiles_per_program, programs = _backward_grid(x_rows.device, triton.cdiv(n_rows, block_m))
        partial = torch.empty((programs, n_cols), dtype=torch.float32, device=x_rows.device)
        if n_rows:
            _rms_norm_backward_kernel[(programs,)](
                dy_rows, x_rows, weight, rstd, dx, partial,
                dy_rows.stride(0), x_rows.stride(0), dx.stride(0),
                n_rows, n_cols, programs,
                TILES_PER_PROGRAM=tiles_per_program, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps_for_block(block_m * block_n),
            )
        else:
            partial.zero_()
        dw = partial.sum(0).to(weight.dtype) if ctx.needs_input_grad[1] else None
        dx = dx.view(ctx.x_shape) if ctx.needs_input_grad[0] else None
        return dx, dw, None


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``transformers``' LlamaRMSNorm in plain PyTorch (the tests' and the CPU fallback's definition)."""
    x32 = x.to(torch.float32)
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dim; Triton on CUDA (or the interpreter), PyTorch elsewhere."""
    if weight.dim() != 1 or weight.shape[0] != x.shape[-1]:
        raise ValueError(f"rms_norm: weight of shape {tuple(weight.shape)} does not match width {x.shape[-1]}")
    if not kernels_can_run(x, weight) or x.shape[-1] > MAX_FUSED_WIDTH:
        return rms_norm_reference(x, weight, eps)
    return _RMSNormFunction.apply(x, weight.contiguous(), float(eps))


class TritonRMSNorm(nn.Module):
    """Drop-in for ``LlamaRMSNorm`` that shares the original's weight Parameter (same state-dict key)."""

    def __init__(self, weight: nn.Parameter, eps: float) -> None:
        super().__init__()
        self.weight = weight
        self.variance_epsilon = eps

    @classmethod
    def from_module(cls, module: nn.Module) -> TritonRMSNorm:
        return cls(module.weight, module.variance_epsilon)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return rms_norm(hidden_states, self.weight, self.variance_epsilon)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}, triton"
