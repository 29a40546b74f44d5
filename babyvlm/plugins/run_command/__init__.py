"""``babyvlm run CONFIG``: the whole study from one config (corpus to report), cached per stage.

The command is a thin shell over ``babyvlm.Experiment(config, work_dir).run()``; it adds nothing the
Python API lacks. Importing this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    register("run", "babyvlm.plugins.run_command.command:run_command",
             short_help="Run the whole study from one config: corpus, training, tasks, evaluation, report.")
