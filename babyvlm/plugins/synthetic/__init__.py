"""The synthetic infant world: babyvlm's embedded default dataset, written in the real SAYCam and Ego4D formats.

Registers the ``synth`` command group (``babyvlm synth saycam|ego4d OUT --minutes M --seed S``) and the
sources ``synthetic`` (a generated SAYCam-format corpus read by the ``saycam`` source) and
``synthetic_ego4d`` (an Ego4D-format one read by the ``ego4d`` source). Heavy modules (numpy drawing,
PyAV) are imported only when something is generated.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins.synthetic.commands import synth_group
from babyvlm.plugins.synthetic.source import SyntheticEgo4DSource, SyntheticSource

__all__ = ["SyntheticEgo4DSource", "SyntheticSource", "synth_group"]


@hookimpl
def register_sources(register):
    register("synthetic", SyntheticSource)
    register("synthetic_ego4d", SyntheticEgo4DSource)


@hookimpl
def register_commands(register):
    register("synth", synth_group)
