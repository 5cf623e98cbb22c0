"""The store's value classes, frozen dataclasses: each image's Record (its ImageInfo and
Paired images) and the Header, the one record of a file's `meta` database, each read
from its JSON and checked (a store from elsewhere may hold anything).

Not imported to open a file and read an image by key: a fresh process would pay for
dataclasses before its first image (see the package's docstring). file.py and reader.py
import this module where they first build a record or a header.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .format import (
    CURRENT_VERSIONS,
    FORMAT_NAME,
    FORMAT_VERSION,
    HASH_ALGORITHM,
    INT64,
    DamagedRecordError,
    InvalidKeyError,
    StoreError,
    canonical_json,
    check_header,
    check_role,
    encode_key,
    header_object,
    is_digest,
    orjson_same,
    record_object,
    sorted_orjson,
)

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the store knows about an image's bytes, without reading them."""

    sha256: str
    size: int
    format: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Paired:
    """An image that annotates another (a mask, an instance map, a second view): the
    file it arrived as and what the store knows of its bytes (FORMAT.md, 3.0)."""

    file: str
    info: ImageInfo

    def to_json(self) -> dict[str, Any]:
        info = self.info
        return {
            "file": self.file,
            "format": info.format,
            "height": info.height,
            "sha256": info.sha256,
            "size": info.size,
            "width": info.width,
        }

    @classmethod
    def from_json(cls, key: str, role: str, obj: Any) -> Paired:
        if not isinstance(obj, dict):
            raise DamagedRecordError(key, f"paired image {role!r} is not an object")
        try:
            file, fmt = obj["file"], obj["format"]
            info = _image_info(key, obj["sha256"], obj["size"], fmt, obj["width"], obj["height"])
        except KeyError as missing:
            raise DamagedRecordError(key, f"paired image {role!r} has no field {missing}") from None
        if not isinstance(file, str):
            raise DamagedRecordError(key, f"paired image {role!r} has no file name")
        try:
            encode_key(file)
        except InvalidKeyError:
            raise DamagedRecordError(key, f"paired image {role!r} has a bad file name") from None
        return cls(file, info)


def _image_info(
    key: str, sha256: object, size: object, fmt: object, width: object, height: object
) -> ImageInfo:
    if not is_digest(sha256):
        raise DamagedRecordError(key, "sha256 is not 64 hex digits")
    if not all(type(n) is int and 0 <= n < INT64 for n in (size, width, height)):
        raise DamagedRecordError(key, "size, width or height is not a whole number")
    if not isinstance(fmt, str):
        raise DamagedRecordError(key, "format is not text")
    return ImageInfo(sha256, size, fmt, width, height)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Record:
    """One image as the store describes it: key, info, the user's metadata and its split.

    `split` (train, val, test, ...) is the image's effective split: the one its metadata
    names, or else one assigned from a hash of its key. None in stores written before
    splits existed. `annotated` names the metadata fields that tracked annotations
    (data/annotations/, params.yaml's folder rules) set: those, and only those, a change
    there may remove. `paired` holds the images that annotate this one (a mask, an
    instance map, ...) by role: stored with it, read with it (FORMAT.md, 3.0). `props`
    holds what its pixels measure (hashes, brightness, blur...: images/properties.py),
    computed once from its bytes; None where a store predates them. `overridden` keeps
    the values that arrived with the image for the fields a tracked source overrides or
    removes (a null), so that the arrived value comes back when the source stops: undoing
    a correction gives back the record from before it.
    """

    key: str
    info: ImageInfo
    metadata: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    annotated: tuple[str, ...] = ()
    paired: dict[str, Paired] = field(default_factory=dict)
    props: dict[str, Any] | None = None
    overridden: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Record:
        """A copy with some fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    @property
    def stored_bytes(self) -> int:
        """The bytes of the image and of its paired images."""
        return self.info.size + sum(p.info.size for p in self.paired.values())

    def roles(self) -> list[str]:
        """The roles of its paired images, in the order their bytes are stored."""
        return sorted(self.paired, key=lambda role: role.encode("utf-8"))

    def to_json(self) -> dict[str, Any]:
        info = self.info
        obj: dict[str, Any] = {
            "sha256": info.sha256,
            "size": info.size,
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "meta": self.metadata,
        }
        if self.split is not None:
            obj["split"] = self.split
        if self.annotated:
            obj["annotated"] = list(self.annotated)
        if self.paired:
            obj["paired"] = {role: p.to_json() for role, p in self.paired.items()}
        if self.props is not None:
            obj["props"] = self.props
        if self.overridden:
            obj["overridden"] = self.overridden
        return obj

    def encode(self) -> bytes:
        """canonical_json of the record; only the metadata (and the arrived values it
        overrides) can hold a value orjson writes otherwise (the other fields are text
        and whole numbers)."""
        info = self.info
        if (
            orjson_same(self.metadata)
            and orjson_same(self.overridden)
            and max(info.size, info.width, info.height) < INT64
            and all(orjson_same(p.to_json()) for p in self.paired.values())
            and (self.props is None or orjson_same(self.props))
        ):
            return sorted_orjson(self.to_json())
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, key: str, obj: Any) -> Record:
        """A record from its JSON object; a StoreError naming the key and the field if
        the object is not a record (a damaged or crafted store)."""
        if not isinstance(obj, dict):
            raise DamagedRecordError(key, f"a JSON {type(obj).__name__}, not an object")
        try:
            sha256, size, fmt = obj["sha256"], obj["size"], obj["format"]
            width, height, metadata = obj["width"], obj["height"], obj["meta"]
        except KeyError as missing:
            raise DamagedRecordError(key, f"no field {missing}") from None
        split, annotated = obj.get("split"), obj.get("annotated", ())
        info = _image_info(key, sha256, size, fmt, width, height)
        if not isinstance(metadata, dict):
            raise DamagedRecordError(key, "meta is not an object")
        if split is not None and not isinstance(split, str):
            raise DamagedRecordError(key, "split is not text")
        if not (isinstance(annotated, list | tuple) and all(isinstance(a, str) for a in annotated)):
            raise DamagedRecordError(key, "annotated is not a list of field names")
        paired, props = obj.get("paired"), _props_of(key, obj.get("props"))
        overridden = _overridden_of(key, obj.get("overridden"))
        return cls(
            key, info, metadata, split, tuple(annotated), _paired_of(key, paired), props, overridden
        )

    @classmethod
    def decode(cls, key: str, raw: bytes) -> Record:
        return cls.from_json(key, record_object(key, raw))

    @property
    def effective_split(self) -> str | None:
        """The split, also for a store written before splits: its metadata's, if any."""
        return self.split if self.split is not None else self.metadata.get("split")

    def fields(self) -> dict[str, Any]:
        """A flat view for filters and training code: the user's metadata, then the
        store's own fields (key, split, format, width, height, size, sha256) over it."""
        info = self.info
        return {
            **self.metadata,
            "key": self.key,
            "split": self.effective_split,
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "size": info.size,
            "sha256": info.sha256,
        }


def _props_of(key: str, obj: Any) -> dict[str, Any] | None:
    """A record's `props`, checked once here for every reader (findings, the viewer):
    names with text, whole numbers within 64 bits, finite decimals or booleans, as
    images/properties.py writes them. A store from elsewhere may hold a 400-digit
    number or an infinity (JSON's 1e400), which no measure compares with."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise DamagedRecordError(key, "props is not an object")
    for name, value in obj.items():
        kind = type(value)
        if kind is int:
            good = -INT64 <= value < INT64
        elif kind is float:
            good = value - value == 0.0  # false for infinities and NaN
        else:
            good = kind is str or kind is bool
        if not good:
            shown = "a whole number past 64 bits" if kind is int else "not a finite value"
            raise DamagedRecordError(key, f"unlike any measure: props.{str(name)[:40]} is {shown}")
    return obj


def _overridden_of(key: str, obj: Any) -> dict[str, Any]:
    """A record's `overridden`, checked once here: an object of field values, absent
    when empty (as writers leave it), whose values JSON can hold. A store from elsewhere
    may hold a list, or a NaN or an infinity (which the standard library parses), that
    pack could not write back."""
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not obj:
        raise DamagedRecordError(key, "overridden is not an object of field values")
    try:
        canonical_json(obj)
    except (ValueError, RecursionError):
        raise DamagedRecordError(
            key, "unlike any record: overridden holds NaN or infinity"
        ) from None
    return obj


def _paired_of(key: str, obj: Any) -> dict[str, Paired]:
    """A record's `paired` field, checked (a store from elsewhere may hold anything)."""
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not obj:
        raise DamagedRecordError(key, "paired is not an object of paired images")
    paired = {}
    for role, value in obj.items():
        try:
            check_role(role)
        except StoreError:
            raise DamagedRecordError(key, f"paired names a bad role {str(role)[:40]!r}") from None
        paired[role] = Paired.from_json(key, role, value)
    return paired


@dataclass(frozen=True, slots=True)
class Header:
    """A store's summary, the one record of its `meta` database (FORMAT.md).

    `indexed` (2.0): the fields whose values the `fields` database indexes;
    `not_indexed`: fields asked for whose values could not all be indexed (too long,
    too many distinct values), which filters read from the records."""

    count: int
    total_bytes: int
    content_digest: str
    format: str = FORMAT_NAME
    version: str = FORMAT_VERSION
    hash: str = HASH_ALGORITHM
    indexed: tuple[str, ...] = ()
    not_indexed: tuple[str, ...] = ()

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def index_asked(self) -> tuple[str, ...]:
        """The fields the writer was asked to index, sorted."""
        return tuple(sorted(self.indexed + self.not_indexed))

    def outdated(self, indexed: Iterable[str]) -> str | None:
        """Why a writer asked to index `indexed` must write this file again although
        its content stays: an older format version, or other indexed fields."""
        asked = tuple(sorted(set(indexed)))
        if self.version not in CURRENT_VERSIONS:
            return f"rewritten in format {FORMAT_VERSION} (was {self.version})"
        if self.index_asked != asked:
            return f"rewritten to index {', '.join(asked) or 'no fields'}"
        return None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "content_digest": self.content_digest,
            "count": self.count,
            "format": self.format,
            "hash": self.hash,
            "total_bytes": self.total_bytes,
            "version": self.version,
        }
        if self.major >= 2:
            obj["indexed"] = list(self.indexed)
            obj["not_indexed"] = list(self.not_indexed)
        return canonical_json(obj)

    @classmethod
    def decode(cls, raw: bytes, where: str) -> Header:
        """Parse and check a stored header (of a file already opened: a reader of its
        version exists, file.READERS)."""
        return cls.from_json(header_object(raw, where), where)

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> Header:
        """A header from its JSON object; StoreError naming the first field that is
        wrong (format.check_header)."""
        check_header(obj, where)
        return cls(
            obj["count"],
            obj["total_bytes"],
            obj["content_digest"],
            FORMAT_NAME,
            obj["version"],
            HASH_ALGORITHM,
            tuple(obj.get("indexed", ())),
            tuple(obj.get("not_indexed", ())),
        )
