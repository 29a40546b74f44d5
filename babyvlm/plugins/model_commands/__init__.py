"""CLI ``babyvlm model``: ``info`` (parameter counts per part, built on the meta device so even the paper
preset is instant and allocates nothing; tokens per image as the connector declares them; ``--stage``
for the trainable counts a training stage leaves) and ``build`` (build a model and save its checkpoint
folder).

CONFIG is a preset name (``tiny``, ``paper``), a ``.py`` config, or a checkpoint folder. The commands
live in ``commands.py``; importing this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["format_info", "model_group", "model_info", "resolve_config"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "commands"))


@hookimpl
def register_commands(register):
    register("model", "babyvlm.plugins.model_commands.commands:model_group", short_help="Inspect and build models.")
