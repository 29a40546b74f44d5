"""The ``triton`` kernel backend: patching a built model, matching the unpatched one, and its errors.

Runs in Triton's CPU interpreter (TRITON_INTERPRET=1, set by conftest). Tolerances: fp32 losses agree
to 1e-5 relative, every parameter gradient to 1e-4 of its largest entry (the kernels reorder sums).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama as llama

import babyvlm
from babyvlm.core.errors import BabyVLMError, ConfigError
from babyvlm.plugins.triton_kernels.backend import TritonKernels

GRAD_TOL = 1e-4


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=101, hidden_size=48, intermediate_size=61, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-5, attn_implementation="sdpa")
    return LlamaForCausalLM(config).train()


def assert_same_training_step(patched: torch.nn.Module, reference: torch.nn.Module, run) -> None:
    loss, loss_ref = run(patched), run(reference)
    loss.backward()
    loss_ref.backward()
    assert abs(loss.item() - loss_ref.item()) <= 1e-5 * abs(loss_ref.item()), (loss.item(), loss_ref.item())
    named_ref = dict(reference.named_parameters())
    checked = 0
    for name, param in patched.named_parameters():
        ref = named_ref[name]
        if ref.grad is None:
            assert param.grad is None, name
            continue
        scale = ref.grad.abs().max().item()
        # + 1e-8: some gradients are zero analytically (a key bias) and only rounding noise remains
        assert (param.grad - ref.grad).abs().max().item() <= GRAD_TOL * scale + 1e-8, name
        checked += 1
    assert checked > 0


def test_patched_llama_matches_unpatched_loss_and_grads():
    reference = tiny_llama()
    patched = TritonKernels().apply(copy.deepcopy(reference))
    ids = torch.randint(0, 101, (2, 13))
    labels = ids.clone()
    labels[0, :4] = -100

    assert_same_training_step(patched, reference, lambda model: model(input_ids=ids, labels=labels).loss)
    assert patched.state_dict().keys() == reference.state_dict().keys()


def test_patched_attention_rotates_the_projection_outputs_in_place(monkeypatch):
    from babyvlm.plugins.triton_kernels import patch

    calls, rotate = [], patch.apply_rotary_

    def spy(q, k, cos, sin, head_dim=None):
        calls.append((q.dim(), q._is_view(), k._is_view()))
        return rotate(q, k, cos, sin, head_dim)

    patched = TritonKernels().apply(tiny_llama())
    monkeypatch.setattr(patch, "apply_rotary_", spy)
    patched(input_ids=torch.randint(0, 101, (2, 7)))
    assert calls == [(3, False, False)] * 2  # one per layer, on the [B, T, H*D] projection outputs


def test_patch_swaps_modules_of_that_model_only():
    reference = tiny_llama()
    kernels = TritonKernels()
    patched = kernels.apply(copy.deepcopy(reference))
    assert kernels.report == {"rmsnorm": 5, "swiglu": 2, "rope": 2, "cross_entropy": 1}
    again = TritonKernels()
    again.apply(patched)
    assert again.report == kernels.report
    layer, ref_layer = patched.model.layers[0], reference.model.layers[0]
    assert layer.mlp.gate_proj is not None and type(layer.mlp).__name__ == "TritonSwiGLUMLP"
    assert type(layer.input_layernorm).__name__ == "TritonRMSNorm"
    assert isinstance(layer.self_attn, llama.LlamaAttention) and type(layer.self_attn) is not llama.LlamaAttention
    # the unpatched model (and the transformers module) are untouched
    assert type(ref_layer.mlp) is llama.LlamaMLP and type(ref_layer.input_layernorm) is llama.LlamaRMSNorm
    assert type(reference) is LlamaForCausalLM and type(ref_layer.self_attn) is llama.LlamaAttention


def test_switches_select_kernels_and_eval_and_generation_still_work():
    reference = tiny_llama()
    kernels = TritonKernels(rmsnorm=False, swiglu=False, cross_entropy=False)
    patched = kernels.apply(copy.deepcopy(reference))
    assert kernels.report == {"rope": 2}
    patched.eval()
    reference.eval()
    ids = torch.randint(0, 101, (1, 9))
    with torch.no_grad():
        logits, logits_ref = patched(input_ids=ids).logits, reference(input_ids=ids).logits
    assert (logits - logits_ref).abs().max() <= 1e-5
    prompt = ids[:, :5]
    assert torch.equal(patched.generate(prompt, max_new_tokens=3, do_sample=False),
                       reference.generate(prompt, max_new_tokens=3, do_sample=False))


def test_fused_loss_path_returns_no_logits_and_honours_num_items_in_batch():
    reference = tiny_llama()
    patched = TritonKernels(rmsnorm=False, swiglu=False, rope=False).apply(copy.deepcopy(reference))
    ids = torch.randint(0, 101, (2, 11))
    out = patched(input_ids=ids, labels=ids, num_items_in_batch=torch.tensor(7))
    out_ref = reference(input_ids=ids, labels=ids, num_items_in_batch=torch.tensor(7))
    assert out.logits is None
    assert abs(out.loss.item() - out_ref.loss.item()) <= 1e-5 * out_ref.loss.item()


def test_registered_as_kernels_component():
    kernels = babyvlm.build("kernels", dict(type="triton", rope=False))
    assert isinstance(kernels, TritonKernels) and kernels.enabled["rope"] is False
    with pytest.raises(ConfigError, match="'swiglu' must be True or False"):
        TritonKernels(swiglu="yes")


def test_nothing_to_patch_is_an_error():
    with pytest.raises(ConfigError, match="found nothing to patch in Linear"):
        TritonKernels().apply(torch.nn.Linear(3, 3))


def test_without_gpu_or_interpreter_apply_names_the_problem(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BabyVLMError, match="needs a CUDA GPU.*TRITON_INTERPRET=1"):
        TritonKernels().apply(tiny_llama())


def test_patched_modules_fall_back_to_pytorch_on_cpu_tensors_outside_the_interpreter(monkeypatch):
    reference = tiny_llama()
    patched = TritonKernels().apply(copy.deepcopy(reference))  # e.g. built on CPU, not yet moved to the GPU
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    ids = torch.randint(0, 101, (2, 9))
    assert_same_training_step(patched, reference, lambda model: model(input_ids=ids, labels=ids).loss)


def test_importing_the_plugin_does_not_import_triton():
    code = ("import sys, babyvlm, babyvlm.plugins.triton_kernels as k; k.TritonKernels(); "
            "assert 'triton' not in sys.modules, 'triton imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TRITON_INTERPRET": "1"})


# ---- the composed model ------------------------------------------------------------------------
def vlm_batch(image_size: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    image, pad, sos, eos = 4, 0, 2, 3
    input_ids = torch.tensor([[sos, image, 20, 21, 22, eos], [sos, image, 30, image, 31, eos]])
    labels = torch.where((input_ids == image) | (input_ids == sos), -100, input_ids)
    input_ids[0, -1], labels[0, -1] = pad, -100  # a padded row
    attention_mask = (input_ids != pad).long()
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
            "pixel_values": torch.randn(3, 3, image_size, image_size), "image_counts": torch.tensor([1, 2])}


@pytest.mark.parametrize("autocast_dtype", [None, "bfloat16"])
def test_patched_babyllava_matches_unpatched(autocast_dtype):
    torch.manual_seed(0)
    reference = babyvlm.build_model("tiny", autocast_dtype=autocast_dtype).train()
    torch.manual_seed(0)
    patched = babyvlm.build_model("tiny", autocast_dtype=autocast_dtype, kernels="triton").train()
    assert type(patched.loss_fn).__name__ == "TritonLinearCrossEntropy"
    assert type(patched.language_model.model.norm).__name__ == "TritonRMSNorm"
    patched.load_state_dict(reference.state_dict())
    batch = vlm_batch(int(reference.encoder.image_size))
    if autocast_dtype is None:
        assert_same_training_step(patched, reference, lambda model: model(**batch)["loss"])
        return
    # bf16 autocast: the kernels round at different points than eager PyTorch; compare at bf16 precision
    loss, loss_ref = patched(**batch)["loss"], reference(**batch)["loss"]
    loss.backward()
    loss_ref.backward()
    assert abs(loss.item() - loss_ref.item()) <= 2e-2 * loss_ref.item()
    # floor: gradients that are zero analytically (a key bias) hold only rounding noise
    floor = 1e-4 * max(p.grad.norm().item() for p in reference.parameters())
    for (name, param), ref in zip(patched.named_parameters(), reference.parameters(), strict=True):
        assert (param.grad - ref.grad).norm() <= 0.05 * ref.grad.norm() + floor, name
