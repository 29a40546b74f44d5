"""SAYCam data plugin: registers the ``saycam`` source (head-camera videos + human/ASR transcripts).

``babyvlm.build("source", "saycam", root=...)`` returns a ``SaycamSource``; see its docstring and
docs/data-formats.md for the layout, options and parsing rules.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["SaycamSource"]
__getattr__ = lazy_exports(__name__, {"SaycamSource": "source"})


@hookimpl
def register_sources(register):
    register("saycam", "babyvlm.plugins.saycam.source:SaycamSource", domain="saycam")
