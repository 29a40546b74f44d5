"""Rotary position embedding applied in place to q and k in one Triton kernel.

One program per token rotates every query and key head of that token, so the token's cos/sin row is
read once for all heads. Both halves of cos/sin are read (``x1' = x1 c1 - x2 s1``,
``x2' = x2 c2 + x1 s2``), which is exact for any rotary embedding that ``transformers`` produces,
scaled or not. Forward rotates the projection outputs in place (no new q/k tensors); backward applies
the transposed rotation to the incoming gradients into fresh tensors (the gradients may be shared).

Layout: q ``[batch, seq, heads, head_dim]`` and k ``[batch, seq, kv_heads, head_dim]`` with a unit
stride on ``head_dim`` (a ``view`` of a projection output); cos/sin ``[batch or 1, seq, head_dim]``
as ``LlamaRotaryEmbedding`` returns them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .runtime import kernels_can_run, next_power_of_2


@triton.jit
def _rotate_heads(
    X, Y, x_base, y_base, x_head_stride, y_head_stride, n_heads, half, c1, c2, s1, s2,
    BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):
    heads = tl.arange(0, BLOCK_H)
    dims = tl.arange(0, BLOCK_D)
    mask = (heads < n_heads)[:, None] & (dims < half)[None, :]
    x_offsets = x_base + heads[:, None].to(tl.int64) * x_head_stride + dims[None, :]
    y_offsets = y_base + heads[:, None].to(tl.int64) * y_head_stride + dims[None, :]
    x1 = tl.load(X + x_offsets, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(X + x_offsets + half, mask=mask, other=0.0).to(tl.float32)
    y1 = x1 * c1[None, :] - x2 * s1[None, :]
    y2 = x2 * c2[None, :] + x1 * s2[None, :]
    tl.store(Y + y_offsets, y1.to(Y.dtype.element_ty), mask=mask)
    tl.store(Y + y_offsets + half, y2.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rope_kernel(
    Q, K, Q_OUT, K_OUT, COS, SIN,
    q_sb, q_st, q_sh, k_sb, k_st, k_sh,
    qo_sb, qo_st, qo_sh, ko_sb, ko_st, ko_sh,
    cos_sb, cos_st, sin_sb, sin_st,
    seq_len, n_q_heads, n_k_heads, half,
    BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr, BLOCK_D: tl.constexpr, BACKWARD: tl.constexpr,
):
    token = tl.program_id(0)
    b = (token // seq_len).to(tl.int64)
    t = (token % seq_len).to(tl.int64)
    dims = tl.arange(0, BLOCK_D)
    dmask = dims < half
    cos_row = COS + b * cos_sb + t * cos_st + dims
    sin_row = SIN + b * sin_sb + t * sin_st + dims
    c1 = tl.load(cos_row, mask=dmask, other=0.0).to(tl.float32)
    c2 = tl.load(cos_row + half, mask=dmask, other=0.0).to(tl.float32)
    s1 = tl.load(sin_row, mask=dmask, other=0.0).to(tl.float32)
    s2 = tl.load(sin_row + half, mask=dmask, other=0.0).to(tl.float32)
    if BACKWARD:  # the transposed rotation: dx1 = dy1 c1 + dy2 s2, dx2 = dy2 c2 - dy1 s1
        s1, s2 = -s2, -s1
    _rotate_heads(Q, Q_OUT, b * q_sb + t * q_st, b * qo_sb + t * qo_st, q_sh, qo_sh, n_q_heads, half,
                  c1, c2, s1, s2, BLOCK_HQ, BLOCK_D)
    _rotate_heads(K, K_OUT, b * k_sb + t * k_st, b * ko_sb + t * ko_st, k_sh, ko_sh, n_k_heads, half,
                  c1, c2, s1, s2, BLOCK_HK, BLOCK_D)


def _table_strides(table: torch.Tensor) -> tuple[int, int]:
    """(batch, seq) strides of a cos/sin table; batch stride 0 when shared by the batch."""
    if table.dim() == 2:
        return 0, table.stride(0)
    return (0 if table.shape[0] == 1 else table.stride(0)), table.stride(1)


def _heads_view(t: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, int]:
    """Strides of ``t`` seen as ``[B, T, heads, head_dim]`` without making a view (autograd cannot
    rotate two views in place in one Function), and its head count."""
    if t.dim() == 4:
        return (t.stride(0), t.stride(1), t.stride(2)), t.shape[2]
    return (t.stride(0), t.stride(1), head_dim), t.shape[2] // head_dim


def _launch(q, k, q_out, k_out, cos, sin, head_dim: int, backward: bool) -> None:
    batch, seq_len = q.shape[:2]
    if batch * seq_len == 0:
        return
    (q_strides, n_q_heads), (k_strides, n_k_heads) = _heads_view(q, head_dim), _heads_view(k, head_dim)
    (qo_strides, _), (ko_strides, _) = _heads_view(q_out, head_dim), _heads_view(k_out, head_dim)
    half = head_dim // 2
    _rope_kernel[(batch * seq_len,)](
        q, k, q_out, k_out, cos, sin,
        *q_strides, *k_strides, *qo_strides, *ko_strides,
        *_table_strides(cos), *_table_strides(sin),
        seq_len, n_q_heads, n_k_heads, half,
        BLOCK_HQ=next_power_of_2(n_q_heads), BLOCK_HK=next_power_of_2(n_k_heads),
        BLOCK_D=next_power_of_2(half), BACKWARD=backward, num_warps=4,
    )


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


class _RopeFunction(torch.autograd.Function):
    """Rotates in place when q and k are not views (the usual projection outputs); into new tensors
    otherwise, since autograd cannot take an in-place Function on views that returns two tensors."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, head_dim: int):
        cos, sin = _unit_last_stride(cos), _unit_last_stride(sin)
        in_place = not (q._is_view() or k._is_view())
        q_out = q if in_place else torch.empty(q.shape, dtype=q.dtype, device=q.device)
        k_out = k if in_place else torch.empty(k.shape, dtype=k.dtype, device=k.device)
        _launch(q, k, q_out, k_out, cos, sin, head_dim, backward=False)
        if in_place:
            ctx.mark_dirty(q, k)
        ctx.save_for_backward(cos, sin)
        ctx.head_dim = head_dim
        return q_out, k_out

    @staticmethod
    def backward(ctx, dq: torch.Tensor, dk: torch.Tensor):
        cos, sin = ctx.saved_tensors
        dq, dk = _unit_last_stride(dq), _unit_last_stride(dk)
        dq_in = torch.empty(dq.shape, dtype=dq.dtype, device=dq.device)
        dk_in = torch.empty(dk.shape, dtype=dk.dtype, device=dk.device)
        _launch(dq, dk, dq_in, dk_in, cos, sin, ctx.head_dim, backward=True)
        return dq_in, dk_in, None, None, None


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_reference(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   head_dim: int | None = None):
    """``transformers``' ``apply_rotary_pos_emb`` for the ``[batch, seq, heads, head_dim]`` layout
    (or ``[batch, seq, heads * head_dim]`` with ``head_dim``)."""
    if q.dim() == 3:
        q4, k4 = q.unflatten(-1, (-1, head_dim)), k.unflatten(-1, (-1, head_dim))
        q_rot, k_rot = rope_reference(q4, k4, cos, sin)
        return q_rot.flatten(-2), k_rot.flatten(-2)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def apply_rotary_(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                  head_dim: int | None = None):
    """Rotate q and k and return them: ``[B, T, H, D]`` tensors, or ``[B, T, H * D]`` projection
    outputs with ``head_dim`` (the in-place fast path). In place with Triton when q and k are not
    views; rotated copies when they are, or when the kernels cannot run on their device (PyTorch)."""
    head_dim = _check_rope_shapes(q, k, cos, sin, head_dim)
    if not kernels_can_run(q, k, cos, sin):
        return rope_reference(q, k, cos, sin, head_dim)
    if q.stride(-1) != 1 or k.stride(-1) != 1:
        raise ValueError("apply_rotary_: q and k need a unit stride on head_dim (rotate before transposing)")
    return _RopeFunction.apply(q, k, cos, sin, head_dim)


def _check_rope_shapes(q, k, cos, sin, head_dim: int | None) -> int:
    if q.dim() != k.dim() or q.dim() not in (3, 4) or q.shape[:2] != k.shape[:2]:
        raise ValueError(f"apply_rotary_: q {tuple(q.shape)} and k {tuple(k.shape)} must be [B, T, heads, head_dim]"
                         " or [B, T, heads * head_dim]")
    if q.dim() == 4:
        if head_dim not in (None, q.shape[-1]) or k.shape[-1] != q.shape[-1]:
            raise ValueError(f"apply_rotary_: head_dim of q {tuple(q.shape)} and k {tuple(k.shape)} disagree")
        head_dim = q.shape[-1]
    elif head_dim is None or q.shape[-1] % head_dim or k.shape[-1] % head_dim:
        raise ValueError(f"apply_rotary_: q {tuple(q.shape)}, k {tuple(k.shape)} need a head_dim dividing the last dim")
    if head_dim % 2:
        raise ValueError(f"apply_rotary_: head_dim {head_dim} must be even")
    for name, table in (("cos", cos), ("sin", sin)):
        if table.dim() not in (2, 3) or table.shape[-2:] != (q.shape[1], head_dim) or (
                table.dim() == 3 and table.shape[0] not in (1, q.shape[0])):
            raise ValueError(f"apply_rotary_: {name} {tuple(table.shape)} does not match q {tuple(q.shape)}")
    return head_dim
