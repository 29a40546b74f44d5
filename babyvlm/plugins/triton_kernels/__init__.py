"""Triton training kernels (fused RMSNorm, SwiGLU, RoPE, linear + cross-entropy) as a kernel backend.

``build_model(config, kernels="triton")`` (or ``kernels=dict(type="triton", rope=False)``) builds the
model, then ``TritonKernels.apply`` swaps its LLaMA modules for Triton-backed ones (see ``patch.py``).
Nothing is patched unless a config asks for it, so CPU training uses PyTorch's ops.

Default switches: all four kernels are on when ``kernels="triton"`` is asked for. That choice is NOT a
measurement: no GPU was available when these kernels were written, so none of them has been timed.
Each replaces a multi-kernel eager path of ``transformers``' LLaMA (RMSNorm: ~7 elementwise/reduction
kernels; SiLU x up: 2 kernels + saved intermediate; rotate_half RoPE: ~10 kernels and new q/k; the
unfused loss: full fp32 logits), so by bytes moved each should win against eager, and the fused loss
lowers peak memory by ``tokens x vocab`` logits regardless of speed. ``benchmarks/kernel_speed.py`` prints a
verdict per kernel; flip a default in ``backend.py`` to ``False`` when the measured table says it loses.

Importing this package imports neither torch nor triton; the backend lives in ``backend.py`` and the
kernels load only when ``apply`` runs.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["DEFAULTS", "KERNEL_NAMES", "TritonKernels", "require_runtime"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "backend"))


@hookimpl
def register_kernels(register) -> None:
    register("triton", "babyvlm.plugins.triton_kernels.backend:TritonKernels")
