"""Ego4D data plugin: registers the ``ego4d`` source (egocentric videos + timestamped narrations).

``babyvlm.build("source", "ego4d", root=...)`` returns an ``Ego4DSource``; see its docstring and
docs/data-formats.md for the layout, options and the narration-text rules.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["Ego4DSource"]
__getattr__ = lazy_exports(__name__, {"Ego4DSource": "source"})


@hookimpl
def register_sources(register):
    register("ego4d", "babyvlm.plugins.ego4d.source:Ego4DSource", domain="ego4d")
