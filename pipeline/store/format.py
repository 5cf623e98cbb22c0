"""The on-disk contract of an image store: names, versions, keys and record encoding.

docs/FORMAT.md describes the same contract for people; keep the two in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

FORMAT_NAME = "lmdb-image-store"
FORMAT_VERSION = "1.1"  # 1.1 added the optional record field "split"
HASH_ALGORITHM = "sha256"

# Named LMDB databases, created in this order in every store.
DB_META = b"meta"  # one record, HEADER_KEY -> header JSON
DB_RECORDS = b"records"  # image key -> record JSON (info + metadata), no image bytes
DB_IMAGES = b"images"  # image key -> the original bytes, untouched
DB_NAMES = (DB_META, DB_RECORDS, DB_IMAGES)
HEADER_KEY = b"header"

MAX_KEY_BYTES = 511  # LMDB's compiled-in limit (env.max_key_size())


class StoreError(Exception):
    """A store cannot be read or written; the message says why, for a person."""


class InvalidKeyError(StoreError, ValueError):
    """A key the store cannot hold or that is not a clean relative path."""


class UnsupportedVersionError(StoreError):
    """The store was written in a format version this code does not read."""


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8. Stores stay deterministic."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_json(raw: bytes | str) -> Any:
    """Parse JSON fast (orjson, about 4x the standard library on records); integers
    beyond 64 bits, which orjson refuses, fall back to the standard library."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


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


@dataclass(frozen=True)
class ImageInfo:
    """What the store knows about an image's bytes, without reading them."""

    sha256: str
    size: int
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class Record:
    """One image as the store describes it: key, info, the user's metadata and its split.

    `split` (train, val, test, ...) is the image's effective split: the one its metadata
    names, or else one assigned from a hash of its key. None in stores written before
    splits existed.
    """

    key: str
    info: ImageInfo
    metadata: dict[str, Any] = field(default_factory=dict)
    split: str | None = None

    def to_json(self) -> dict[str, Any]:
        info = self.info
        obj = {
            "sha256": info.sha256,
            "size": info.size,
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "meta": self.metadata,
        }
        if self.split is not None:
            obj["split"] = self.split
        return obj

    def encode(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, key: str, obj: dict[str, Any]) -> Record:
        info = ImageInfo(obj["sha256"], obj["size"], obj["format"], obj["width"], obj["height"])
        return cls(key, info, obj["meta"], obj.get("split"))

    @classmethod
    def decode(cls, key: str, raw: bytes) -> Record:
        return cls.from_json(key, parse_json(raw))

    @property
    def effective_split(self) -> str | None:
        """The split, also for a store written before splits: its metadata's, if any."""
        return self.split if self.split is not None else self.metadata.get("split")

    def fields(self) -> dict[str, Any]:
        """A flat view for filters and training code: the user's metadata, then the
        store's own fields (key, split, format, width, height, size, sha256) over it."""
        info = self.info
        return {**self.metadata, "key": self.key, "split": self.effective_split,
                "format": info.format, "width": info.width, "height": info.height,
                "size": info.size, "sha256": info.sha256}


def digest_entry(raw_key: bytes, record_json: bytes) -> bytes:
    """One record's part of the header's content digest (FORMAT.md): key, NUL, JSON, LF."""
    return raw_key + b"\0" + record_json + b"\n"


def make_header(count: int, total_bytes: int, content_digest: str) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "hash": HASH_ALGORITHM,
        "count": count,
        "total_bytes": total_bytes,
        "content_digest": content_digest,
    }


def check_header(header: dict[str, Any], path: str) -> None:
    """Refuse a store this code cannot read, saying which version it is."""
    if header.get("format") != FORMAT_NAME:
        raise StoreError(f"{path}: not an image store (format {header.get('format')!r})")
    version = str(header.get("version", ""))
    major = version.split(".")[0]
    ours = FORMAT_VERSION.split(".")[0]
    if major != ours:
        raise UnsupportedVersionError(
            f"{path}: store format version {version} is not supported; this code reads "
            f"version {ours}.x. Upgrade the pipeline package to read it."
        )
    if header.get("hash") != HASH_ALGORITHM:
        raise StoreError(f"{path}: unknown hash algorithm {header.get('hash')!r}")
