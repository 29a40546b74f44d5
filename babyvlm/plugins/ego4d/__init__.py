"""Ego4D data plugin: registers the ``ego4d`` source (egocentric videos + timestamped narrations).

``babyvlm.build("source", "ego4d", root=...)`` returns an ``Ego4DSource``; see its docstring and
docs/data-formats.md for the layout, options and the narration-text rules.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins.ego4d.source import Ego4DSource

__all__ = ["Ego4DSource"]


@hookimpl
def register_sources(register):
    register("ego4d", Ego4DSource)
