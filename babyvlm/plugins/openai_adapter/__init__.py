"""Evaluation adapter ``openai``: any OpenAI-compatible chat endpoint (a hosted model, or ``babyvlm
serve``) answering DevCV requests, with retries, a rate limit and an on-disk request cache.

Registration only; the adapter (``adapter.py``) imports nothing heavy either, but is loaded lazily.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_eval_adapters(register):
    register("openai", "babyvlm.plugins.openai_adapter.adapter:OpenAIAdapter")
