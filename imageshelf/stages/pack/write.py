"""The store step of pack's publish: the new version written from the planned changes,
each new image's bytes read from the incoming folder and proven to be the bytes ingest
hashed (a file changed since is re-hashed; an archive member is read no further than
ingest staged it). The store writer publishes it whole (store/writer.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...annotations.archives import locate, read_source
from ...base.userfile import read_regular_file_stamped
from ...project.params import PackParams
from ...records.manifest import read_manifest, read_manifest_infos
from ...records.splits import with_split
from ...state.seen import Probed
from ...store import Header, ImageStore, Record, StoreError
from ...store.writer import Item, rebuild, write_sharded
from .changes import Changes


def apply_changes(
    store_path: Path,
    manifest: Path,
    incoming: Path,
    changes: Changes,
    params: PackParams,
    *,
    base: ImageStore | None = None,
    on_item: Callable[[Record], None] | None = None,
    held: ImageStore | None = None,
) -> Header:
    """Publish the new store in the layout params.yaml names; return its header. New
    bytes are read from the incoming files. base: the store the changes were planned against
    (in another place when converting between layouts); held: the store as it is,
    which the paired images a record keeps are read from."""
    ratios = params.split
    metadata = changes.metadata
    probed = Probed()  # the hashes ingest took, to prove a file unchanged since
    staged = _Staged(manifest, incoming, changes, probed, held)

    def transform(record: Record) -> Record:
        planned = metadata.get(record.key)
        if planned is not None:
            record = record.replace(
                metadata=planned.metadata,
                annotated=planned.annotated,
                overridden=planned.overridden,
            )
        props = changes.measured.get(record.key)
        if props is not None:
            record = record.replace(props=props)
        return with_split(record, ratios)

    with probed:
        if params.layout == "single":
            return rebuild(
                store_path,
                staged.additions,
                changes.removed,
                base=base,
                transform=transform,
                on_item=on_item,
                indexed=params.index,
                byte_additions=staged.byte_additions,
            )
        return write_sharded(
            store_path,
            staged.additions,
            changes.removed,
            base=base,
            touched=[*changes.resplit, *changes.relabeled, *changes.retracked, *changes.measured],
            shard_bytes=params.shard_bytes,
            transform=transform,
            on_item=on_item,
            indexed=params.index,
        )


@dataclass
class _Staged:
    """The planned writes as items: each staged record whose bytes (or some of them) come
    from the incoming folder, read and proven as ingest hashed them."""

    manifest: Path
    incoming: Path
    changes: Changes
    probed: Probed
    held: ImageStore | None  # the store as it is: the paired images a record keeps

    def item(self, staged: Record) -> Item:
        info = staged.info
        read = _reader(self.incoming, staged.key, info.sha256, info.size, self.probed)
        whole = self.changes.repaired.get(staged.key)  # with the paired images it keeps
        record = staged if whole is None else staged.replace(paired=whole)
        paired = None
        if record.paired:
            paired = _paired_reader(self.incoming, staged, self.probed, self.held)
        return Item(record, read, True, None, paired)

    def additions(self) -> Iterator[Item]:
        writes = self.changes.writes
        for record in read_manifest(self.manifest):
            if record.key in writes:
                yield self.item(record)

    def byte_additions(self) -> Iterator[Item]:  # the pass that writes bytes: key and info
        writes = self.changes.writes
        for key, info, paired in read_manifest_infos(self.manifest):
            if key in writes:
                yield self.item(Record(key, info, paired=paired))


def _paired_reader(
    incoming: Path, staged: Record, probed: Probed, held: ImageStore | None
) -> Callable[[str], bytes]:
    """How to read a record's paired images by role: those staged from the incoming
    folder, proven as its image is; the others (kept) from the store they are in."""

    def read(role: str) -> bytes:
        paired = staged.paired.get(role)
        if paired is not None:
            info = paired.info
            return _reader(incoming, paired.file, info.sha256, info.size, probed)()
        if held is None:
            raise StoreError(f"{staged.key}: its paired {role!r} is in no store")
        return held.get_paired(staged.key, role)

    return read


def _reader(
    incoming: Path, key: str, sha256: str, size: int, probed: Probed
) -> Callable[[], bytes]:
    """How to read the bytes of a staged image, proven against `sha256`: by ingest's hash
    of the file, if it is still as ingest read it (its fingerprint), or else by hashing
    it again. So a first build reads and hashes each image once (validate re-hashes
    the bytes the store holds). An archive member is read only up to the `size` ingest
    staged: an archive replaced since may hold anything under that name."""

    def read() -> bytes:
        root = str(incoming)
        data = None
        if locate(root, key) is None:
            try:
                data, stamp = read_regular_file_stamped(os.path.join(root, key))
            except FileNotFoundError:
                pass  # an image a LabelMe file embeds: read_source reads it
            else:
                if probed.sha256(key, stamp) == sha256:
                    return data
        if data is None:  # a member of an archive, or inside a LabelMe file
            found, now = read_source(root, key, size)
            if found is None:
                raise StoreError(
                    f"{key}: {now:,} bytes in its source now, {size:,} when ingest staged "
                    "it; run ingest again"
                )
            data = found
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreError(f"{key}: bytes changed since they were hashed; run again")
        return data

    return read
