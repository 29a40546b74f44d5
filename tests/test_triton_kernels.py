"""Triton kernels vs their PyTorch references, in the CPU interpreter (TRITON_INTERPRET=1, conftest).

Each kernel runs in the tested dtype; the reference runs in fp32 on the same (already rounded) inputs.
Tolerance: max |kernel - reference| <= TOL[dtype] * max |reference| (per tensor), with TOL fp32 1e-5,
fp16 3e-3, bf16 2e-2 (a few units in the last place of each format).
"""

from __future__ import annotations

import pytest
import torch

import babyvlm.plugins.triton_kernels.linear_cross_entropy as lce
from babyvlm.plugins.triton_kernels.linear_cross_entropy import (
    linear_cross_entropy,
    linear_cross_entropy_reference,
)
from babyvlm.plugins.triton_kernels.rmsnorm import TritonRMSNorm, rms_norm, rms_norm_reference
from babyvlm.plugins.triton_kernels.rope import apply_rotary_, rope_reference
from babyvlm.plugins.triton_kernels.swiglu import swiglu, swiglu_reference

TOL = {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}
ODD_SHAPES = [(3, 37, 61), (5, 123, 257)]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    assert actual.shape == expected.shape, what
    error = (actual.float() - expected.float()).abs().max().item()
    scale = expected.float().abs().max().item()
    assert error <= TOL[dtype] * max(scale, 1e-6), f"{what}: max error {error:.3g} vs scale {scale:.3g} ({dtype})"


def leaf(t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The same values as a ``dtype`` leaf for the kernel and an fp32 leaf for the reference."""
    low = t.to(dtype).requires_grad_()
    return low, low.detach().float().requires_grad_()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---- RMSNorm --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ODD_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_rmsnorm_matches_reference(shape, dtype):
    x, x_ref = leaf(torch.randn(shape) * 3, dtype)
    w, w_ref = leaf(1 + 0.5 * torch.randn(shape[-1]), dtype)
    y = rms_norm(x, w, 1e-5)
    grad = torch.randn(shape).to(dtype)
    y.backward(grad)
    y_ref = rms_norm_reference(x_ref, w_ref, 1e-5)
    y_ref.backward(grad.float())
    assert y.dtype == dtype
    assert_close(y, y_ref, dtype, "output")
    assert_close(x.grad, x_ref.grad, dtype, "input grad")
    assert_close(w.grad, w_ref.grad, dtype, "weight grad")


def test_rmsnorm_bf16_forward_and_mixed_weight_dtype():
    x, x_ref = leaf(torch.randn(3, 37, 61), torch.bfloat16)
    w = torch.rand(61) + 0.5  # fp32 weight on bf16 activations: output promotes to fp32, like LlamaRMSNorm
    y = rms_norm(x, w, 1e-6)
    assert y.dtype == torch.float32
    assert_close(y, rms_norm_reference(x.detach(), w, 1e-6), torch.bfloat16, "output")
    assert_close(rms_norm(x.detach(), w.bfloat16(), 1e-6), rms_norm_reference(x_ref.detach(), w, 1e-6),
                 torch.bfloat16, "bf16 output")


def test_rmsnorm_non_contiguous_input_and_module():
    base = torch.randn(37, 3, 61)
    x = base.transpose(0, 1).requires_grad_()  # rows not contiguous in memory
    module = TritonRMSNorm(torch.nn.Parameter(torch.rand(61) + 0.5), 1e-5)
    y = module(x)
    y.sum().backward()
    x_ref = base.transpose(0, 1).clone().requires_grad_()
    w_ref = module.weight.detach().clone().requires_grad_()
    rms_norm_reference(x_ref, w_ref, 1e-5).sum().backward()
    assert_close(y, rms_norm_reference(x_ref, w_ref, 1e-5), torch.float32, "output")
    assert_close(x.grad, x_ref.grad, torch.float32, "input grad")
    assert_close(module.weight.grad, w_ref.grad, torch.float32, "weight grad")


# ---- SwiGLU ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ODD_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_swiglu_matches_reference(shape, dtype):
    gate, gate_ref = leaf(torch.randn(shape) * 2, dtype)
    up, up_ref = leaf(torch.randn(shape), dtype)
    y = swiglu(gate, up)
    grad = torch.randn(shape).to(dtype)
    y.backward(grad)
    y_ref = swiglu_reference(gate_ref, up_ref)
    y_ref.backward(grad.float())
    assert_close(y, y_ref, dtype, "output")
    assert_close(gate.grad, gate_ref.grad, dtype, "gate grad")
    assert_close(up.grad, up_ref.grad, dtype, "up grad")


def test_swiglu_bf16_forward():
    gate, up = torch.randn(3, 37, 61), torch.randn(3, 37, 61)
    y = swiglu(gate.bfloat16(), up.bfloat16())
    assert y.dtype == torch.bfloat16
    assert_close(y, swiglu_reference(gate.bfloat16().float(), up.bfloat16().float()), torch.bfloat16, "output")


def test_swiglu_private_inputs_reuse_buffers_and_refuse_a_second_backward():
    gate_leaf = torch.randn(3, 37, 61, requires_grad=True)
    up_leaf = torch.randn(3, 37, 61, requires_grad=True)
    y = swiglu(gate_leaf * 1.0, up_leaf * 1.0, inputs_private=True)
    y.sum().backward(retain_graph=True)
    gate_ref, up_ref = gate_leaf.detach().clone().requires_grad_(), up_leaf.detach().clone().requires_grad_()
    swiglu_reference(gate_ref, up_ref).sum().backward()
    assert_close(gate_leaf.grad, gate_ref.grad, torch.float32, "gate grad")
    assert_close(up_leaf.grad, up_ref.grad, torch.float32, "up grad")
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- RoPE -----------------------------------------------------------------------------------
def _rope_tables(batch: int, seq: int, head_dim: int, dtype: torch.dtype, shared: bool):
    angles = torch.randn(1 if shared else batch, seq, head_dim // 2) * 3
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


@pytest.mark.parametrize("dims", [(3, 37, 5, 3, 18), (2, 61, 4, 2, 64)])  # batch, seq, q heads, kv heads, head_dim
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_rope_in_place_on_projection_outputs_matches_reference(dims, dtype):
    batch, seq, n_q, n_kv, head_dim = dims
    x = torch.randn(batch, seq, 16)
    wq, wk = torch.randn(n_q * head_dim, 16) / 4, torch.randn(n_kv * head_dim, 16) / 4
    cos, sin = _rope_tables(batch, seq, head_dim, dtype, shared=batch == 2)
    grads = (torch.randn(batch, seq, n_q * head_dim), torch.randn(batch, seq, n_kv * head_dim))

    def run(rotate, run_dtype):
        x_leaf = x.to(dtype).to(run_dtype).requires_grad_()
        q = torch.nn.functional.linear(x_leaf, wq.to(dtype).to(run_dtype))  # not a view: rotated in place
        k = torch.nn.functional.linear(x_leaf, wk.to(dtype).to(run_dtype))
        q_ptr = q.data_ptr()
        q_rot, k_rot = rotate(q, k, cos.to(run_dtype), sin.to(run_dtype), head_dim)
        torch.autograd.backward((q_rot, k_rot), (grads[0].to(run_dtype), grads[1].to(run_dtype)))
        return q_rot.detach(), k_rot.detach(), x_leaf.grad, q_rot.data_ptr() == q_ptr

    q_rot, k_rot, x_grad, in_place = run(apply_rotary_, dtype)
    q_ref, k_ref, x_grad_ref, _ = run(rope_reference, torch.float32)
    assert in_place
    assert_close(q_rot, q_ref, dtype, "q")
    assert_close(k_rot, k_ref, dtype, "k")
    assert_close(x_grad, x_grad_ref, dtype, "input grad through q and k")


def test_rope_on_4d_views_and_bf16_forward():
    q = torch.randn(3, 37, 5 * 18).bfloat16()
    k = torch.randn(3, 37, 3 * 18).bfloat16()
    cos, sin = _rope_tables(3, 37, 18, torch.bfloat16, shared=False)
    q4, k4 = q.view(3, 37, 5, 18), k.view(3, 37, 3, 18)  # views: rotated into new tensors
    q_ref, k_ref = rope_reference(q4.float(), k4.float(), cos.float(), sin.float())
    q_rot, k_rot = apply_rotary_(q4, k4, cos, sin)
    assert q_rot.dtype == torch.bfloat16 and q_rot.data_ptr() != q4.data_ptr()
    assert_close(q_rot, q_ref, torch.bfloat16, "q")
    assert_close(k_rot, k_ref, torch.bfloat16, "k")


def test_rope_rejects_mismatched_tables():
    q, k = torch.randn(2, 5, 4, 8), torch.randn(2, 5, 2, 8)
    with pytest.raises(ValueError, match="cos"):
        apply_rotary_(q, k, torch.randn(2, 6, 8), torch.randn(2, 6, 8))


# ---- linear + cross-entropy ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(111, 61, 257), (123, 96, 1000)])  # tokens, width, vocab
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_linear_cross_entropy_matches_reference(shape, dtype):
    n, d, vocab = shape
    hidden, hidden_ref = leaf(torch.randn(n, d), dtype)
    weight, weight_ref = leaf(torch.randn(vocab, d) / d**0.5, dtype)
    targets = torch.randint(0, vocab, (n,))
    targets[::4] = -100
    loss = linear_cross_entropy(hidden, weight, targets, chunk_size=32)  # several chunks
    (loss * 1.5).backward()
    loss_ref = linear_cross_entropy_reference(hidden_ref, weight_ref, targets)
    (loss_ref * 1.5).backward()
    assert loss.dtype == torch.float32
    assert abs(loss.item() - loss_ref.item()) <= TOL[dtype] * loss_ref.item()
    assert_close(hidden.grad, hidden_ref.grad, dtype, "input grad")
    assert_close(weight.grad, weight_ref.grad, dtype, "weight grad")
    assert hidden.grad[::4].abs().max() == 0  # ignored rows get no gradient


def test_linear_cross_entropy_sum_bf16_and_frozen_weight():
    hidden = torch.randn(37, 61).bfloat16().requires_grad_()
    weight = (torch.randn(257, 61) / 8).bfloat16()  # frozen (phase-1 alignment trains only the connector)
    targets = torch.randint(0, 257, (37,))
    loss = linear_cross_entropy(hidden, weight, targets, reduction="sum")
    loss.backward()
    hidden_ref = hidden.detach().float().requires_grad_()
    loss_ref = linear_cross_entropy_reference(hidden_ref, weight.float(), targets, reduction="sum")
    loss_ref.backward()
    assert abs(loss.item() - loss_ref.item()) <= TOL[torch.bfloat16] * loss_ref.item()
    assert_close(hidden.grad, hidden_ref.grad, torch.bfloat16, "input grad")


def test_linear_cross_entropy_all_ignored_is_zero_and_bad_targets_are_named():
    hidden = torch.randn(5, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, torch.full((5,), -100))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().max() == 0 and weight.grad.abs().max() == 0
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 11\)"):
        linear_cross_entropy(hidden, weight, torch.tensor([0, 1, 11, 2, -100]))


def test_linear_cross_entropy_refuses_second_backward():
    hidden = torch.randn(7, 8, requires_grad=True)
    loss = linear_cross_entropy(hidden, torch.randn(11, 8), torch.randint(0, 11, (7,)))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_linear_cross_entropy_computes_no_gradients_without_grad_mode(monkeypatch, mode):
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = torch.randn(101, 16, requires_grad=True)
    targets = torch.randint(0, 101, (37,))
    targets[::3] = -100
    with_grad = linear_cross_entropy(hidden, weight, targets, chunk_size=8)

    calls = []
    real = lce._chunked_loss_and_grads

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append({"needs": args[-2:], "grad_h": result[1], "grad_w": result[2]})
        return result

    monkeypatch.setattr(lce, "_chunked_loss_and_grads", spy)
    with mode():
        evaluated = linear_cross_entropy(hidden, weight, targets, chunk_size=8)
    assert calls == [{"needs": (False, False), "grad_h": None, "grad_w": None}]
    assert evaluated.item() == pytest.approx(with_grad.item(), rel=1e-6)
    assert evaluated.grad_fn is None

    calls.clear()
    linear_cross_entropy(hidden, weight.detach(), targets, chunk_size=8)  # frozen head: input grad only
    assert calls[0]["needs"] == (True, False) and calls[0]["grad_h"] is not None and calls[0]["grad_w"] is None
