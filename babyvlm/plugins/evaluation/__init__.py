"""Evaluation plugin: model adapters, the ``devcv`` evaluation engine and the ``babyvlm eval`` command.

Registered (all as import strings; importing this package imports no torch):

- eval adapters ``babyvlm`` (a babyvlm checkpoint folder), ``hf`` (a local Hugging Face
  image-text-to-text folder), ``random`` (seeded), ``oracle`` (gold answers; validation only) and
  ``blind`` (wraps any adapter; every image becomes one constant grey picture) and ``shuffled`` (wraps
  any adapter; each item's images come from another item of the task) and ``per_task`` (one adapter per
  task: how a task-specific tuned study is scored);
- the evaluator ``devcv``: tasks x domains through an adapter, resumable per item, lmms-eval-style
  results files, bootstrap CIs, chance levels, blind twins, multi-process under ``torchrun``;
- the command ``eval``.

``babyvlm.plugins.evaluation.lmms`` holds the lmms-eval interop (``export_tasks`` and the lmms-eval
model class); ``babyvlm.plugins.evaluation.baselines.baseline_checks`` the random/blind task checks.
See docs/evaluation.md.
"""

from babyvlm.core.hookspecs import hookimpl

PACKAGE = "babyvlm.plugins.evaluation"


@hookimpl
def register_eval_adapters(register):
    register("babyvlm", f"{PACKAGE}.babyvlm_adapter:BabyVLMAdapter")
    register("hf", f"{PACKAGE}.hf_adapter:HFAdapter")
    register("random", f"{PACKAGE}.random_adapter:RandomAdapter")
    register("oracle", f"{PACKAGE}.oracle_adapter:OracleAdapter")
    register("blind", f"{PACKAGE}.blind_adapter:BlindAdapter")
    register("shuffled", f"{PACKAGE}.shuffled_adapter:ShuffledAdapter")
    register("per_task", f"{PACKAGE}.per_task_adapter:PerTaskAdapter")


@hookimpl
def register_evaluators(register):
    register("devcv", f"{PACKAGE}.engine:DevCVEvaluator")


@hookimpl
def register_commands(register):
    register("eval", f"{PACKAGE}.commands:eval_command",
             short_help="Evaluate MODEL on DevCV task sets; writes lmms-eval-style results and prints a score table.")
