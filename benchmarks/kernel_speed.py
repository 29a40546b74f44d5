#!/usr/bin/env python
"""Benchmark babyvlm's Triton training kernels against PyTorch and Liger-Kernel, then end to end.

Standalone: the kernel part imports only torch, triton and the kernel files (loaded by path, so
neither babyvlm's dependencies nor an install are needed); the end-to-end LM part adds transformers;
the full-model part needs an installed babyvlm (see benchmarks/README.md).

    python benchmarks/kernel_speed.py --out kernels.json            # GPU, all shapes (< 5 min on an H100)
    python benchmarks/kernel_speed.py --quick --out kernels.json    # GPU, one shape per kernel
    python benchmarks/kernel_speed.py --smoke                       # CPU, Triton interpreter, tiny shapes:
                                                                   # checks the script itself, times nothing real

Order: correctness checks (each kernel vs its fp32 PyTorch reference), kernel timings (forward, and
forward+backward; median of triton.testing.do_bench, L2 flushed between runs), end-to-end training
steps, then a markdown table and a JSON file. Anything missing or failing (Liger not installed,
torch.compile erroring, babyvlm not installed) is recorded as n/a with the reason.

Not named ``kernels.py``: Python puts this folder first on ``sys.path``, and transformers imports the
Hugging Face ``kernels`` package, which a file of that name would shadow.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KERNEL_DIR = REPO / "babyvlm" / "plugins" / "triton_kernels"
H100_BANDWIDTH = 3.35e12  # bytes/s, H100 SXM HBM3
H100_BF16_DENSE = 989.4e12  # FLOP/s, H100 SXM dense bf16
PAPER = dict(width=2048, ffn=5632, layers=22, heads=32, kv_heads=4, head_dim=64, eps=1e-5)
SMOKE = dict(width=96, ffn=176, layers=2, heads=4, kv_heads=2, head_dim=24, eps=1e-5)  # odd-ish, tiny
TORCH_IMPLS = ("eager", "native", "compile")

torch: Any = None  # imported in main(), after TRITON_INTERPRET is settled
K: Any = None  # the kernel modules
DIMS: dict[str, Any] = PAPER  # SMOKE under --smoke


# ---- setup ----------------------------------------------------------------------------------------
def load_kernels() -> types.SimpleNamespace:
    """Import the kernel files as a package of their own: no babyvlm (hence no mmengine) import."""
    name = "babyvlm_triton_kernels_standalone"
    package = types.ModuleType(name)
    package.__path__ = [str(KERNEL_DIR)]
    sys.modules[name] = package
    modules = ("runtime", "rmsnorm", "swiglu", "rope", "linear_cross_entropy")
    return types.SimpleNamespace(**{m: importlib.import_module(f"{name}.{m}") for m in modules},
                                 package=name)


def environment(device: str) -> dict[str, Any]:
    import triton

    env = {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
           "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, sms=props.multi_processor_count, memory_gib=round(props.total_memory / 2**30, 1))
    for distribution in ("transformers", "liger-kernel"):
        try:
            env[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            env[distribution] = "n/a (not installed)"
    return env


# ---- timing -------------------------------------------------------------------------------------
@dataclass
class Timer:
    device: str
    budget_s: float
    started: float = field(default_factory=time.monotonic)

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.budget_s

    def ms(self, fn: Callable[[], Any], grad_to_none: list | None = None) -> float:
        if self.device == "cuda":
            from triton.testing import do_bench

            return float(do_bench(fn, warmup=10, rep=40, grad_to_none=grad_to_none, return_mode="median"))
        start = time.perf_counter()  # smoke mode: one interpreted run, just to exercise the path
        fn()
        return (time.perf_counter() - start) * 1e3

    def peak_mib(self, fn: Callable[[], Any]) -> float | None:
        """Peak memory above what was allocated before ``fn`` ran (GPU only)."""
        if self.device != "cuda":
            return None
        gc.collect()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20


# ---- cases ----------------------------------------------------------------------------------------
@dataclass
class Case:
    """One kernel at one shape: implementations, how to run backward, and the work it represents."""

    kernel: str
    shape: str
    inputs: dict[str, Any]
    impls: dict[str, Callable[[dict], Any]]  # name -> forward(inputs) -> output(s)
    backward: Callable[[dict, Any], None]
    leaves: list[str]
    bytes_fwd: float = 0.0  # ideal bytes moved (read + write once)
    bytes_fwdbwd: float = 0.0
    flops_fwd: float = 0.0  # for the matmul-bound fused loss
    flops_fwdbwd: float = 0.0
    forward_without_grad: bool = False  # the fused loss computes its gradients in its forward
    note: str = ""


def _compiled(fn: Callable, device: str) -> Callable | str:
    if device != "cuda":
        return "n/a (torch.compile not run in smoke mode)"
    try:
        return torch.compile(fn, dynamic=True)
    except Exception as exc:
        return f"n/a (torch.compile: {type(exc).__name__}: {exc})"


def _liger(attr_path: str) -> Callable | str:
    """An attribute of liger_kernel (``module:attr``), or an n/a reason."""
    module_name, attr = attr_path.split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except Exception as exc:
        return f"n/a (liger: {type(exc).__name__}: {exc})"


def _maybe(impls: dict, name: str, value: Callable | str, make: Callable[[Callable], Callable]) -> None:
    impls[name] = make(value) if callable(value) else value


def _backward_with(*grad_names: str) -> Callable[[dict, Any], None]:
    """Backward of the output(s) with the named incoming gradients."""
    def run(inputs: dict, out: Any) -> None:
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(outs, tuple(inputs[name] for name in grad_names))

    return run


def rmsnorm_case(tokens: int, dtype, device: str, compiled: dict) -> Case:
    width, eps = DIMS["width"], DIMS["eps"]
    x = torch.randn(tokens, width, device=device, dtype=dtype, requires_grad=True)
    w = (1 + 0.1 * torch.randn(width, device=device)).to(dtype).requires_grad_()
    inputs = {"x": x, "w": w, "dy": torch.randn(tokens, width, device=device, dtype=dtype)}
    ref = K.rmsnorm.rms_norm_reference
    impls: dict[str, Any] = {
        "triton": lambda i: K.rmsnorm.rms_norm(i["x"], i["w"], eps),
        "eager": lambda i: ref(i["x"], i["w"], eps),  # transformers' LlamaRMSNorm
        "native": lambda i: torch.nn.functional.rms_norm(i["x"], (width,), i["w"], eps),  # torch.nn.RMSNorm
    }
    compiled.setdefault("rmsnorm", _compiled(ref, device))
    _maybe(impls, "compile", compiled["rmsnorm"], lambda f: lambda i: f(i["x"], i["w"], eps))
    liger = _liger("liger_kernel.ops.rms_norm:LigerRMSNormFunction")
    # in_place=False: Liger's default writes dx over dy; kept off so every impl sees the same dy
    _maybe(impls, "liger", liger, lambda f: lambda i: f.apply(i["x"], i["w"], eps, 0.0, "llama", False))
    element = x.element_size()
    return Case("rmsnorm", f"{tokens}x{width}", inputs, impls, _backward_with("dy"), ["x", "w"],
                bytes_fwd=2 * tokens * width * element, bytes_fwdbwd=5 * tokens * width * element)


def swiglu_case(tokens: int, dtype, device: str, compiled: dict) -> Case:
    ffn = DIMS["ffn"]
    gate = torch.randn(tokens, ffn, device=device, dtype=dtype, requires_grad=True)
    up = torch.randn(tokens, ffn, device=device, dtype=dtype, requires_grad=True)
    inputs = {"gate": gate, "up": up, "dy": torch.randn(tokens, ffn, device=device, dtype=dtype)}
    impls: dict[str, Any] = {
        # inputs_private: as inside the MLP, the backward reuses the gate/up buffers (like Liger)
        "triton": lambda i: K.swiglu.swiglu(i["gate"], i["up"], inputs_private=True),
        "eager": lambda i: i["gate"] * torch.sigmoid(i["gate"]) * i["up"],
        "native": lambda i: torch.nn.functional.silu(i["gate"]) * i["up"],  # transformers' LlamaMLP
    }
    compiled.setdefault("swiglu", _compiled(K.swiglu.swiglu_reference, device))
    _maybe(impls, "compile", compiled["swiglu"], lambda f: lambda i: f(i["gate"], i["up"]))
    liger = _liger("liger_kernel.ops.swiglu:LigerSiLUMulFunction")
    _maybe(impls, "liger", liger, lambda f: lambda i: f.apply(i["gate"], i["up"]))
    element = gate.element_size()
    return Case("swiglu", f"{tokens}x{ffn}", inputs, impls, _backward_with("dy"), ["gate", "up"],
                bytes_fwd=3 * tokens * ffn * element, bytes_fwdbwd=8 * tokens * ffn * element,
                note="backward overwrites gate/up (triton with inputs_private, liger always)")


def rope_case(tokens: int, dtype, device: str, compiled: dict) -> Case:
    heads, kv_heads, head_dim = DIMS["heads"], DIMS["kv_heads"], DIMS["head_dim"]
    q = torch.randn(1, tokens, heads * head_dim, device=device, dtype=dtype, requires_grad=True)
    k = torch.randn(1, tokens, kv_heads * head_dim, device=device, dtype=dtype, requires_grad=True)
    angles = torch.arange(tokens, device=device)[:, None] * torch.rand(head_dim // 2, device=device)
    emb = torch.cat((angles, angles), dim=-1)[None]
    inputs = {"q": q, "k": k, "cos": emb.cos().to(dtype), "sin": emb.sin().to(dtype),
              "dq": torch.randn_like(q), "dk": torch.randn_like(k)}

    def heads_view(t, n):  # transformers' layout [B, H, T, D]
        return t.view(1, tokens, n, head_dim).transpose(1, 2)

    def flat(t):
        return t.transpose(1, 2).reshape(1, tokens, -1)

    def reference(q_, k_, cos, sin):  # shape-agnostic: one torch.compile serves every sequence length
        q_rot, k_rot = K.rope.rope_reference(q_.unflatten(-1, (-1, head_dim)), k_.unflatten(-1, (-1, head_dim)),
                                             cos, sin)
        return q_rot.flatten(-2), k_rot.flatten(-2)

    # Every impl starts from fresh copies (the triton kernel works in place on projection outputs).
    impls: dict[str, Any] = {
        "triton": lambda i: K.rope.apply_rotary_(i["q"].clone(), i["k"].clone(), i["cos"], i["sin"], head_dim),
        "eager": lambda i: reference(i["q"].clone(), i["k"].clone(), i["cos"], i["sin"]),
        "native": "n/a (PyTorch has no rotary op)",
        "clone floor": lambda i: (i["q"].clone(), i["k"].clone()),
    }
    compiled.setdefault("rope", _compiled(reference, device))
    _maybe(impls, "compile", compiled["rope"], lambda f: lambda i: f(i["q"].clone(), i["k"].clone(), i["cos"], i["sin"]))
    liger = _liger("liger_kernel.transformers.rope:liger_rotary_pos_emb")

    def liger_impl(f):
        def run(i):
            q_rot, k_rot = f(heads_view(i["q"].clone(), heads), heads_view(i["k"].clone(), kv_heads), i["cos"], i["sin"])
            return flat(q_rot), flat(k_rot)
        return run

    _maybe(impls, "liger", liger, liger_impl)
    moved = 2 * tokens * (heads + kv_heads) * head_dim * q.element_size()
    return Case("rope", f"{tokens} tok, {heads}+{kv_heads} heads x {head_dim}", inputs, impls,
                _backward_with("dq", "dk"), ["q", "k"], bytes_fwd=moved, bytes_fwdbwd=2 * moved,
                note="every impl includes cloning q and k (the 'clone floor' row)")


def cross_entropy_case(tokens: int, vocab: int, dtype, device: str, compiled: dict) -> Case:
    width = DIMS["width"]
    hidden = torch.randn(tokens, width, device=device, dtype=dtype, requires_grad=True)
    weight = (torch.randn(vocab, width, device=device) / width**0.5).to(dtype).requires_grad_()
    targets = torch.randint(0, vocab, (tokens,), device=device)
    inputs = {"h": hidden, "w": weight, "t": targets}

    def eager(h, w, t):  # transformers: full logits, upcast to fp32
        return torch.nn.functional.cross_entropy((h @ w.t()).float(), t)

    impls: dict[str, Any] = {
        "triton": lambda i: K.linear_cross_entropy.linear_cross_entropy(i["h"], i["w"], i["t"]),
        "eager": lambda i: eager(i["h"], i["w"], i["t"]),
        "native": lambda i: torch.nn.functional.cross_entropy(i["h"] @ i["w"].t(), i["t"]),
    }
    compiled.setdefault("cross_entropy", _compiled(eager, device))
    _maybe(impls, "compile", compiled["cross_entropy"], lambda f: lambda i: f(i["h"], i["w"], i["t"]))
    liger = _liger("liger_kernel.transformers.fused_linear_cross_entropy:LigerFusedLinearCrossEntropyLoss")
    _maybe(impls, "liger", liger, lambda cls: (lambda loss: lambda i: loss(i["w"], i["h"], i["t"]))(cls()))
    flops = 2.0 * tokens * vocab * width
    return Case("cross_entropy", f"{tokens}x{width} -> V={vocab}", inputs, impls,
                lambda i, out: out.backward(), ["h", "w"], flops_fwd=flops, flops_fwdbwd=3 * flops,
                forward_without_grad=True, note="forward timed without grad (loss only)")


def kernel_cases(args, device: str, compiled: dict) -> list[Callable[[], Case]]:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if args.smoke:
        tokens_list, lce = [37], [(37, 300)]
    elif args.quick:
        tokens_list, lce = [4096], [(4096, 6000), (4096, 32000)]
    else:
        tokens_list, lce = [2048, 4096, 8192], [(2048, 6000), (8192, 6000), (2048, 32000), (8192, 32000)]
    makers: list[Callable[[], Case]] = []
    for make in (rmsnorm_case, swiglu_case, rope_case):
        makers += [lambda make=make, t=t: make(t, dtype, device, compiled) for t in tokens_list]
    makers += [lambda t=t, v=v: cross_entropy_case(t, v, dtype, device, compiled) for t, v in lce]
    return makers


# ---- correctness ------------------------------------------------------------------------------------
def _max_error(actual, expected) -> float:
    scale = expected.float().abs().max().item()
    return (actual.float() - expected.float()).abs().max().item() / max(scale, 1e-12)


def correctness_checks(device: str, smoke: bool) -> list[dict[str, Any]]:
    """Each kernel vs its fp32 reference, bf16 and fp32, at a real width; errors relative to max |ref|."""
    tokens = 37 if smoke else 2053  # odd on purpose: partial tiles and blocks
    dtypes = [torch.float32] if smoke else [torch.float32, torch.bfloat16]
    tolerance = {torch.float32: 1e-4, torch.bfloat16: 3e-2}
    results = []
    for dtype in dtypes:
        for name, check in (("rmsnorm", _check_rmsnorm), ("swiglu", _check_swiglu), ("rope", _check_rope),
                            ("cross_entropy", _check_cross_entropy)):
            try:
                errors = check(tokens, dtype, device, smoke)
                worst = max(errors.values())
                results.append({"kernel": name, "dtype": str(dtype).replace("torch.", ""), "errors": errors,
                                "ok": worst <= tolerance[dtype]})
            except Exception as exc:
                results.append({"kernel": name, "dtype": str(dtype), "ok": False,
                                "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=3)})
    return results


def _pair(shape, dtype, device, scale=1.0):
    low = (torch.randn(shape, device=device) * scale).to(dtype).requires_grad_()
    return low, low.detach().float().requires_grad_()


def _check_rmsnorm(tokens, dtype, device, smoke):
    width = DIMS["width"]
    (x, x32), (w, w32) = _pair((tokens, width), dtype, device, 2.0), _pair((width,), dtype, device)
    y = K.rmsnorm.rms_norm(x, w, 1e-5)
    y32 = K.rmsnorm.rms_norm_reference(x32, w32, 1e-5)
    dy = torch.randn_like(y32)
    y.backward(dy.to(y.dtype))
    y32.backward(dy)
    return {"out": _max_error(y, y32), "dx": _max_error(x.grad, x32.grad), "dw": _max_error(w.grad, w32.grad)}


def _check_swiglu(tokens, dtype, device, smoke):
    ffn = DIMS["ffn"]
    (g, g32), (u, u32) = _pair((tokens, ffn), dtype, device, 2.0), _pair((tokens, ffn), dtype, device)
    y, y32 = K.swiglu.swiglu(g, u), K.swiglu.swiglu_reference(g32, u32)
    dy = torch.randn_like(y32)
    y.backward(dy.to(y.dtype))
    y32.backward(dy)
    return {"out": _max_error(y, y32), "dgate": _max_error(g.grad, g32.grad), "dup": _max_error(u.grad, u32.grad)}


def _check_rope(tokens, dtype, device, smoke):
    heads, kv_heads, head_dim = DIMS["heads"], DIMS["kv_heads"], DIMS["head_dim"]
    (q, q32), (k, k32) = _pair((1, tokens, heads * head_dim), dtype, device), _pair((1, tokens, kv_heads * head_dim), dtype, device)
    angles = torch.arange(tokens, device=device)[:, None] * torch.rand(head_dim // 2, device=device)
    emb = torch.cat((angles, angles), dim=-1)[None]
    cos, sin = emb.cos(), emb.sin()
    q_rot, k_rot = K.rope.apply_rotary_(q * 1, k * 1, cos.to(dtype), sin.to(dtype), head_dim)
    q_ref, k_ref = K.rope.rope_reference(q32, k32, cos, sin, head_dim)
    dq, dk = torch.randn_like(q_ref), torch.randn_like(k_ref)
    torch.autograd.backward((q_rot, k_rot), (dq.to(dtype), dk.to(dtype)))
    torch.autograd.backward((q_ref, k_ref), (dq, dk))
    return {"q": _max_error(q_rot, q_ref), "k": _max_error(k_rot, k_ref), "dq": _max_error(q.grad, q32.grad),
            "dk": _max_error(k.grad, k32.grad)}


def _check_cross_entropy(tokens, dtype, device, smoke):
    width, vocab = DIMS["width"], 300 if smoke else 6000
    (h, h32), (w, w32) = _pair((tokens, width), dtype, device), _pair((vocab, width), dtype, device, width**-0.5)
    targets = torch.randint(0, vocab, (tokens,), device=device)
    targets[::5] = -100
    loss = K.linear_cross_entropy.linear_cross_entropy(h, w, targets)
    loss32 = K.linear_cross_entropy.linear_cross_entropy_reference(h32, w32, targets)
    loss.backward()
    loss32.backward()
    return {"loss": _max_error(loss, loss32), "dh": _max_error(h.grad, h32.grad), "dw": _max_error(w.grad, w32.grad)}


# ---- kernel timings ---------------------------------------------------------------------------------
def time_case(case: Case, timer: Timer) -> list[dict[str, Any]]:
    rows = []
    leaves = [case.inputs[name] for name in case.leaves]
    for impl_name, impl in case.impls.items():
        for mode in ("fwd", "fwd+bwd"):
            row = {"kernel": case.kernel, "shape": case.shape, "mode": mode, "impl": impl_name, "note": case.note}
            if isinstance(impl, str):
                rows.append({**row, "status": impl})
                continue
            fn = _mode_fn(case, impl, mode)
            try:
                fn()  # compile / autotune outside the timing
                row["ms"] = timer.ms(fn, grad_to_none=leaves)
                row["peak_mib"] = timer.peak_mib(fn)
                row["status"] = "ok"
                _add_rates(row, case, mode)
            except Exception as exc:
                row["status"] = f"n/a ({type(exc).__name__}: {str(exc)[:160]})"
            for leaf in leaves:
                leaf.grad = None
            rows.append(row)
    return rows


def _mode_fn(case: Case, impl: Callable, mode: str) -> Callable[[], Any]:
    if mode == "fwd" and case.forward_without_grad:
        def forward_only():
            with torch.no_grad():
                return impl(case.inputs)
        return forward_only
    if mode == "fwd":
        return lambda: impl(case.inputs)
    return lambda: case.backward(case.inputs, impl(case.inputs))


def _add_rates(row: dict, case: Case, mode: str) -> None:
    seconds = row["ms"] / 1e3
    moved = case.bytes_fwd if mode == "fwd" else case.bytes_fwdbwd
    flops = case.flops_fwd if mode == "fwd" else case.flops_fwdbwd
    if moved:
        row["gb_s"] = moved / seconds / 1e9
        row["pct_peak"] = 100 * moved / seconds / H100_BANDWIDTH
    if flops:
        row["tflop_s"] = flops / seconds / 1e12
        row["pct_peak"] = 100 * flops / seconds / H100_BF16_DENSE


def add_ratios(rows: list[dict]) -> None:
    """Per (kernel, shape, mode): speed-up of triton over the best PyTorch impl and over Liger."""
    groups: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        groups.setdefault((row["kernel"], row["shape"], row["mode"]), {})[row["impl"]] = row
    for impls in groups.values():
        triton_row = impls.get("triton")
        if not triton_row or "ms" not in triton_row:
            continue
        torch_times = [impls[n]["ms"] for n in TORCH_IMPLS if n in impls and "ms" in impls[n]]
        if torch_times:
            triton_row["vs_best_torch"] = min(torch_times) / triton_row["ms"]
        if "ms" in impls.get("liger", {}):
            triton_row["vs_liger"] = impls["liger"]["ms"] / triton_row["ms"]
            liger_mem, own_mem = impls["liger"].get("peak_mib"), triton_row.get("peak_mib")
            if liger_mem is not None and own_mem is not None:
                triton_row["mem_le_liger"] = own_mem <= liger_mem * 1.001


def verdicts(rows: list[dict], checks: list[dict]) -> dict[str, dict[str, Any]]:
    """Whether each kernel earns a default-on: correct, and >= 1.0x the best PyTorch alternative and
    >= Liger (time and peak memory) in forward+backward at every shape measured."""
    result = {}
    for kernel in ("rmsnorm", "swiglu", "rope", "cross_entropy"):
        correct = all(c["ok"] for c in checks if c["kernel"] == kernel)
        measured = [r for r in rows if r["kernel"] == kernel and r["impl"] == "triton" and r["mode"] == "fwd+bwd"]
        ratios = [r.get("vs_best_torch") for r in measured]
        liger = [r.get("vs_liger") for r in measured if "vs_liger" in r]
        memory = [r.get("mem_le_liger") for r in measured if "mem_le_liger" in r]
        beats_torch = bool(ratios) and all(x is not None and x >= 1.0 for x in ratios)
        beats_liger = all(x >= 1.0 for x in liger) and all(memory)
        result[kernel] = {"correct": correct, "min_vs_best_torch": min((x for x in ratios if x), default=None),
                          "min_vs_liger": min(liger, default=None), "liger_measured": bool(liger),
                          "default_on": correct and beats_torch and beats_liger}
    return result


# ---- end to end -------------------------------------------------------------------------------------
def lm_matmul_params(layers: int, width: int, ffn: int, heads: int, kv_heads: int, vocab: int) -> int:
    head_dim = width // heads
    per_layer = 2 * width * width + 2 * width * kv_heads * head_dim + 3 * width * ffn
    return layers * per_layer + vocab * width  # output projection in, input embedding out


def mfu(matmul_params: int, layers: int, width: int, seq: int, tokens_per_s: float) -> float:
    return (6 * matmul_params + 12 * layers * width * seq) * tokens_per_s / H100_BF16_DENSE


def _train_steps(model, step_fn, steps: int, warmup: int, device: str) -> tuple[float, float | None]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device == "cuda")
    for _ in range(warmup):
        step_fn(model, optimizer)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step_fn(model, optimizer)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    del optimizer
    return seconds, peak


def _apply_kernels(model) -> dict[str, int]:
    patch = importlib.import_module(f"{K.package}.patch")  # imports transformers
    return patch.patch_model(model, {"rmsnorm": True, "swiglu": True, "rope": True, "cross_entropy": True})


def e2e_language_model(args, device: str) -> list[dict[str, Any]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = 300 if args.smoke else 6000
    if args.smoke:
        shape = dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
        runs, steps, warmup = [(1, 16)], 1, 0
    else:
        shape = dict(hidden_size=PAPER["width"], intermediate_size=PAPER["ffn"], num_hidden_layers=PAPER["layers"],
                     num_attention_heads=PAPER["heads"], num_key_value_heads=PAPER["kv_heads"])
        runs = [(1, 4096)] if args.quick else [(1, 8192), (4, 2048)]
        steps, warmup = (4, 2) if args.quick else (6, 2)
    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=8192, rms_norm_eps=PAPER["eps"], hidden_act="silu",
                         tie_word_embeddings=False, attn_implementation="sdpa", use_cache=False, **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).train()
    params = lm_matmul_params(config.num_hidden_layers, config.hidden_size, config.intermediate_size,
                              config.num_attention_heads, config.num_key_value_heads, vocab)
    results = []
    for variant in ("pytorch", "triton"):
        if variant == "triton":
            _apply_kernels(model)
        for batch, seq in runs:
            ids = torch.randint(0, vocab, (batch, seq), device=device)

            def step(model, optimizer, ids=ids):
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    loss = model(input_ids=ids, labels=ids).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            results.append(_e2e_row(f"LM ({'smoke' if args.smoke else 'TinyLlama'} shape, V={vocab})", variant, batch, seq, params,
                                    config.num_hidden_layers, config.hidden_size, model, step, steps, warmup, device))
    del model
    gc.collect()
    return results


def _e2e_row(name, variant, batch, seq, params, layers, width, model, step, steps, warmup, device) -> dict:
    row = {"model": name, "variant": variant, "batch": batch, "seq": seq}
    try:
        seconds, peak = _train_steps(model, step, steps, warmup, device)
        tokens_per_s = batch * seq / seconds
        row.update(step_s=seconds, samples_s=batch / seconds, tokens_s=tokens_per_s, peak_gib=peak,
                   mfu=mfu(params, layers, width, seq, tokens_per_s), status="ok")
    except Exception as exc:
        row["status"] = f"n/a ({type(exc).__name__}: {str(exc)[:200]})"
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def e2e_full_model(args, device: str) -> list[dict[str, Any]]:
    """The composed BabyLLaVA (ViT frozen, as in phase 2); needs an installed babyvlm."""
    name = "BabyLLaVA-V2 (ViT-L frozen + connector + LM)"
    try:
        import babyvlm

        preset = "tiny" if args.smoke else "paper"
        torch.manual_seed(0)
        with torch.device(device):  # initialise on the GPU: CPU init of 1.4B parameters takes minutes
            model = babyvlm.build_model(preset, autocast_dtype="bfloat16" if device == "cuda" else None,
                                        freeze=["encoder"]).to(device).train()
        model.language_model.config.use_cache = False
    except Exception as exc:
        return [{"model": name, "variant": v, "status": f"n/a (babyvlm: {type(exc).__name__}: {str(exc)[:200]})"}
                for v in ("pytorch", "triton")]
    batch, text = (1, 6) if args.smoke else (16, 64)
    image_tokens, lm = model.tokens_per_image, model.language_model.config
    ids = torch.randint(10, lm.vocab_size, (batch, text + 2), device=device)
    ids[:, 0], ids[:, 1], ids[:, -1] = model.special_id("sos_id"), model.image_id, model.special_id("eos_id")
    labels = ids.clone()
    labels[:, :2] = -100
    size = int(model.encoder.image_size)
    inputs = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids),
              "pixel_values": torch.randn(batch, 3, size, size, device=device),
              "image_counts": torch.ones(batch, dtype=torch.long)}
    seq = text + 1 + image_tokens
    connector = sum(p.numel() for p in model.connector.parameters() if p.dim() == 2)
    params = lm_matmul_params(lm.num_hidden_layers, lm.hidden_size, lm.intermediate_size, lm.num_attention_heads,
                              lm.num_key_value_heads, lm.vocab_size) + connector
    steps, warmup = (1, 0) if args.smoke else (4, 2) if args.quick else (6, 2)

    def step(model, optimizer):
        model(**inputs)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rows = []
    for variant in ("pytorch", "triton"):
        if variant == "triton":
            _apply_kernels(model)
        rows.append(_e2e_row(name, variant, batch, seq, params, lm.num_hidden_layers, lm.hidden_size, model, step,
                             steps, warmup, device))
    return rows


# ---- report -----------------------------------------------------------------------------------------
def _fmt(value, spec=".3f", missing="") -> str:
    return missing if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    lines = ["## Correctness (max |kernel - fp32 reference| / max |reference|)", "",
             "| kernel | dtype | ok | errors |", "|---|---|---|---|"]
    for c in report["checks"]:
        errors = ", ".join(f"{k} {v:.1e}" for k, v in c.get("errors", {}).items()) or c.get("error", "")
        lines.append(f"| {c['kernel']} | {c['dtype']} | {'yes' if c['ok'] else 'NO'} | {errors} |")
    lines += ["", "## Kernels (median ms; GB/s and % of 3.35 TB/s, or TFLOP/s and % of 989.4 for the fused loss)", "",
              "| kernel | shape | mode | impl | ms | GB/s or TFLOP/s | % peak | triton vs best torch | triton vs liger | peak MiB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["kernels"]:
        if r["status"] != "ok":
            lines.append(f"| {r['kernel']} | {r['shape']} | {r['mode']} | {r['impl']} | {r['status']} | | | | | |")
            continue
        rate = _fmt(r.get("gb_s"), ".0f") or _fmt(r.get("tflop_s"), ".1f")
        lines.append(f"| {r['kernel']} | {r['shape']} | {r['mode']} | {r['impl']} | {r['ms']:.4f} | {rate} | "
                     f"{_fmt(r.get('pct_peak'), '.0f')} | {_fmt(r.get('vs_best_torch'), '.2f')} | "
                     f"{_fmt(r.get('vs_liger'), '.2f')} | {_fmt(r.get('peak_mib'), '.0f')} |")
    lines += ["", "## End to end (one training step: fwd + bwd + AdamW)", "",
              "| model | variant | batch x seq | step s | samples/s | tokens/s | peak GiB | MFU |", "|---|---|---|---|---|---|---|---|"]
    for r in report["e2e"]:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['variant']} | | {r['status']} | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['variant']} | {r['batch']}x{r['seq']} | {r['step_s']:.3f} | "
                     f"{r['samples_s']:.2f} | {r['tokens_s']:.0f} | {_fmt(r['peak_gib'], '.1f')} | {100 * r['mfu']:.1f}% |")
    lines += ["", "## Verdicts (default-on = correct, >= 1.0x best PyTorch and >= Liger in fwd+bwd at every shape)", "",
              "| kernel | correct | min vs best torch | min vs liger | default on |", "|---|---|---|---|---|"]
    for kernel, v in report["verdicts"].items():
        liger = _fmt(v["min_vs_liger"], ".2f") if v["liger_measured"] else "not measured"
        lines.append(f"| {kernel} | {v['correct']} | {_fmt(v['min_vs_best_torch'], '.2f')} | {liger} | {v['default_on']} |")
    return "\n".join(lines)


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, path)


# ---- main -------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the full results as JSON here")
    parser.add_argument("--quick", action="store_true", help="one shape per kernel, one end-to-end shape")
    parser.add_argument("--smoke", action="store_true", help="CPU + Triton interpreter, tiny shapes (tests the script)")
    parser.add_argument("--skip-e2e", action="store_true", help="kernels only")
    parser.add_argument("--skip-full-model", action="store_true", help="no composed BabyLLaVA run")
    parser.add_argument("--budget-s", type=float, default=200.0, help="stop starting kernel cases after this long")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    global torch, K, DIMS
    args = parse_args(argv)
    DIMS = SMOKE if args.smoke else PAPER
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    import torch as torch_module

    torch = torch_module
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("No CUDA GPU visible: this benchmark needs one (use --smoke to check the script on CPU).", file=sys.stderr)
        return 2
    K = load_kernels()
    torch.manual_seed(0)
    report: dict[str, Any] = {"env": environment(device), "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(report["env"]), flush=True)
    report["checks"] = correctness_checks(device, args.smoke)
    failed = [f"{c['kernel']}/{c['dtype']}" for c in report["checks"] if not c["ok"]]
    print(f"correctness: {'FAILED ' + ', '.join(failed) if failed else 'all ok'}", flush=True)

    timer, compiled, rows = Timer(device, args.budget_s), {}, []
    for make in kernel_cases(args, device, compiled):
        if timer.out_of_time():
            rows.append({"kernel": "-", "shape": "-", "mode": "-", "impl": "-", "status": "skipped: time budget"})
            break
        case = make()
        rows += time_case(case, timer)
        print(f"timed {case.kernel} {case.shape} ({time.monotonic() - timer.started:.0f} s)", flush=True)
        del case
        if device == "cuda":
            torch.cuda.empty_cache()
    add_ratios(rows)
    report["kernels"] = rows
    report["verdicts"] = verdicts(rows, report["checks"])

    report["e2e"] = []
    if not args.skip_e2e:
        report["e2e"] += e2e_language_model(args, device)
        print("timed the language model end to end", flush=True)
        if not args.skip_full_model:
            report["e2e"] += e2e_full_model(args, device)
    table = markdown(report)
    print(table)
    if args.out:
        report["markdown"] = table
        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
