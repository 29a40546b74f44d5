"""The synthetic infant world: babyvlm's embedded default dataset, written in the real SAYCam and Ego4D formats.

Registers the corpus writers ``saycam`` and ``ego4d`` (what a run's ``corpus`` section writes), the
``synth`` command group (``babyvlm synth saycam|ego4d OUT --minutes M --seed S``) and the
sources ``synthetic`` (a generated SAYCam-format corpus read by the ``saycam`` source) and
``synthetic_ego4d`` (an Ego4D-format one read by the ``ego4d`` source). Heavy modules (numpy drawing,
PyAV) are imported only when something is generated.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["SyntheticEgo4DSource", "SyntheticSource", "synth_group"]
__getattr__ = lazy_exports(__name__, {"SyntheticEgo4DSource": "source", "SyntheticSource": "source",
                                      "synth_group": "commands"})


@hookimpl
def register_sources(register):
    register("synthetic", "babyvlm.plugins.synthetic.source:SyntheticSource", domain="saycam")
    register("synthetic_ego4d", "babyvlm.plugins.synthetic.source:SyntheticEgo4DSource", domain="ego4d")


@hookimpl
def register_corpus_writers(register):
    register("saycam", "babyvlm.plugins.synthetic.writers:SaycamCorpusWriter")
    register("ego4d", "babyvlm.plugins.synthetic.writers:Ego4DCorpusWriter")


@hookimpl
def register_commands(register):
    register("synth", "babyvlm.plugins.synthetic.commands:synth_group",
             short_help="Write synthetic corpora in the real SAYCam / Ego4D formats (deterministic per seed).")
