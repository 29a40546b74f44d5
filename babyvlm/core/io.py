"""Small I/O helpers every stage shares: atomic writes, JSON reads with located errors, paths that
must stay inside their root, and the one ``KEY=VALUE`` option parser the CLI uses."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from babyvlm.core.errors import ConfigError, DataError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a part.

    The temp file has a unique random name in the target's folder (same filesystem, so ``os.replace``
    is atomic; concurrent writers never share a temp name), is created like a plain ``open()`` would
    (so its mode follows the umask), is fsynced before the rename (so a power loss cannot leave the
    new name on unwritten data), and is removed if anything fails.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    handle = open(tmp, "xb")  # "x": never write into (or clean up below) a file someone else made
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def load_json(path: str | os.PathLike, encoding: str = "utf-8") -> Any:
    """Parse a JSON file; errors name the file and the line/column (or the undecodable byte)."""
    path = Path(path)
    try:
        text = path.read_text(encoding=encoding)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def path_inside(root: str | os.PathLike, relative: str, where: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and any that leave the root (``..``,
    symlinks) or cannot be a path at all (a NUL byte, a symlink loop). ``where`` names the file/record
    the path came from, for the error message."""
    if not isinstance(relative, str) or not relative:
        raise DataError(f"{where}: expected a relative path, got {relative!r}")
    try:
        base = Path(root).resolve()
        resolved = (base / relative).resolve()
    except (ValueError, OSError, RuntimeError) as exc:  # NUL byte; name too long; symlink loop
        raise DataError(f"{where}: invalid path {relative!r} ({exc})") from exc
    if os.path.isabs(relative):
        raise DataError(f"{where}: absolute path {relative!r} refused; paths must be relative to {base}")
    if not resolved.is_relative_to(base):
        raise DataError(f"{where}: path {relative!r} leaves its root {base}; refused")
    return resolved


def parse_key_values(pairs: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` pairs -> dict. A value is read as JSON (numbers, true/false/null, lists, quoted
    strings) and otherwise kept as the literal string, so ``a=1`` is an int and ``a=human`` a str."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag}: expected KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options
