"""Bundled plugins. Each registers through the public hooks and the ``babyvlm`` entry-point group.

Every bundled entry-point module is light: it registers its components and commands as import strings
(``"babyvlm.plugins.vit.encoder:ViTEncoder"``), so discovering plugins never imports torch,
transformers, triton, PyAV or lmdb. A plugin package keeps its public names importable from the
package itself (``from babyvlm.plugins.vit import ViTEncoder``) through ``lazy_exports``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports ``{name: submodule}`` exports on first access.

    Use as ``__getattr__ = lazy_exports(__name__, {"ViTEncoder": "encoder"})`` in a package's
    ``__init__``: the package imports nothing heavy, and the submodule loads when the name is used.
    """

    def __getattr__(name: str) -> Any:
        submodule = exports.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{submodule}"), name)

    return __getattr__
