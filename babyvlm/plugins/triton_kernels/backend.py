"""The ``triton`` kernel backend: ``TritonKernels`` (which kernels to patch in) and the runtime check.

The default switches and why they are what they are: see the package docstring (``__init__.py``).
Importing this module imports torch but never triton: the kernels load only when ``apply`` runs.
"""

from __future__ import annotations

import importlib.util

import torch

from babyvlm.core.errors import BabyVLMError, ConfigError

KERNEL_NAMES = ("rmsnorm", "swiglu", "rope", "cross_entropy")
DEFAULTS: dict[str, bool] = {name: True for name in KERNEL_NAMES}  # unmeasured; see the package docstring


class TritonKernels:
    """Kernel backend ``triton``: ``TritonKernels(rope=False).apply(model) -> model`` (patched in place)."""

    def __init__(self, rmsnorm: bool = DEFAULTS["rmsnorm"], swiglu: bool = DEFAULTS["swiglu"],
                 rope: bool = DEFAULTS["rope"], cross_entropy: bool = DEFAULTS["cross_entropy"],
                 ce_chunk_size: int | None = None) -> None:
        self.enabled = {"rmsnorm": rmsnorm, "swiglu": swiglu, "rope": rope, "cross_entropy": cross_entropy}
        for name, value in self.enabled.items():
            if not isinstance(value, bool):
                raise ConfigError(f"kernels='triton': option {name!r} must be True or False, got {value!r}")
        if ce_chunk_size is not None and (not isinstance(ce_chunk_size, int) or ce_chunk_size < 1):
            raise ConfigError(f"kernels='triton': ce_chunk_size must be a positive integer, got {ce_chunk_size!r}")
        self.ce_chunk_size = ce_chunk_size
        self.report: dict[str, int] = {}

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """Patch ``model`` in place and return it; ``self.report`` counts the modules patched per kernel."""
        require_runtime()
        from .patch import patch_model  # imports triton

        self.report = patch_model(model, self.enabled, self.ce_chunk_size)
        if any(self.enabled.values()) and not self.report:
            raise ConfigError(
                f"kernels='triton' found nothing to patch in {type(model).__name__}: it has no LlamaRMSNorm, "
                "LlamaMLP, LlamaAttention or LlamaForCausalLM module and no loss_fn attribute")
        return model

    def __repr__(self) -> str:
        switches = ", ".join(f"{name}={value}" for name, value in self.enabled.items())
        return f"TritonKernels({switches}, ce_chunk_size={self.ce_chunk_size})"


def require_runtime() -> None:
    """Raise a clear error unless the kernels can run: triton installed, and a CUDA GPU or the interpreter."""
    if importlib.util.find_spec("triton") is None:
        raise BabyVLMError("kernels='triton' needs the triton package: pip install 'babyvlm[triton]'")
    from .runtime import interpreting

    if not torch.cuda.is_available() and not interpreting():
        raise BabyVLMError(
            "kernels='triton' needs a CUDA GPU, and PyTorch sees none (torch.cuda.is_available() is False). "
            "Leave 'kernels' unset to use PyTorch's own ops on CPU, or set TRITON_INTERPRET=1 to run the "
            "kernels in Triton's slow CPU interpreter (for tests).")
