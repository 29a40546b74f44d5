"""CLI ``babyvlm serve CHECKPOINT``: an OpenAI-compatible ``/v1/chat/completions`` server for a babyvlm
model, batching concurrent requests in one worker thread with a bound on queued work.

Registration only: Flask and torch are imported when the command runs.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    register("serve", "babyvlm.plugins.serve.command:serve", short_help="Serve a checkpoint over an OpenAI-compatible API.")
