"""Recipe plugin: the pieces of the demo's training recipe that make a tiny model use its images.

- template ``baby_v1_qfirst``: ``baby_v1`` with the question placed before the leading images, so that in
  a causal LM the image tokens can attend to the question (``question_first``).
- ``TaskBalancedDataset`` (``balanced``): a map-style view over several tasks' samples in which every
  task gets the same share of draws, whatever its size, under any shuffling sampler; ``balanced_records``
  does the same to a mixed LLaVA instruction file.
- command ``babyvlm recipe balance IN OUT``: writes that balanced instruction file (for phase 3's
  ``data=dict(llava_json=OUT)``).

Registered as import strings: discovering this plugin imports nothing heavy.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["QuestionFirstTemplate", "TaskBalancedDataset", "balanced_records"]
__getattr__ = lazy_exports(__name__, {"QuestionFirstTemplate": "question_first",
                                      "TaskBalancedDataset": "balanced", "balanced_records": "balanced"})


@hookimpl
def register_templates(register):
    register("baby_v1_qfirst", "babyvlm.plugins.recipe.question_first:QuestionFirstTemplate")


@hookimpl
def register_commands(register):
    register("recipe", "babyvlm.plugins.recipe.commands:recipe_group",
             short_help="Training-recipe helpers: task-balanced instruction files.")
