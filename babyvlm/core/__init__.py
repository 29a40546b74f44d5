"""babyvlm's core: hookspecs, typed records, errors and experiment composition. Knows no bundled plugin."""

from babyvlm.core.compose import build, build_model, load_config, write_resolved_config
from babyvlm.core.errors import BabyVLMError, ConfigError, DataError, ModelInputError
from babyvlm.core.experiment import Experiment
from babyvlm.core.hookspecs import hookimpl
from babyvlm.core.records import Clip, Prediction, Recording, Request, Sample, SkipReport, TaskItem, Utterance

__all__ = [
    "BabyVLMError", "Clip", "Experiment", "ConfigError", "DataError", "ModelInputError", "Prediction", "Recording", "Request",
    "Sample", "SkipReport", "TaskItem", "Utterance", "build", "build_model", "hookimpl", "load_config",
    "write_resolved_config",
]
