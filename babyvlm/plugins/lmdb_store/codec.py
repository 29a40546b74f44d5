"""Record encoding for the LMDB store: key layout, msgpack bodies and content digests.

Keys are ``GROUP/FORMAT/LOCAL`` (UTF-8): ``GROUP`` is the unit of resumable writing (a recording,
or a chunk of an imported file), ``FORMAT`` one of the three sample formats, and ``LOCAL`` a
zero-padded, deterministic index inside the group, so LMDB's byte order is build order.
Values are ``msgpack(Sample.to_dict())`` with JPEG bytes for the images.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import DataError
from babyvlm.core.records import SAMPLE_FORMATS, Sample

MAX_KEY_BYTES = 500  # LMDB's default limit is 511
_GROUP_FORBIDDEN = ("/", "\x00")


def check_group_id(group: str, where: str = "") -> str:
    """A group id becomes a key prefix, so it must be non-empty and free of '/' and NUL."""
    if not isinstance(group, str) or not group or any(ch in group for ch in _GROUP_FORBIDDEN):
        raise DataError(f"{where or 'store'}: invalid group/recording id {group!r} (must be non-empty, without '/')")
    return group


def make_key(group: str, fmt: str, local: str) -> bytes:
    if fmt not in SAMPLE_FORMATS:
        raise DataError(f"key for group {group!r}: unknown sample format {fmt!r} (expected one of {SAMPLE_FORMATS})")
    key = f"{check_group_id(group)}/{fmt}/{local}".encode()
    if len(key) > MAX_KEY_BYTES:
        raise DataError(f"key {key[:60]!r}... is {len(key)} bytes; LMDB keys must stay under {MAX_KEY_BYTES}")
    return key


def parse_key(key: bytes) -> tuple[str, str, str]:
    """``(group, format, local)`` of a sample key; DataError for anything else."""
    try:
        group, fmt, local = key.decode("utf-8").split("/")
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"malformed sample key {key!r} (expected GROUP/FORMAT/LOCAL)") from None
    if fmt not in SAMPLE_FORMATS or not group or not local:
        raise DataError(f"malformed sample key {key!r} (expected GROUP/FORMAT/LOCAL)")
    return group, fmt, local


def format_of_key(key: bytes) -> str:
    return parse_key(key)[1]


def encode_sample(sample: Sample) -> bytes:
    return msgpack.packb(sample.to_dict(), use_bin_type=True)


def digest(value: bytes) -> str:
    """A short content hash of one stored value (128-bit BLAKE2b, hex)."""
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def decode_sample(raw: bytes, where: str) -> Sample:
    """Unpack and validate one stored record; errors name ``where`` (shard and key)."""
    try:
        data = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # msgpack raises several types for corrupt input
        raise DataError(f"{where}: record does not decode as msgpack ({type(exc).__name__}: {exc})") from exc
    _check_fields(data, where)
    sample = Sample.from_dict(data)
    if sample.image_token_count() != len(sample.images):
        raise DataError(f"{where}: {sample.image_token_count()} {IMAGE_TOKEN} tokens but {len(sample.images)} images")
    return sample


def _check_fields(data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise DataError(f"{where}: record is a {type(data).__name__}, expected a map")
    expected = {"sample_id", "format", "images", "conversations", "meta"}
    if set(data) != expected:
        raise DataError(f"{where}: record fields {sorted(data)} differ from {sorted(expected)}")
    if not isinstance(data["sample_id"], str) or data["format"] not in SAMPLE_FORMATS:
        raise DataError(f"{where}: bad sample_id or format ({data['sample_id']!r}, {data['format']!r})")
    if not isinstance(data["images"], list) or not all(isinstance(i, bytes) for i in data["images"]):
        raise DataError(f"{where}: 'images' must be a list of JPEG bytes")
    turns = data["conversations"]
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str) for t in turns
    ):
        raise DataError(f"{where}: 'conversations' must be a list of {{'from', 'value'}} strings")
    if not isinstance(data["meta"], dict):
        raise DataError(f"{where}: 'meta' must be a map")
