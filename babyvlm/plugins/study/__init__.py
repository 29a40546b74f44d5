"""Human baselines: ``babyvlm study serve`` (a browser-based participant study over DevCV items, answers in
SQLite), ``babyvlm study export`` (a ``human`` result in ``babyvlm eval``'s results format, agreement and
per-item response distributions) and ``alignment.compare_with_humans`` (DevBench-style item-level
human–model alignment, used by ``babyvlm eval --compare-human``).

Registration only: Flask is imported when a command runs.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    register("study", "babyvlm.plugins.study.commands:study_group",
             short_help="Run a participant study in the browser and export human results.")
