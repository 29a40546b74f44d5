"""The pretraining set: builder (source -> video / image / interleaved samples -> store), the
``babyvlm data`` commands, and the torch dataset, collate and resumable sampler over a store.

Training code uses::

    from babyvlm.plugins.pretraining_set import PretrainingDataset, ResumableSampler, ResumableLoader, collate_samples
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins.pretraining_set.builder import BuildPlan, BuildResult, build_pretraining_set
from babyvlm.plugins.pretraining_set.clips import BuildSettings
from babyvlm.plugins.pretraining_set.dataset import PretrainingDataset, collate_samples
from babyvlm.plugins.pretraining_set.sampler import ResumableLoader, ResumableSampler

__all__ = ["BuildPlan", "BuildResult", "BuildSettings", "PretrainingDataset", "ResumableLoader",
           "ResumableSampler", "build_pretraining_set", "collate_samples"]


@hookimpl
def register_commands(register):
    from babyvlm.plugins.pretraining_set.commands import data_group

    register("data", data_group)
