"""Value checks every config surface shares, so a bad value is refused with the same words wherever it
is written: numbers in a range (finite, the right kind), and unknown keys with a did-you-mean."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

from babyvlm.core.errors import ConfigError


def check_number(component: str, name: str, value: object, *, whole: bool = False, low: float,
                 high: float | None = None, strict: bool = False) -> None:
    """Refuse a bad number by name (a string lr would otherwise fail deep inside torch; NaN and
    infinity are never in range)."""
    kinds = (int,) if whole else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if strict else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{component}: {name} must be {kind} {bound}, got {value!r}")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    close = close or [k for k in known if len(str(name)) >= 3 and k.startswith(str(name))][:1]  # 'heldout'
    return f" (did you mean {close[0]!r}?)" if close else ""


def refuse_unknown(keys: Iterable[Any], known: Iterable[str], where: str, what: str = "key") -> None:
    """A ``ConfigError`` naming the first of ``keys`` not in ``known``, the closest known one and the list."""
    known = list(known)
    for key in keys:
        if key not in known:
            raise ConfigError(f"{where}: unknown {what} {key!r}{did_you_mean(key, known)}; known: "
                              f"{', '.join(map(str, known)) or '(none)'}")
