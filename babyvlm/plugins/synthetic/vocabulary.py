"""The synthetic world's object vocabulary: early nouns of child-directed speech, ordered by age of acquisition.

The order and ages follow the rough pattern of MacArthur-Bates CDI production norms (animals, toys, food
and clothing first; furniture and vehicles later); exact norms are not needed, only a plausible growth
of the words a caregiver talks about as the child gets older.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_AGE_MONTHS = 6.0
MAX_AGE_MONTHS = 32.0
YOUNGEST_VOCABULARY = 10  # words a caregiver of a 6-month-old talks about


@dataclass(frozen=True)
class Category:
    """One object word. ``id`` is the COCO category id (1-based, stable across corpora)."""

    id: int
    name: str
    plural: str
    aoa_months: float  # typical age of first production
    colour: str  # the colour word a caregiver would use for the prototype ("" if none fits)


def _vocabulary() -> tuple[Category, ...]:
    rows = [
        ("ball", "balls", 12, "red"), ("dog", "dogs", 13, "brown"), ("baby", "babies", 13, ""),
        ("duck", "ducks", 14, "yellow"), ("cat", "cats", 14, "grey"), ("book", "books", 15, "blue"),
        ("shoe", "shoes", 15, "purple"), ("bottle", "bottles", 15, ""), ("car", "cars", 16, "green"),
        ("banana", "bananas", 16, "yellow"), ("apple", "apples", 16, "red"), ("cup", "cups", 17, "orange"),
        ("bird", "birds", 17, "blue"), ("bear", "bears", 17, "brown"), ("hat", "hats", 18, "pink"),
        ("sock", "socks", 18, ""), ("key", "keys", 18, "yellow"), ("spoon", "spoons", 19, ""),
        ("fish", "fish", 19, "orange"), ("truck", "trucks", 19, "blue"), ("block", "blocks", 20, "green"),
        ("phone", "phones", 20, "black"), ("bowl", "bowls", 21, "green"), ("chair", "chairs", 21, "brown"),
        ("cookie", "cookies", 21, "brown"), ("balloon", "balloons", 22, "pink"), ("flower", "flowers", 22, "purple"),
        ("boat", "boats", 23, "white"), ("train", "trains", 23, "red"), ("horse", "horses", 24, "black"),
        ("clock", "clocks", 25, ""), ("pig", "pigs", 25, "pink"),
    ]
    return tuple(Category(i + 1, name, plural, float(aoa), colour) for i, (name, plural, aoa, colour) in enumerate(rows))


VOCABULARY: tuple[Category, ...] = _vocabulary()
BY_NAME: dict[str, Category] = {c.name: c for c in VOCABULARY}


def category(name: str) -> Category:
    return BY_NAME[name]


def development(age_months: float) -> float:
    """0 at 6 months, 1 at 32 months: how far along the child's world has grown."""
    return min(1.0, max(0.0, (age_months - MIN_AGE_MONTHS) / (MAX_AGE_MONTHS - MIN_AGE_MONTHS)))


def vocabulary_for_age(age_months: float) -> tuple[Category, ...]:
    """The words a caregiver uses with a child of this age: the earliest-acquired ones, more with age."""
    size = round(YOUNGEST_VOCABULARY + (len(VOCABULARY) - YOUNGEST_VOCABULARY) * development(age_months))
    return VOCABULARY[:size]


def categories_json() -> list[dict[str, object]]:
    """The COCO ``categories`` list shared by every annotation file."""
    return [{"id": c.id, "name": c.name, "supercategory": "object"} for c in VOCABULARY]
