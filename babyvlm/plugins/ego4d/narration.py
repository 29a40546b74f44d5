"""Ego4D narration text: ``#C C picks up a cup`` turned into plain English for utterance-like use.

Rules (docs/data-formats.md): the ``#C`` (camera wearer) and ``#O`` (other person) tags are dropped,
the camera-wearer subject ``C`` becomes a natural phrase (default "the person"), other people's letter
ids are dropped (``man X`` -> ``the man``), ``#unsure`` markers are removed, and ``#summary`` entries are
recognised so the source can count them instead of using them.
"""

from __future__ import annotations

import re

DEFAULT_CAMERA_WEARER = "the person"

_SUMMARY = re.compile(r"^\s*#\s*summary\b", re.IGNORECASE)
_UNSURE = re.compile(r"#\s*unsure\b", re.IGNORECASE)
_SUBJECT_TAG = re.compile(r"(?<!\w)#\s*[CcOo]\b")
_OTHER_TAG = re.compile(r"(?<!\w)#\w+")
_PERSON_ID = re.compile(
    r"\b(?:(?P<det>the|a|an|another)\s+)?(?P<noun>man|woman|person|lady|boy|girl|child|kid|guy|baby|friend)"
    r"\s+[A-BD-Z]\b(?!['’])",
    re.IGNORECASE,
)
_WEARER = re.compile(r"(?<![\w'’-])C(?=$|[\s'’.,;:!?)])")


def is_summary(text: str) -> bool:
    """True for ``#summary``-style entries, which describe a whole clip rather than a moment."""
    return bool(_SUMMARY.match(text))


def clean_narration(text: str, camera_wearer: str = DEFAULT_CAMERA_WEARER) -> str:
    """Plain-English narration; '' when nothing is left (e.g. a bare ``#unsure``)."""
    text = _UNSURE.sub(" ", text)
    text = _SUBJECT_TAG.sub(" ", text)
    text = _OTHER_TAG.sub(" ", text)
    text = _PERSON_ID.sub(_person, text)
    text = _WEARER.sub(camera_wearer, text)
    text = " ".join(text.split()).strip(" ,;:-")
    return text if any(char.isalnum() for char in text) else ""


def _person(match: re.Match) -> str:
    determiner = match["det"] or "the"
    return f"{determiner} {match['noun']}"
