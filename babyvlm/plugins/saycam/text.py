"""Utterance text cleaning: transcriber markup (``*actions*``, ``[notes]``, ``(asides)``, ``--``) removed."""

from __future__ import annotations

import re

_MARKUP = (
    re.compile(r"\*[^*]*\*"),  # *laughs*
    re.compile(r"\[[^\[\]]*\]"),  # [inaudible], innermost first so nesting unwinds
    re.compile(r"\([^()]*\)"),  # (to the dog)
    re.compile(r"\{[^{}]*\}"),  # {noise}
)
_DASHES = re.compile(r"-{2,}|—")
_STRAY = re.compile(r"[*\[\](){}]")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?])")
_LEADING_PUNCTUATION = " ,;:.-"


def clean_utterance(text: str) -> str:
    """Drop markup and unmatched markers, tidy whitespace; returns '' when nothing spoken is left."""
    previous = None
    while previous != text:  # repeat so nested markup such as "[a (b) c]" is removed whole
        previous = text
        for pattern in _MARKUP:
            text = pattern.sub(" ", text)
    text = _STRAY.sub(" ", _DASHES.sub(" ", text))
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(text.split()))
    text = text.lstrip(_LEADING_PUNCTUATION).strip()
    return text if any(char.isalnum() for char in text) else ""
