"""``babyvlm run CONFIG``: the whole study from one config (corpus to report), cached per stage.

The run pipeline (``pipeline.RunPipeline``) is this plugin's: it owns the config sections ``corpus``,
``ood_corpus``, ``ood_data``, ``tasks``, ``evaluation`` and ``report`` (registered as
``config_section``s, checked in ``sections``) and drives every stage through registry-built
components; the command is a thin shell over ``RunPipeline(config, work_dir).run()``. Importing this
package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl

_SECTIONS = "babyvlm.plugins.run_command.sections"


@hookimpl
def register_config_sections(register):
    for name in ("corpus", "ood_corpus", "ood_data", "tasks", "evaluation", "report"):
        register(name, f"{_SECTIONS}:check_{name}")


@hookimpl
def register_commands(register):
    register("run", "babyvlm.plugins.run_command.command:run_command",
             short_help="Run the whole study from one config: corpus, training, tasks, evaluation, report.")
