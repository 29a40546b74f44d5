"""babyvlm: a plugin-based platform for developmentally grounded vision-language research."""

__version__ = "0.1.0"

from babyvlm.core import (  # noqa: E402
    BabyVLMError,
    Experiment,
    build,
    build_model,
    hookimpl,
    load_config,
    write_resolved_config,
)

__all__ = ["BabyVLMError", "Experiment", "__version__", "build", "build_model", "hookimpl", "load_config", "write_resolved_config"]
