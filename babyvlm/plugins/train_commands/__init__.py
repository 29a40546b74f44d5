"""``babyvlm train CONFIG [--phase NAME|all] [--resume] [--work-dir DIR] [--set k=v ...]``: the training
phases of an experiment config through ``babyvlm.Experiment``; under ``torchrun`` every process runs
it (DDP; rank 0 builds the store and tokenizer first). The command lives in ``commands.py``; importing
this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    register("train", "babyvlm.plugins.train_commands.commands:train_command",
             short_help="Train an experiment's phases (0-language, 0-vision, 1-alignment, 2-joint, 3-instruction).")
