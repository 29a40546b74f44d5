"""Swap the modules of one built model for Triton-backed ones; other models stay untouched.

Replacements keep the original parameters (same objects, same state-dict keys):

- ``LlamaRMSNorm``  -> ``TritonRMSNorm`` (new module sharing the weight),
- ``LlamaMLP`` (SiLU) -> ``TritonSwiGLUMLP`` (new module holding the same three projections),
- ``LlamaAttention`` -> ``TritonLlamaAttention``: the instance's class is switched to a subclass that
  runs the installed ``transformers``' own attention forward with ``apply_rotary_pos_emb`` resolved
  to the Triton kernel (in place on the q/k projection outputs; cos/sin from the model's
  ``rotary_emb``),
- ``LlamaForCausalLM`` -> ``TritonLlamaForCausalLM`` (class switch): in training with ``labels`` the
  loss comes from the fused linear + cross-entropy and ``logits`` is ``None``,
- a ``loss_fn`` attribute (the composed VLM's seam) -> ``TritonLinearCrossEntropy``.

Only exact classes are matched (a subclass may compute something else), by type, never by name.
"""

from __future__ import annotations

import inspect
import types
from collections import Counter
from collections.abc import Callable

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.llama import modeling_llama as llama

from babyvlm.core.constants import IGNORE_INDEX

from .linear_cross_entropy import TritonLinearCrossEntropy, linear_cross_entropy
from .rmsnorm import TritonRMSNorm
from .rope import apply_rotary_
from .runtime import kernels_can_run
from .swiglu import TritonSwiGLUMLP

_LOSS_ONLY_KEYS = ("num_items_in_batch", "shift_labels")
_ROTARY_NAME = "apply_rotary_pos_emb"


def _projection_output(x: torch.Tensor) -> torch.Tensor | None:
    """The ``[B, T, H*D]`` projection output that ``x`` (``[B, H, T, D]``) is exactly a
    ``view(B, T, H, D).transpose(1, 2)`` of, or None. Rotating that tensor is rotating ``x`` in place."""
    base = x._base
    if base is None or base.dim() != 3 or not base.is_contiguous() or x.data_ptr() != base.data_ptr():
        return None
    batch, heads, seq, head_dim = x.shape
    if tuple(base.shape) != (batch, seq, heads * head_dim):
        return None
    return base if x.stride() == (seq * heads * head_dim, head_dim, heads * head_dim, 1) else None


def triton_apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim: int = 1):
    """``apply_rotary_pos_emb`` on the Triton kernel: in place on the q/k projection outputs when q/k
    are their head views (as in ``LlamaAttention``), else into new tensors."""
    if unsqueeze_dim != 1 or not kernels_can_run(q, k, cos, sin):
        return llama.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim)
    q_base, k_base = _projection_output(q), _projection_output(k)
    if q_base is not None and k_base is not None:
        head_dim = q.shape[-1]
        q_rot, k_rot = apply_rotary_(q_base, k_base, cos, sin, head_dim)
        return (q_rot.view(*q_rot.shape[:2], -1, head_dim).transpose(1, 2),
                k_rot.view(*k_rot.shape[:2], -1, head_dim).transpose(1, 2))
    q_rot, k_rot = apply_rotary_(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    return q_rot.transpose(1, 2), k_rot.transpose(1, 2)


def _with_rotary(function: Callable, rotary: Callable) -> Callable | None:
    """A copy of ``function`` (decorators unwrapped) whose global ``apply_rotary_pos_emb`` is ``rotary``.

    The installed ``transformers``' own attention code runs unchanged (cache, masks, attention
    backends); only its name lookup differs, and the ``transformers`` module itself is not modified.
    None when the function does not call ``apply_rotary_pos_emb`` by that name.
    """
    inner = inspect.unwrap(function)
    if _ROTARY_NAME not in inner.__code__.co_names:
        return None
    namespace = {**inner.__globals__, _ROTARY_NAME: rotary}
    copy = types.FunctionType(inner.__code__, namespace, inner.__name__, inner.__defaults__, inner.__closure__)
    copy.__kwdefaults__ = inner.__kwdefaults__
    return copy


_ATTENTION_FORWARD = _with_rotary(llama.LlamaAttention.forward, triton_apply_rotary_pos_emb)


class TritonLlamaAttention(llama.LlamaAttention):
    """``LlamaAttention`` whose RoPE is the in-place Triton kernel; everything else is the original."""

    def forward(self, *args, **kwargs):
        return _ATTENTION_FORWARD(self, *args, **kwargs)


class TritonLlamaForCausalLM(llama.LlamaForCausalLM):
    """``LlamaForCausalLM`` whose training loss never materialises the ``tokens x vocab`` logits."""

    ce_chunk_size: int | None = None

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, labels=None,
                **kwargs):
        if labels is None or not self.training or not kernels_can_run(self.lm_head.weight):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   inputs_embeds=inputs_embeds, labels=labels, **kwargs)
        loss_options = {key: kwargs.pop(key, None) for key in _LOSS_ONLY_KEYS}
        kwargs.pop("logits_to_keep", None)  # no logits are returned on this path
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             inputs_embeds=inputs_embeds, **kwargs)
        hidden = outputs.last_hidden_state
        loss = self._fused_loss(hidden, labels, **loss_options)
        return CausalLMOutputWithPast(loss=loss, logits=None, hidden_states=outputs.hidden_states,
                                      attentions=outputs.attentions)

    def _fused_loss(self, hidden: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None, shift_labels=None):
        """``transformers``' ForCausalLMLoss (shift by one, mean or sum / num_items) on the fused kernel."""
        if shift_labels is None:
            shift_labels = nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        targets = shift_labels.reshape(-1).to(hidden.device)
        reduction = "mean" if num_items_in_batch is None else "sum"
        loss = linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), self.lm_head.weight, targets,
                                    IGNORE_INDEX, reduction, self.ce_chunk_size)
        if num_items_in_batch is not None:
            loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)
        return loss


def _mlp_replacement(module: nn.Module) -> nn.Module | None:
    """The fused activation is ``silu(gate) * up``: only a SiLU-gated MLP can use it."""
    if getattr(module.config, "hidden_act", None) not in ("silu", "swish"):
        return None
    return TritonSwiGLUMLP.from_module(module)


# module class -> (kernel flag, factory returning the replacement or None when it does not apply)
_REPLACEMENTS: dict[type, tuple[str, Callable[[nn.Module], nn.Module | None]]] = {
    llama.LlamaRMSNorm: ("rmsnorm", TritonRMSNorm.from_module),
    llama.LlamaMLP: ("swiglu", _mlp_replacement),
}
_CLASS_SWAPS: dict[type, tuple[str, type]] = {llama.LlamaForCausalLM: ("cross_entropy", TritonLlamaForCausalLM)}
if _ATTENTION_FORWARD is not None:  # else this transformers version is not patched for RoPE (report says 0)
    _CLASS_SWAPS[llama.LlamaAttention] = ("rope", TritonLlamaAttention)
# patched module class -> kernel, for the report
_PATCHED: dict[type, str] = {TritonRMSNorm: "rmsnorm", TritonSwiGLUMLP: "swiglu", TritonLlamaAttention: "rope",
                             TritonLlamaForCausalLM: "cross_entropy"}


def patch_model(model: nn.Module, enabled: dict[str, bool], ce_chunk_size: int | None = None) -> dict[str, int]:
    """Patch ``model`` in place for the kernels switched on in ``enabled``. Returns, per kernel, how many
    modules now run it (patched now or by an earlier call: patching twice changes nothing)."""
    counts: Counter = Counter()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            flag, factory = _REPLACEMENTS.get(type(child), (None, None))
            replacement = factory(child) if flag and enabled.get(flag) else None
            if replacement is not None:
                setattr(parent, name, replacement)
    for module in model.modules():
        flag, subclass = _CLASS_SWAPS.get(type(module), (None, None))
        if flag and enabled.get(flag):
            module.__class__ = subclass
        if isinstance(module, TritonLlamaForCausalLM):
            module.ce_chunk_size = ce_chunk_size
        if type(module) in _PATCHED:
            counts[_PATCHED[type(module)]] += 1
    if enabled.get("cross_entropy") and hasattr(model, "loss_fn"):
        _replace_loss_fn(model, TritonLinearCrossEntropy(chunk_size=ce_chunk_size))
        counts["cross_entropy"] += 1
    return dict(counts)


def _replace_loss_fn(model: nn.Module, fused: nn.Module) -> None:
    """Works whether ``loss_fn`` is a submodule, an instance attribute or a method of the class."""
    if "loss_fn" in model._modules:
        model._modules["loss_fn"] = fused
    else:
        object.__setattr__(model, "loss_fn", fused)
