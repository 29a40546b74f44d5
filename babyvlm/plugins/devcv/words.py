"""Category words in prompts: plurals for "How many {objs}" and "Which image has more {objs}"."""

from __future__ import annotations

IRREGULAR = {"mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "person": "people",
             "sheep": "sheep", "fish": "fish", "man": "men", "woman": "women", "goose": "geese",
             "knife": "knives", "leaf": "leaves", "shelf": "shelves", "scissors": "scissors", "glasses": "glasses"}


def plural(word: str) -> str:
    word = word.strip()
    last = word.split(" ")[-1]
    head = word[: len(word) - len(last)]
    if last in IRREGULAR:
        return head + IRREGULAR[last]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"
