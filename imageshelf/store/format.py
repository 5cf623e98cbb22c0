"""The on-disk contract of an image store: names, versions, keys, canonical JSON and the
header's checks (the value classes that records and headers are read into: values.py).

docs/FORMAT.md describes the same contract for people; keep the two in step.
"""

from __future__ import annotations

import json
import struct

from ..errors import ShelfError

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from typing import Any, TypeGuard

FORMAT_NAME = "lmdb-image-store"
# 1.1 added the record field "split", 1.2 "annotated"; 2.0 packs image bytes into
# chunks (records say where each image lies) and indexes fields for filters. The
# optional record fields "props" and "overridden" came later with no version change:
# each only adds a field a reader may ignore, as a minor version would (FORMAT.md).
FORMAT_VERSION = "2.0"
# 2.1: a 2.0 file in which images with the same bytes share one location (FORMAT.md).
# Written only where a file holds such images, so every 2.0 file is current as it is.
SHARED_VERSION = "2.1"
# 3.0: a file that holds paired images (a mask under its image's record: FORMAT.md). A
# new major version: code that knows only 2.x must refuse it, not pack it without them.
PAIRED_VERSION = "3.0"
CURRENT_VERSIONS = (FORMAT_VERSION, SHARED_VERSION, PAIRED_VERSION)
HASH_ALGORITHM = "sha256"

# Named LMDB databases, created in this order in every store.
DB_META = b"meta"  # one record, HEADER_KEY -> header JSON
DB_RECORDS = b"records"  # image key -> record JSON (info + metadata), no image bytes
DB_LOCATIONS = b"locations"  # 2.0: image key -> LOCATION of its bytes
DB_BLOBS = b"blobs"  # 2.0: chunk number (CHUNK_KEY) -> image bytes, back to back
DB_FIELDS = b"fields"  # 2.0: field NUL value -> the keys holding it (postings)
DB_NAMES = (DB_META, DB_RECORDS, DB_LOCATIONS, DB_BLOBS, DB_FIELDS)
DB_PAIRED = b"paired"  # 3.0, only where used: image key NUL role -> LOCATION
DB_IMAGES = b"images"  # 1.x: image key -> the original bytes, untouched
HEADER_KEY = b"header"

# 2.0: where an image's bytes lie: chunk number, offset in the chunk, size. In a database
# of its own: small values make a dense B-tree, so a read by key finds it as fast as a
# 1.x file found the bytes themselves.
LOCATION = struct.Struct(">IIQ")
CHUNK_KEY = struct.Struct(">I")
# Images go into chunks in key order; a chunk is closed before the image that would take
# it past this size (an image larger than this has a chunk of its own). LMDB rounds a
# large value up to whole pages, so the waste is under one page per chunk, not per image.
CHUNK_BYTES = 1 << 20
DEFAULT_INDEXED = ("label", "split")  # fields whose values are indexed for filters

MAX_KEY_BYTES = 511  # LMDB's compiled-in limit (env.max_key_size())


class StoreError(ShelfError):
    """A store cannot be read or written; the message says why, for a person."""


class InvalidKeyError(StoreError, ValueError):
    """A key the store cannot hold or that is not a clean relative path."""


class UnsupportedVersionError(StoreError):
    """The store was written in a format version this code does not read."""


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8. Stores stay deterministic.

    The bytes are the standard library's (`json.dumps` with sorted keys, compact, not
    ASCII-escaped, no NaN). orjson writes the same bytes for text, whole numbers within
    64 bits, booleans, null, lists and objects with text keys, 5 to 10 times faster, so
    a value made only of those (as records nearly always are) is written by orjson; a
    float (whose exponent orjson writes otherwise: 1e16 against 1e+16), a larger
    number or a key that is not text goes the standard library's way."""
    if orjson_same(value):
        return sorted_orjson(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sorted_orjson(value: Any) -> bytes:
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    return bytes(_orjson.dumps(value, option=_orjson.OPT_SORT_KEYS))


INT64 = 1 << 63


def orjson_same(value: Any) -> bool:
    """Whether orjson writes `value` as canonical_json's standard library call does."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -INT64 <= value < INT64
    if kind is dict:
        return all(type(k) is str and orjson_same(v) for k, v in value.items())
    if kind is list:
        return all(orjson_same(v) for v in value)
    return False


def parse_json(raw: bytes | str) -> Any:
    """Parse JSON fast (orjson, about 4x the standard library on records); integers
    beyond 64 bits, which orjson refuses, fall back to the standard library."""
    global _orjson
    if _orjson is None:
        import orjson  # on the first record parsed: reading bytes by key never needs it

        _orjson = orjson
    try:
        return _orjson.loads(raw)
    except _orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except RecursionError:  # nested past Python's stack: bad JSON, as far as we go
            raise ValueError("JSON nested too deeply") from None


_orjson: Any = None


def encode_key(key: str) -> bytes:
    """Check that `key` can be stored and return its UTF-8 bytes.

    A key is the image's path relative to its source folder, with `/` separators.
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError("empty key")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(f"key {key!r} is not valid UTF-8") from None
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"key is {len(raw)} bytes in UTF-8; LMDB holds at most {MAX_KEY_BYTES}: {key[:60]!r}..."
        )
    if "\0" in key:
        raise InvalidKeyError(f"key {key!r} contains a NUL character")
    if key.startswith("/"):
        raise InvalidKeyError(f"key {key!r} is an absolute path; keys are relative")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKeyError(f"key {key!r} has an empty, '.' or '..' path component")
    return raw


MAX_ROLE_CHARS = 64


def check_role(role: object) -> str:
    """A paired image's role (`mask`, `instances`, ...): text of 1 to 64 characters,
    no control character, no `/`. StoreError otherwise."""
    if not (
        isinstance(role, str)
        and 0 < len(role) <= MAX_ROLE_CHARS
        and "/" not in role
        and all(ord(c) >= 0x20 and c != "\x7f" for c in role)
    ):
        raise StoreError(f"not a paired image's role: {str(role)[:80]!r}")
    return role


def peek_sha256_and_split(raw: bytes) -> tuple[str, str | None]:
    """The top-level sha256 and split of a stored record, read off its canonical JSON
    without parsing it. Top-level keys are sorted, so the user's metadata ("meta") comes
    before "sha256" and "split": the last occurrence of each is the record's own (a
    string inside the metadata cannot hold an unescaped quote). A damaged record gives
    whatever text is there: a hash that matches nothing, never an exception."""
    at = raw.rfind(b'"sha256":"') + 10
    sha256 = raw[at : at + 64].decode("ascii", "replace")
    at = raw.rfind(b'"split":"')
    if at < 0:
        return sha256, None
    at += 9
    end = raw.find(b'"', at)
    return sha256, raw[at : end if end >= 0 else len(raw)].decode("utf-8", "replace")


def record_object(key: str, raw: bytes) -> Any:
    """A stored record's JSON, parsed; DamagedRecordError if it is not JSON."""
    try:
        return parse_json(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise DamagedRecordError(key, "not valid JSON") from None


def stored_key(raw_key: bytes | memoryview) -> str:
    """A key read from a store, checked as a key to be written is: a store from
    elsewhere may hold `../x.png`, `/etc/x` or bytes that are not UTF-8."""
    raw = raw_key if isinstance(raw_key, bytes) else bytes(raw_key)
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"damaged store: a key is not UTF-8 text ({raw[:60]!r})") from None
    if _looks_bad(key):
        try:
            encode_key(key)
        except InvalidKeyError as exc:
            raise StoreError(f"damaged store: {exc}") from None
    return key


class DamagedRecordError(StoreError):
    """A stored record that is not a record: the message names its key and what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"damaged store: the record of {key!r} is {problem}")
        self.key = key
        self.problem = problem


_HEX = frozenset("0123456789abcdef")


def is_digest(text: object) -> TypeGuard[str]:
    """Whether `text` is a SHA-256 in lowercase hex, as the store writes every digest:
    a part's content digest names files of the cache, so nothing else may pass."""
    return isinstance(text, str) and len(text) == 64 and _HEX.issuperset(text)


def _looks_bad(key: str) -> bool:
    """Whether encode_key may refuse `key`: a few substring tests, so the common key
    passes untouched (a scan checks every key it reads)."""
    return (
        not key
        or key[0] == "/"
        or key[-1] == "/"
        or "//" in key
        or "\0" in key
        or ("." in key and any(part in (".", "..") for part in key.split("/")))
    )


def digest_entry(raw_key: bytes, record_json: bytes) -> bytes:
    """One record's part of the header's content digest (FORMAT.md): key, NUL, JSON, LF."""
    return raw_key + b"\0" + record_json + b"\n"


def header_object(raw: bytes, where: str) -> dict[str, Any]:
    """A stored header's JSON object; StoreError unless it is one naming this format."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise StoreError(f"{where}: damaged store header (not JSON)") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        found = obj.get("format") if isinstance(obj, dict) else None
        raise StoreError(f"{where}: not an image store (format {found!r})")
    return obj


def check_header(obj: dict[str, Any], where: str) -> None:
    """Check a header's fields (after its version: file.READERS); StoreError naming
    the first that is wrong."""
    version = obj.get("version")
    major, _dot, minor = version.partition(".") if isinstance(version, str) else ("", "", "")
    if not (_digits(major) and _digits(minor)):
        raise StoreError(f"{where}: damaged store header (version {version!r})")
    if obj.get("hash") != HASH_ALGORITHM:
        raise StoreError(f"{where}: damaged store header (hash algorithm {obj.get('hash')!r})")
    count, total, digest = obj.get("count"), obj.get("total_bytes"), obj.get("content_digest")
    if not (_count(count) and _count(total) and is_digest(digest)):
        raise StoreError(f"{where}: damaged store header (count, total_bytes or digest)")
    for names in (obj.get("indexed", []), obj.get("not_indexed", [])):
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise StoreError(f"{where}: damaged store header (a list of field names)")


def _digits(text: str) -> bool:
    return 0 < len(text) <= 4 and text.isascii() and text.isdigit()


def _count(value: object) -> TypeGuard[int]:
    """A count or size a file may claim: a whole number a 64-bit index can hold."""
    return type(value) is int and 0 <= value < 1 << 62


def check_version(
    version: str, ours: str, where: str, what: str, majors: tuple[str, ...] = ()
) -> None:
    """Refuse a major version this code does not read, naming both."""
    readable = majors or (ours.split(".")[0],)
    if version.split(".")[0] not in readable:
        said = " and ".join(f"{major}.x" for major in readable)
        raise UnsupportedVersionError(
            f"{where}: {what} version {version} is not supported; this code reads "
            f"version {said}. Upgrade imageshelf to read it."
        )
