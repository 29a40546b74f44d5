"""babyvlm_example_plugin: a third-party babyvlm plugin with two components.

- connector ``query_resampler``: a Q-Former-like resampler, N encoder tokens -> 4 learned query tokens;
- task ``example_brighter``: a DevCV-style two-choice task, "Which image is brighter? (A) <image> (B) <image>".

This module is what the ``babyvlm`` entry point names. It stays light: components are registered as
import strings, so ``babyvlm plugins`` lists them without importing torch or the task code.
"""

from babyvlm import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_connectors(register):
    register("query_resampler", "babyvlm_example_plugin.resampler:QueryResampler")


@hookimpl
def register_tasks(register):
    register("example_brighter", "babyvlm_example_plugin.brighter:WhichIsBrighter")
