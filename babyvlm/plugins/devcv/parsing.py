"""Answer parsers shared by every DevCV task, as the leaderboard parses generated text.

- letters: the first standalone ``A``-``D`` (case-insensitive), upper-cased: ``"(B)"``, ``"b."`` and
  ``"I think it is A"`` all parse; ``"I"`` is not a letter answer.
- numbers: the first digit run or spelled number zero-ten, whichever comes first (``"10 apples"`` ->
  ``"10"``, ``"three"`` -> ``"3"``).
- directions (Visual Delayed Response): the text lower-cased, hyphens and outer punctuation and
  whitespace removed, must equal one of the eight directions exactly (``"left."`` -> ``"left"``,
  ``"top left"`` stays ``"top left"``, ``"it went left"`` -> ``None``).
"""

from __future__ import annotations

import re

LETTERS = ("A", "B", "C", "D")
_LETTER = re.compile(r"\b([A-Da-d])\b")
SPELLED = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10}
_NUMBER = re.compile(r"\d+|\b(?:" + "|".join(SPELLED) + r")\b", re.IGNORECASE)
# clockwise from the top: neighbours in this ring are "adjacent" for VDR's adjacent accuracy
DIRECTIONS = ("top", "top right", "right", "bottom right", "bottom", "bottom left", "left", "top left")
BINARY_DIRECTIONS = ("left", "right")


def parse_letter(text: str) -> str | None:
    match = _LETTER.search(text or "")
    return match.group(1).upper() if match else None


def parse_number(text: str) -> str | None:
    match = _NUMBER.search(text or "")
    if not match:
        return None
    token = match.group(0)
    return str(int(token)) if token.isdigit() else str(SPELLED[token.lower()])


def normalise_direction(text: str) -> str:
    cleaned = (text or "").lower().replace("-", " ").replace("_", " ")
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" \t\n.,;:!?\"'()[]")
    return cleaned


def parse_direction(text: str, allowed: tuple[str, ...] = DIRECTIONS) -> str | None:
    cleaned = normalise_direction(text)
    return cleaned if cleaned in allowed else None


def adjacent_directions(direction: str) -> set[str]:
    """``direction`` and its two neighbours on the 8-direction ring (gold "left" -> top/bottom left, left)."""
    index = DIRECTIONS.index(direction)
    return {DIRECTIONS[(index + step) % len(DIRECTIONS)] for step in (-1, 0, 1)}
