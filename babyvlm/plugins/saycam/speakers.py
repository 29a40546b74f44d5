"""Speaker codes: free-text transcript speakers normalised to a few roles, and the caregiver filter.

Roles: mother, father, grandmother, grandfather, caregiver (nanny, babysitter, aunt, uncle), adult
(other adults), sibling, child (the recorded child), media (TV, radio, toys), unknown (blank or an
unrecognised code). The default filter ``"caregivers"`` keeps the adult roles and ``unknown`` and
drops the child's own speech, siblings and media.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from babyvlm.core.errors import ConfigError

ROLES: tuple[str, ...] = (
    "mother", "father", "grandmother", "grandfather", "caregiver", "adult", "sibling", "child", "media", "unknown",
)
_ALIASES: dict[str, tuple[str, ...]] = {
    "mother": ("m", "mom", "mommy", "mom mom", "mum", "mummy", "mother", "mama", "mamma", "momma", "mot", "mo"),
    "father": ("d", "f", "dad", "daddy", "father", "papa", "pa", "dada", "pop", "pops", "fat"),
    "grandmother": ("grandma", "grandmother", "granny", "grammy", "nana", "nanna", "gm", "grm", "gma", "oma"),
    "grandfather": ("grandpa", "grandfather", "granddad", "grandad", "gramps", "gp", "gf", "grf", "gpa", "opa"),
    "caregiver": ("caregiver", "carer", "nanny", "babysitter", "sitter", "au pair", "aunt", "auntie", "aunty",
                  "uncle"),
    "adult": ("adult", "woman", "man", "lady", "guest", "friend", "visitor", "researcher", "experimenter",
              "investigator", "inv", "teacher", "doctor", "adult female", "adult male"),
    "sibling": ("sibling", "sib", "sister", "brother", "sis", "bro"),
    "child": ("c", "child", "baby", "infant", "toddler", "kid", "chi", "target child"),
    "media": ("media", "tv", "television", "radio", "video", "movie", "music", "song", "toy", "phone", "ipad"),
    "unknown": ("", "?", "??", "unknown", "unk", "unclear", "unsure", "n/a", "na", "xxx"),
}
SPEAKER_TABLE: dict[str, str] = {alias: role for role, aliases in _ALIASES.items() for alias in aliases}

SPEAKER_PRESETS: dict[str, frozenset[str]] = {
    "caregivers": frozenset({"mother", "father", "grandmother", "grandfather", "caregiver", "adult", "unknown"}),
    "not_child": frozenset(ROLES) - {"child"},
    "all": frozenset(ROLES),
}
DEFAULT_SPEAKERS = "caregivers"

_BRACKETED = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}")
_EDGE_PUNCTUATION = " \t.:;,-_*'\"!#"


def speaker_key(raw: str) -> str:
    """A speaker cell reduced to its lookup key: ``' Mom: (off camera)'`` -> ``'mom'``."""
    text = _BRACKETED.sub(" ", raw.lower())
    return " ".join(text.split()).strip(_EDGE_PUNCTUATION)


def build_speaker_table(aliases: Mapping[str, str] | None) -> dict[str, str]:
    """The built-in table extended (or overridden) by user ``speaker_aliases`` (code -> role)."""
    table = dict(SPEAKER_TABLE)
    for code, role in (aliases or {}).items():
        if role not in ROLES:
            raise ConfigError(f"speaker_aliases[{code!r}]: unknown role {role!r}; roles: {', '.join(ROLES)}")
        table[speaker_key(code)] = role
    return table


def normalize_speaker(raw: str, table: Mapping[str, str] = SPEAKER_TABLE) -> str:
    """The role of a speaker code; unrecognised codes are ``unknown``."""
    return table.get(speaker_key(raw), "unknown")


def resolve_speakers(option: str | Iterable[str]) -> frozenset[str]:
    """The roles to keep: a preset name, a comma-separated string of roles, or an iterable of roles."""
    if option is None:
        raise ConfigError(f"speakers: give a preset ({', '.join(SPEAKER_PRESETS)}) or a list of roles, not None")
    if isinstance(option, str):
        if option in SPEAKER_PRESETS:
            return SPEAKER_PRESETS[option]
        option = [part.strip() for part in option.split(",") if part.strip()]
    roles = frozenset(option)
    unknown = sorted(roles - set(ROLES))
    if unknown or not roles:
        raise ConfigError(
            f"speakers: {', '.join(map(repr, unknown)) or 'nothing'} is not a role or preset; "
            f"presets: {', '.join(SPEAKER_PRESETS)}; roles: {', '.join(ROLES)}"
        )
    return roles
