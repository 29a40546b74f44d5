"""The crash-safe file layer every writer shares, and small I/O helpers.

- ``atomic_write_bytes/text/json``: readers see the old file or the new one, never a part (fsynced);
  ``atomic_output`` gives the same to writers that need a file name (video encoders).
- ``replaced_folder``: build a whole folder aside, then swap it in atomically (checkpoints, exports).
- ``WriterLock``: one writer per folder (store builds, merges, imports, exports); a second is refused
  with the holder's pid and host; a lock left by a dead process is detected and taken over.
- ``no_space_error``/``disk_errors``: a full disk becomes "no space left on DEVICE/PATH", not a traceback.
- ``load_json`` (errors with file:line:column), ``path_inside`` (paths stay inside their root),
  ``regular_file`` (FIFOs and devices are refused), and the one ``KEY=VALUE`` parser the CLI uses.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from babyvlm.core.errors import BabyVLMError, ConfigError, DataError

AT_FDCWD, RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>
# the kernel or filesystem cannot exchange: fall back to two renames
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
LOCK_NAME = ".babyvlm.lock"


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


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temp path next to ``path`` for writers that need a file name (a video encoder, a
    library's ``save``): when the block succeeds the file is fsynced and renamed over ``path``
    (readers see the old file or the new one), when it fails the temp file is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        yield tmp
        descriptor = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit


def sort_safetensors_metadata(path: str | os.PathLike) -> None:
    """Rewrite a safetensors file's header in place with its ``__metadata__`` keys sorted.

    safetensors keeps the metadata in a hash map whose order changes from call to call, so the same tensors
    and metadata gave files that differed byte for byte, and so did every SHA-256 recorded for them. Only
    the order changes: the header keeps its length (padded with spaces, as safetensors pads it), the
    tensors' bytes are not touched."""
    target = Path(path)
    with open(target, "r+b") as handle:
        size_bytes = handle.read(8)
        size = int.from_bytes(size_bytes, "little") if len(size_bytes) == 8 else -1
        raw = handle.read(size) if 0 < size <= SAFETENSORS_MAX_HEADER else b""
        if len(raw) != size:
            raise DataError(f"{target}: not a safetensors file (a header of {size} bytes cannot be read)")
        try:
            header = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
            raise DataError(f"{target}: not a safetensors file (its header is not JSON: {exc})") from exc
        if not isinstance(header, dict):
            raise DataError(f"{target}: not a safetensors file (its header is not a JSON object)")
        if not isinstance(header.get("__metadata__"), dict):
            return
        ordered = {"__metadata__": dict(sorted(header["__metadata__"].items()))}
        ordered.update((key, value) for key, value in header.items() if key != "__metadata__")
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > size:  # cannot happen for a reordering; refuse rather than move the tensors
            raise DataError(f"{target}: sorted safetensors header is {len(text)} bytes, longer than the {size} "
                            f"written; the file was left as it was")
        handle.seek(8)
        handle.write(text.ljust(size, b" "))


def load_json(path: str | os.PathLike, encoding: str = "utf-8") -> Any:
    """Parse a JSON file; errors name the file and the line/column (or the undecodable byte)."""
    path = Path(path)
    regular_file(path)  # a FIFO would block the read forever, a device would never end
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


def parse_key_values(pairs: Iterable[str], flag: str = "override") -> dict[str, Any]:
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


# ---- whole folders, swapped in atomically ----------------------------------------------------------
@contextlib.contextmanager
def replaced_folder(target: str | os.PathLike, marker: str | None = None, what: str = "folder") -> Iterator[Path]:
    """Yield a fresh temp folder ``.NAME.<hex>.tmp`` next to ``target``; when the block succeeds its files
    are fsynced and it replaces ``target`` as a whole, when it fails it is deleted and ``target`` is
    untouched. Only a missing or empty folder, or one holding the file ``marker`` (what this kind of
    folder always contains, e.g. a checkpoint's ``babyvlm.json``), is ever replaced; ``what`` names the
    kind of folder in errors. A symlinked ``target`` is
    followed: the folder it points to is replaced and the link kept.

    What a crash (a kill, or a power loss on a filesystem that keeps fsynced data) can leave:

    * Linux with ``renameat2(RENAME_EXCHANGE)`` (glibc >= 2.28; ext4, xfs, btrfs, tmpfs...): the swap is
      one atomic exchange, so ``target`` always holds the complete previous copy or the complete
      new one. At most a ``.NAME.<hex>.tmp`` sibling is left over (an unfinished save, or the previous
      copy not yet deleted); it is never read and is safe to delete.
    * Elsewhere: two renames (``target`` to ``.NAME.<hex>.old``, then the temp folder to ``target``). A
      crash between them leaves no ``target``, only the previous copy in ``.NAME.<hex>.old``;
      ``load_checkpoint`` and the next save to ``target`` rename it back (with a warning) when it is the
      only such copy. This assumes no other process is saving to ``target`` at that moment.
    """
    target = Path(os.path.realpath(target))  # "." or "a/.." have no usable name/parent; a link keeps pointing here
    restore_interrupted_save(target)
    _check_replaceable(target, marker, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        stage.mkdir()
    except OSError as exc:  # name the folder the user asked for, not our temp sibling
        raise OSError(exc.errno, f"{exc.strerror} (creating its temp folder {stage.name})", str(target)) from exc
    try:
        yield stage
        fsync_tree(stage)
        previous = _swap_into_place(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # our own temp folder; the error that got here is the news
        raise
    if previous is not None:
        _remove_previous_copy(previous, target)


def restore_interrupted_save(target: str | os.PathLike) -> bool:
    """Undo a save killed between its two renames (the non-Linux swap): when ``target`` is missing and
    exactly one ``.NAME.<hex>.old`` sibling holds its previous copy, rename that back and warn.
    Returns whether it restored one."""
    target = Path(os.path.realpath(target))
    if target.exists() or target.is_symlink() or not target.parent.is_dir():
        return False
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{12}}\.old")
    copies = sorted(path for path in target.parent.iterdir() if pattern.fullmatch(path.name))
    if len(copies) > 1:
        warnings.warn(f"{target}: missing, and {len(copies)} previous copies ({', '.join(p.name for p in copies)}) "
                      f"were left by interrupted saves; restore the right one by renaming it to {target.name}",
                      UserWarning, stacklevel=3)
    if len(copies) != 1:
        return False
    os.replace(copies[0], target)
    warnings.warn(f"{target}: a save was interrupted before the new copy was in place; restored the "
                  f"previous copy from {copies[0].name}", UserWarning, stacklevel=3)
    return True


def _check_replaceable(target: Path, marker: str | None, what: str) -> None:
    if not target.exists() and not target.is_symlink():
        return
    if Path.cwd().is_relative_to(target):
        raise ConfigError(f"{target}: cannot replace the current working folder (or one above it) with a "
                          f"{what}; choose a new folder")
    if not target.is_dir():
        raise ConfigError(f"{target}: exists and is not a folder; choose a new or empty folder for the {what}")
    if any(target.iterdir()) and (marker is None or not (target / marker).is_file()):
        kind = f"a {what} (no {marker})" if marker else "an empty folder"
        raise ConfigError(f"{target}: refusing to replace a folder that is not {kind}; choose a new or empty folder")


def _swap_into_place(stage: Path, target: Path) -> Path | None:
    """Put ``stage`` at ``target``; returns where the previous ``target`` now is (None when there was none)."""
    if not target.exists() and not target.is_symlink():
        os.replace(stage, target)
        fsync_folder(target.parent)
        return None
    if exchange_paths(stage, target):
        previous = stage  # the temp name now holds the previous copy
    else:
        previous = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.old"
        os.replace(target, previous)
        try:
            os.replace(stage, target)
        except BaseException:
            os.replace(previous, target)  # put the previous copy back
            raise
    fsync_folder(target.parent)
    return previous


def _remove_previous_copy(previous: Path, target: Path) -> None:
    """Delete the replaced copy; the new one is already in place, so a failure only warns."""
    try:
        if previous.is_symlink():
            previous.unlink()
        else:
            shutil.rmtree(previous)
    except OSError as exc:
        warnings.warn(f"{target}: saved, but its previous copy {previous} could not be deleted ({exc}); "
                      f"delete it by hand", UserWarning, stacklevel=4)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2``, or None where there is none (not Linux, or a C library without it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap what the two existing names point to in one atomic step; False (nothing changed) where the
    C library, kernel or filesystem cannot, so the caller falls back to renames."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, so the swap never exposes unwritten data."""
    for here, _, files in os.walk(folder):
        for name in files:
            descriptor = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        fsync_folder(Path(here))


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (new names, renames) durable; Windows cannot open a folder to do it."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)




# ---- one writer per folder -----------------------------------------------------------------------
class LockedError(BabyVLMError):
    """Another live process holds the folder's writer lock."""


class WriterLock:
    """An exclusive, advisory lock on a folder for one writing process (``with WriterLock(store, "build"):``).

    The lock file ``FOLDER/.babyvlm.lock`` holds the holder's pid, host, operation and start time; the
    kernel lock (``flock``) on it dies with the process, so a lock file left by a killed writer is stale
    and is taken over (``stale`` says so). A second writer gets ``LockedError`` naming the holder. Where
    ``flock`` is unavailable the pid is checked instead (same host only).
    """

    def __init__(self, folder: str | os.PathLike, operation: str, *, beside: bool = False):
        self.folder, self.operation = Path(folder), operation
        # ``beside``: the lock is ``.NAME.lock`` next to the folder, for a folder that is swapped in whole
        # (an export, a merge) and so cannot hold its own lock file
        self.path = self.folder.parent / f".{self.folder.name}.lock" if beside else self.folder / LOCK_NAME
        self.stale: dict[str, Any] | None = None
        self._handle: Any = None

    def acquire(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise (no_space_error(exc, self.path) or
                   DataError(f"{self.path}: cannot create the writer lock ({exc.strerror or exc})")) from exc
        try:
            _flock_exclusive(handle)
        except BlockingIOError:
            holder = _read_holder(handle)
            handle.close()
            raise LockedError(f"{self.folder}: another process is writing here ({_describe_holder(holder)}); "
                              f"wait for it to finish, or stop it, before {self.operation}") from None
        except BaseException:
            handle.close()
            raise
        previous = _read_holder(handle)
        if previous:  # a lock file whose kernel lock is free: its writer died without cleaning up
            self.stale = previous
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "operation": self.operation,
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            self._handle.seek(0)
            self._handle.truncate()  # an empty lock file is not a stale one
            self._handle.close()
        finally:
            self._handle = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def stale_note(self) -> str | None:
        """A line saying whose stale lock was taken over (None when the lock was free)."""
        if not self.stale:
            return None
        return (f"{self.folder}: took over a stale writer lock ({_describe_holder(self.stale)}; "
                f"that process is gone)")


def _flock_exclusive(handle: Any) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: a pid check on this host is the best available
        holder = _read_holder(handle)
        if holder and holder.get("host") == socket.gethostname() and _pid_alive(holder.get("pid")):
            raise BlockingIOError from None
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(handle: Any) -> dict[str, Any]:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {"pid": "?", "host": "?"}
    return holder if isinstance(holder, dict) else {}


def _describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "holder unknown"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"{holder.get('operation', 'writing')} since {holder.get('since', '?')}")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


# ---- disks and special files -----------------------------------------------------------------------
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def no_space_error(exc: BaseException, path: str | os.PathLike,
                   then: str = "what was written before is kept and the same command resumes") -> BabyVLMError | None:
    """A ``BabyVLMError`` saying "no space left on DEVICE/PATH" when ``exc`` is a full disk (or quota),
    else None. LMDB reports a full disk on commit as an I/O error, so that is checked by free space.
    ``then`` says what the user can expect after freeing space."""
    if isinstance(exc, BabyVLMError) and str(exc).startswith("no space left on device "):
        return exc  # already said, by an inner block
    code = getattr(exc, "errno", None)
    full = code in NO_SPACE_ERRNOS or "No space left" in str(exc) or "Disk quota exceeded" in str(exc)
    if not full and (code == errno.EIO or "Input/output error" in str(exc)):
        full = _nearly_full(path)
    if not full:
        return None
    return BabyVLMError(f"no space left on device {_device_of(path) or '/'} (writing {os.path.abspath(path)}): "
                        f"free some space there and run the same command again ({then})")


def _nearly_full(path: str | os.PathLike) -> bool:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        stats = os.statvfs(probe)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 16 * 1024 * 1024


def _device_of(path: str | os.PathLike) -> str:
    """The mount point holding ``path`` (what a person frees space on)."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    while not os.path.ismount(probe) and probe != probe.parent:
        probe = probe.parent
    return str(probe).rstrip("/")


@contextlib.contextmanager
def disk_errors(path: str | os.PathLike,
                then: str = "what was written before is kept and the same command resumes") -> Iterator[None]:
    """Turn a full disk inside the block into ``no space left on DEVICE/PATH``; other errors pass."""
    try:
        yield
    except Exception as exc:  # OSError, BabyVLMError, and lmdb.Error (whose subclasses are not OSErrors)
        friendly = no_space_error(exc, path, then)
        if friendly is None or friendly is exc:
            raise
        raise friendly from exc


def regular_file(path: str | os.PathLike, where: str = "") -> Path:
    """``path`` if it is a regular file (following symlinks); a FIFO, socket or device is refused
    (reading one hangs or never ends)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise DataError(f"{where or path}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{where or path}: cannot read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(mode):
        raise DataError(f"{where or path}: not a regular file ({file_kind(mode)}); refused")
    return path


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, for messages."""
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "not a plain file"


def link_problem(path: str | os.PathLike, root: str | os.PathLike,
                 follow_symlinks: bool = False) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``path`` (found under ``root``) may not be read, else None:
    ``symlink_outside_root`` (a link whose target leaves ``root``, unless ``follow_symlinks``),
    ``unreadable_file`` (a dangling or looping link, no permission) or ``not_regular_file`` (a FIFO,
    socket or device: reading one hangs or never ends)."""
    path = Path(path)
    try:
        if path.is_symlink() and not follow_symlinks:
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(Path(os.path.realpath(root))):
                return "symlink_outside_root", f"symlink to {target} leaves the root; set follow_symlinks=true to read it"
        mode = path.stat().st_mode
    except OSError as exc:
        return "unreadable_file", f"cannot read ({exc.strerror or exc})"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "not_regular_file", f"not a regular file ({file_kind(mode)}); refused"
    return None


def json_strict(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) as ``None``: what strict JSON can hold (a loss
    that diverged is recorded as missing, not as a ``NaN`` that other JSON readers refuse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: json_strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_strict(item) for item in value]
    return value
