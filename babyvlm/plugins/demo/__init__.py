"""``babyvlm demo``: the main job on the embedded default, end to end — ``babyvlm run demo`` under its
historical name: synthetic SAYCam- and Ego4D-format corpora -> pretraining store -> every training
phase -> DevCV tasks -> the blind twin -> evaluation -> report (see ``babyvlm/plugins/run_command/pipeline.py``).

Also here: ``heldout.py``, the held-out pretraining loss with the true images and with images swapped
between samples (``evaluate_heldout(experiment)``), a quick check of whether a model uses what it sees on
its own pretraining data. Importing this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["demo_command", "heldout_loss", "evaluate_heldout"]
__getattr__ = lazy_exports(__name__, {"demo_command": "commands", "heldout_loss": "heldout",
                                      "evaluate_heldout": "heldout"})


@hookimpl
def register_commands(register):
    register("demo", "babyvlm.plugins.demo.commands:demo_command",
             short_help="Run the end-to-end demo on the embedded synthetic infant world.")
