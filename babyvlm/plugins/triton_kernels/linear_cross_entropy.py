"""Cross-entropy fused with the output projection: the loss of ``hidden @ weight.T`` without ever
holding the full ``tokens x vocab`` logits.

Liger-Kernel's scheme: the forward walks the tokens in chunks; per chunk, cuBLAS computes the logits,
a Triton kernel does an online (max, sum-exp) pass and then overwrites the logits with
``d loss / d logits`` in place, and two more matmuls add that chunk's share to the input and weight
gradients. The backward only scales the stored gradients by the incoming ``grad_output``. Peak extra
memory is one ``chunk x vocab`` buffer instead of ``tokens x vocab`` logits (+ their fp32 copy and
gradient in the unfused path).

Before chunking, rows whose target is ``ignore_index`` are dropped: in the VLM the image tokens (197
per image) and prompt tokens carry no loss, so their share of the vocab-sized matmuls is skipped.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from babyvlm.core.constants import IGNORE_INDEX

from .runtime import kernels_can_run, next_power_of_2

MAX_BLOCK_V = 8192


@triton.jit
def _cross_entropy_kernel(
    LOGITS, TARGETS, LOSS, logits_row_stride,
    N_COLS: tl.constexpr, BLOCK_V: tl.constexpr, WRITE_GRAD: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = LOGITS + row * logits_row_stride
    target = tl.load(TARGETS + row)
    cols = tl.arange(0, BLOCK_V)
    # Online softmax statistics in fp32; the vocab loop bound is a compile-time constant.
    running_max = -float("inf")
    running_sum = 0.0
    for start in range(0, N_COLS, BLOCK_V):
        mask = start + cols < N_COLS
        x = tl.load(row_ptr + start + cols, mask=mask, other=-float("inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(x, axis=0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
        running_max = new_max
    lse = running_max + tl.log(running_sum)
    target_logit = tl.load(row_ptr + target).to(tl.float32)
    tl.store(LOSS + row, lse - target_logit)
    if WRITE_GRAD:  # d loss_row / d logits = softmax - onehot, written over the logits
        for start in range(0, N_COLS, BLOCK_V):
            offsets = start + cols
            mask = offsets < N_COLS
            x = tl.load(row_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            grad = tl.exp(x - lse) - tl.where(offsets == target, 1.0, 0.0)
            tl.store(row_ptr + offsets, grad.to(LOGITS.dtype.element_ty), mask=mask)


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The matmul dtype: autocast's when it is on (as ``nn.Linear`` would use), else the promoted one."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(hidden.dtype, weight.dtype)


def default_chunk_size(n_rows: int, hidden_size: int, vocab_size: int) -> int:
    """Liger's rule: a logits chunk about as large as the hidden states (chunk x V ~ N x d)."""
    return next_power_of_2(triton.cdiv(n_rows, max(1, triton.cdiv(vocab_size, hidden_size))))


class _LinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index: int, reduction: str, chunk_size: int | None,
                need_input_grad: bool, need_weight_grad: bool):
        # the caller decides what needs gradients: ctx.needs_input_grad ignores no_grad/inference_mode
        n_valid, rows = _supervised_rows(targets, ignore_index, weight.shape[0])
        dtype = _compute_dtype(hidden, weight)
        h = (hidden if rows is None else hidden.index_select(0, rows)).to(dtype)
        t = (targets if rows is None else targets.index_select(0, rows)).contiguous()
        w = weight.to(dtype)
        scale = 1.0 / max(n_valid, 1) if reduction == "mean" else 1.0
        loss_rows, grad_h, grad_w = _chunked_loss_and_grads(h, w, t, chunk_size, need_input_grad, need_weight_grad)
        loss = loss_rows.sum() * scale
        grad_input = None
        if need_input_grad:
            grad_input = grad_h if rows is None else hidden.new_zeros(hidden.shape, dtype=grad_h.dtype).index_copy_(0, rows, grad_h)
            grad_input = grad_input.to(hidden.dtype)
        grad_weight = grad_w.to(weight.dtype) if need_weight_grad else None
        ctx.save_for_backward(*(g for g in (grad_input, grad_weight) if g is not None))
        ctx.has_grads = (grad_input is not None, grad_weight is not None)
        ctx.consumed, ctx.scale = False, scale
        return loss

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if ctx.consumed:  # the stored gradients were scaled in place by the first backward
            raise RuntimeError("linear_cross_entropy: backward through the same loss twice is not supported "
                               "(its gradients are computed in the forward and scaled in place)")
        ctx.consumed = True
        saved = list(ctx.saved_tensors)
        # The stored gradients are per-row sums (unscaled): the 1/N of the mean is applied here together
        # with grad_output (e.g. a loss scale), so fp16 gradients neither underflow nor overflow early.
        factor = grad_output * ctx.scale
        grads = [saved.pop(0).mul_(factor) if has else None for has in ctx.has_grads]
        return grads[0], grads[1], None, None, None, None, None, None


def _supervised_rows(targets: torch.Tensor, ignore_index: int, vocab: int) -> tuple[int, torch.Tensor | None]:
    """(number of supervised rows, their indices or None when all are). One host sync, which also
    checks the targets: an out-of-range id would otherwise read outside the logits row."""
    keep = targets != ignore_index
    if not targets.numel():
        return 0, None
    kept = torch.where(keep, targets, 0)
    n_valid, low, high = torch.stack([keep.sum(), kept.min(), kept.max()]).tolist()
    if low < 0 or high >= vocab:
        raise ValueError(f"linear_cross_entropy: targets must lie in [0, {vocab}) or equal {ignore_index}; "
                         f"found values in [{low}, {high}]")
    return n_valid, (keep.nonzero().squeeze(1) if n_valid < targets.numel() else None)


def _chunked_loss_and_grads(h, w, t, chunk_size: int | None, need_input_grad: bool, need_weight_grad: bool):
    n_rows, hidden_size = h.shape
    vocab = w.shape[0]
    write_grad = need_input_grad or need_weight_grad
    loss_rows = torch.empty(n_rows, dtype=torch.float32, device=h.device)
    grad_h = torch.empty_like(h) if need_input_grad else None
    grad_w = torch.zeros_like(w) if need_weight_grad else None
    chunk = chunk_size or default_chunk_size(n_rows, hidden_size, vocab)
    block_v = min(MAX_BLOCK_V, next_power_of_2(vocab))
    for start in range(0, n_rows, chunk):
        h_chunk = h[start:start + chunk]
        logits = h_chunk @ w.t()  # cuBLAS; becomes d loss / d logits in place below
        _cross_entropy_kernel[(h_chunk.shape[0],)](
            logits, t[start:start + chunk], loss_rows[start:start + chunk], logits.stride(0),
            N_COLS=vocab, BLOCK_V=block_v, WRITE_GRAD=write_grad, num_warps=8 if block_v >= 4096 else 4,
        )
        if need_input_grad:
            torch.mm(logits, w, out=grad_h[start:start + chunk])
        if need_weight_grad:
            grad_w.addmm_(logits.t(), h_chunk)
    return loss_rows, grad_h, grad_w


def linear_cross_entropy_reference(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                   ignore_index: int = IGNORE_INDEX, reduction: str = "mean") -> torch.Tensor:
    """The unfused definition: full logits (upcast to fp32 as ``transformers`` does), then cross-entropy."""
    logits = hidden @ weight.to(hidden.dtype).t()
    return nn.functional.cross_entropy(logits.float(), targets, ignore_index=ignore_index, reduction=reduction)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = IGNORE_INDEX, reduction: str = "mean",
                         chunk_size: int | None = None) -> torch.Tensor:
    """Cross-entropy of ``hidden[N, d] @ weight[V, d].T`` against ``targets[N]`` without full logits.

    ``reduction="mean"`` averages over targets != ``ignore_index`` (0 when there are none, rather than
    PyTorch's nan); ``"sum"`` adds them up. No bias, no label smoothing.
    """
    _check_inputs(hidden, weight, targets, reduction)
    if not kernels_can_run(hidden, weight, targets):
        return linear_cross_entropy_reference(hidden, weight, targets, ignore_index, reduction)
    # Gradients are computed in the forward, so only when autograd will ask for them: under no_grad or
    # inference_mode (evaluation) the grad matmuls, buffers and in-place grad pass are skipped entirely.
    grad_mode = torch.is_grad_enabled()
    return _LinearCrossEntropyFunction.apply(hidden, weight, targets, ignore_index, reduction, chunk_size,
                                             grad_mode and hidden.requires_grad, grad_mode and weight.requires_grad)


def _check_inputs(hidden, weight, targets, reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"linear_cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_cross_entropy: hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)} "
                         "must be [N, d] and [V, d]")
    if targets.shape != hidden.shape[:1] or targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"linear_cross_entropy: targets {tuple(targets.shape)} {targets.dtype} must be integer [N]")


class TritonLinearCrossEntropy(nn.Module):
    """``loss_fn(hidden[N, d], weight[V, d], targets[N]) -> mean loss over targets != -100``, fused."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, chunk_size: int | None = None) -> None:
        super().__init__()
        self.ignore_index, self.chunk_size = ignore_index, chunk_size

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(hidden, weight, targets, self.ignore_index, "mean", self.chunk_size)
