"""The pretraining set: builder (source -> video / image / interleaved samples -> store), the
``babyvlm data`` commands, the ``pretraining_set`` builder component, and the torch dataset, collate and resumable sampler over a store.

Training code uses::

    from babyvlm.plugins.pretraining_set import PretrainingDataset, ResumableSampler, ResumableLoader, collate_samples
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["BuildPlan", "BuildResult", "BuildSettings", "PretrainingDataset", "PretrainingSetBuilder", "ResumableLoader",
           "ResumableSampler", "build_pretraining_set", "collate_samples"]
__getattr__ = lazy_exports(__name__, {
    "BuildPlan": "builder", "BuildResult": "builder", "build_pretraining_set": "builder",
    "BuildSettings": "clips",
    "PretrainingDataset": "dataset", "collate_samples": "dataset",
    "ResumableLoader": "sampler", "ResumableSampler": "sampler",
    "PretrainingSetBuilder": "component",
})


@hookimpl
def register_builders(register):
    register("pretraining_set", "babyvlm.plugins.pretraining_set.component:PretrainingSetBuilder")


@hookimpl
def register_commands(register):
    register("data", "babyvlm.plugins.pretraining_set.commands:data_group",
             short_help="Pretraining sample stores: build, merge, verify, stats, export, import.")
