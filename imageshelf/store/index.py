"""The parts of a store, and the index that lists them in the sharded layout.

Every store is a list of parts, each one LMDB file in the format of format.py. In the
single layout the store is one part, the file itself. In the sharded layout it is a
folder of parts called shards and one `index.json` that lists them:

    data/images/
      index.json                 which shards make the store, in the order they were made
      shard-<16 hex>.lmdb        each a complete store, named by its content

A shard's name is the start of its content digest, so a name always means the same
bytes: a changed shard is a new file, and the index is the one switch that publishes a
new version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..base.userfile import read_regular_file
from .format import StoreError, canonical_json, check_version, is_digest, parse_json

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

SHARDED_FORMAT = "lmdb-image-store-sharded"
SHARDED_VERSION = "1.0"
INDEX_NAME = "index.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".lmdb"


def shard_name(content_digest: str) -> str:
    """The file name of a shard with this content: a name always means the same bytes."""
    return f"{SHARD_PREFIX}{content_digest[:16]}{SHARD_SUFFIX}"


def is_shard_name(name: str) -> bool:
    return name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX)


@dataclass(frozen=True, slots=True)
class Part:
    """One LMDB file of a store, as the index (or, for a single file, its header)
    describes it. `first_key` and `last_key` bound its keys where known."""

    name: str
    count: int
    total_bytes: int
    content_digest: str
    first_key: str | None = None
    last_key: str | None = None

    @property
    def named_by_content(self) -> bool:
        """A shard: its name is its content digest, so a file of that name (or a file
        derived from it, such as its catalog) already holds exactly this content."""
        return self.name == shard_name(self.content_digest)

    def may_hold(self, key: str) -> bool:
        return (self.first_key is None or self.first_key <= key) and (
            self.last_key is None or key <= self.last_key
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "content_digest": self.content_digest,
            "count": self.count,
            "first_key": self.first_key,
            "last_key": self.last_key,
            "name": self.name,
            "total_bytes": self.total_bytes,
        }

    @classmethod
    def from_json(cls, obj: object, where: str) -> Part:
        if not isinstance(obj, dict):
            raise StoreError(f"{where}: damaged shard entry (not an object)")
        try:
            part = cls(
                obj["name"],
                obj["count"],
                obj["total_bytes"],
                obj["content_digest"],
                obj.get("first_key"),
                obj.get("last_key"),
            )
        except KeyError as missing:
            raise StoreError(f"{where}: damaged shard entry (no {missing})") from None
        texts = (part.name, part.content_digest)
        keys = (part.first_key, part.last_key)
        if not (
            all(isinstance(t, str) for t in texts)
            and is_digest(part.content_digest)
            and all(k is None or isinstance(k, str) for k in keys)
            and all(type(n) is int and 0 <= n < 1 << 62 for n in (part.count, part.total_bytes))
            and is_shard_name(part.name)
            and "/" not in part.name
        ):
            raise StoreError(f"{where}: damaged shard entry {str(obj.get('name'))[:80]!r}")
        return part


@dataclass(frozen=True, slots=True)
class ShardIndex:
    """`index.json`: the parts of a sharded store, in the order they were made."""

    parts: tuple[Part, ...]
    count: int
    total_bytes: int
    content_digest: str
    format: str = SHARDED_FORMAT
    version: str = SHARDED_VERSION

    @classmethod
    def of(cls, parts: Iterable[Part]) -> ShardIndex:
        """The index of these parts: totals and a digest over their content digests."""
        import hashlib

        parts = tuple(parts)
        digest = hashlib.sha256()
        for digest_of_part in sorted(p.content_digest for p in parts):
            digest.update(digest_of_part.encode() + b"\n")
        return cls(
            parts,
            sum(p.count for p in parts),
            sum(p.total_bytes for p in parts),
            digest.hexdigest(),
        )

    def encode(self) -> bytes:
        return (
            canonical_json(
                {
                    "content_digest": self.content_digest,
                    "count": self.count,
                    "format": self.format,
                    "shards": [p.to_json() for p in self.parts],
                    "total_bytes": self.total_bytes,
                    "version": self.version,
                }
            )
            + b"\n"
        )

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> ShardIndex:
        path = os.path.join(folder, INDEX_NAME)
        try:
            raw = read_regular_file(path)  # a FIFO here must be an error, not a hang
        except FileNotFoundError:
            raise StoreError(
                f"{folder}: no {INDEX_NAME}; not a sharded store, or not pulled yet: "
                f"`dvc pull {folder}`"
            ) from None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the shard index: {exc.strerror}") from None
        return cls.parse(raw, path)

    @classmethod
    def parse(cls, raw: bytes, path: str) -> ShardIndex:
        """An index from its bytes; `path` names it in errors."""
        try:
            obj = parse_json(raw)
        except ValueError:
            raise StoreError(f"{path}: damaged shard index (not JSON)") from None
        if not isinstance(obj, dict) or obj.get("format") != SHARDED_FORMAT:
            raise StoreError(f"{path}: not a sharded image store index")
        check_version(str(obj.get("version", "")), SHARDED_VERSION, path, "sharded format")
        entries = obj.get("shards")
        if not isinstance(entries, list):
            raise StoreError(f"{path}: damaged shard index (no list of shards)")
        parts = tuple(Part.from_json(entry, path) for entry in entries)
        if len({p.name for p in parts}) != len(parts):
            raise StoreError(f"{path}: damaged shard index (a shard is listed twice)")
        index = cls.of(parts)
        if (obj.get("count"), obj.get("total_bytes"), obj.get("content_digest")) != (
            index.count,
            index.total_bytes,
            index.content_digest,
        ):
            raise StoreError(f"{path}: damaged shard index (its totals do not match its shards)")
        return cls(
            parts,
            index.count,
            index.total_bytes,
            index.content_digest,
            SHARDED_FORMAT,
            obj["version"],
        )
