"""Pack: merge the staged manifest into the store, by the policies in params.yaml.

- Same key, same bytes: already there (a metadata change updates the record: relabeled).
- Same key, different bytes: a conflict, by `on_conflict`: error (fail, change nothing),
  replace (the new bytes win) or skip (the stored bytes stay).
- Same bytes as another image under a new key: a duplicate, by `on_duplicate`: keep or
  skip (listed in the report either way).
- Keys listed in data/remove.txt are dropped from the store.
- Every record carries its split (imageshelf/splits.py): new images get one, and stored
  images move only when the ratios in params.yaml change (resplit).
If nothing changes, the store is not rewritten: it stays byte-identical.

The layout (pack.layout) decides how a new version is written; when pack.store names a
new place and dvc.lock records the store elsewhere (the layout was switched), that
store is converted. Pack also writes the catalog (every record, no image bytes) that
`imageshelf diff` compares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import cache
from ..annotations import Annotations
from ..annotations.archives import locate, read_source
from ..annotations.base import folder_of
from ..annotations.folders import FolderLayout, top_of
from ..atomic import write_json
from ..catalog import write_catalog
from ..errors import ShelfError
from ..files import fingerprint, read_regular_file_stamped
from ..manifest import read_manifest, read_manifest_infos, read_manifest_keys
from ..metadata import Metadata, Tracked, needs_layout, read_tracked
from ..params import AnnotationsParams, PackParams
from ..progress import Progress, per_item
from ..seen import Probed, note_stored
from ..splits import assign_split, with_split
from ..store import Header, ImageStore, InvalidKeyError, Part, Record, StoreError, encode_key
from ..store.format import peek_sha256_and_split
from ..store.values import Paired
from ..store.writer import Item, rebuild, tidy, write_sharded, writer_lock
from ..versions import check_recorded, previous_store
from .result import StageResult


class PackError(ShelfError):
    """Pack cannot start: nothing staged, or the store to pack into is not here."""


class ConflictError(PackError):
    def __init__(self, keys: list[str]) -> None:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        super().__init__(
            f"{len(keys)} staged image(s) have the key of a stored image but different bytes: "
            f"{shown}. Nothing was changed. Rename them, or set pack.on_conflict to replace "
            "or skip in params.yaml."
        )
        self.keys = keys


def read_removals(path: Path) -> list[str]:
    """Keys in a removal list: one per line, spaces around it ignored; blank lines and
    lines starting with # are comments. A key that starts with # or a space, or ends
    with one, is written as a JSON string: `"#1.png"`, `" spaced.png"`."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PackError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise PackError(f"{path}: cannot read: {exc.strerror}") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith('"'):
            try:
                key = json.loads(line)
            except ValueError:
                key = None
            if not isinstance(key, str):
                raise PackError(
                    f"{path}:{number}: a line starting with a quote must be one JSON "
                    'string, such as "#1.png"'
                )
            line = key
        try:
            encode_key(line)
        except InvalidKeyError as exc:
            raise PackError(f"{path}:{number}: not a key the store can hold: {exc}") from None
        keys.append(line)
    return keys


@dataclass
class PackPlan:
    """What pack will do, decided before anything is written."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    relabeled: list[str] = field(default_factory=list)  # stored bytes, new metadata
    # stored image, new paired images (a changed mask: also relabeled): key -> all of
    # its paired images from now on, the new ones read from the incoming folder
    repaired: dict[str, dict[str, Paired]] = field(default_factory=dict)
    # stored bytes, the same fields, tracked otherwise (now or no longer set by a file
    # in data/annotations/): rewritten, but not relabeled (diff shows no change)
    retracked: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # new key -> key with same bytes
    removed: list[str] = field(default_factory=list)
    removal_not_found: list[str] = field(default_factory=list)
    resplit: list[str] = field(default_factory=list)  # stored keys whose split changes
    not_packed: dict[str, str] = field(default_factory=dict)  # staged key -> why not
    # key -> its metadata from now on, for every record whose metadata is new or changes
    metadata: dict[str, Metadata] = field(default_factory=dict)
    fields_removed: Counter[str] = field(default_factory=Counter)  # field -> records
    unused_annotations: list[str] = field(default_factory=list)

    @property
    def writes(self) -> set[str]:
        """Keys whose bytes (or some of them) come from the incoming folder."""
        return set(self.added) | set(self.replaced) | set(self.repaired)

    @property
    def changes_store(self) -> bool:
        return bool(self.writes or self.removed or self.resplit or self.relabeled or self.retracked)


@dataclass
class Since:
    """What the last pack of this very store (the same content digest) settled, so that
    a run looks only where something can have changed.

    same_ratios: the split ratios are the ones the store was packed with (no image can
    move). tracked_keys: the keys whose tracked annotations may have changed since (the
    keys the changed annotation files spoke of, before and now); None when that is not
    known (a first run, new folder rules, the cache lost): every record is looked at.
    """

    same_ratios: bool = False
    tracked_keys: set[str] | None = None


def plan_pack(
    store: ImageStore | None,
    manifest: Path,
    removals: list[str],
    params: PackParams,
    tracked: Tracked | None = None,
    since: Since | None = None,
) -> PackPlan:
    """Decide what to write. Reads the staged records, and of the store only what can
    have changed: `since` says what the last pack settled (by default, nothing)."""
    tracked = tracked or Tracked(Annotations(), AnnotationsParams())
    since = since or Since()
    planner = _Planner(store, set(removals), params, tracked)
    for record in read_manifest(manifest):
        planner.staged(record)
    plan = planner.plan
    if plan.conflicts and params.on_conflict == "error":
        raise ConflictError(plan.conflicts)
    if store is not None:
        planner.stored(since)
    if params.on_duplicate == "skip" and plan.duplicates:
        for key, same_as in plan.duplicates.items():
            plan.not_packed[key] = f"duplicate of {same_as} (on_duplicate: skip)"
            plan.metadata.pop(key, None)
        plan.added = [key for key in plan.added if key not in plan.duplicates]
    for key in removals:
        (plan.removed if store is not None and key in store else plan.removal_not_found).append(key)
    plan.unused_annotations = list(tracked.annotations.unused)
    return plan


class _Planner:
    """The plan, made one staged record at a time, then completed from the store."""

    def __init__(
        self, store: ImageStore | None, removals: set[str], params: PackParams, tracked: Tracked
    ) -> None:
        self.store, self.removals, self.params, self.tracked = store, removals, params, tracked
        self.plan = PackPlan()
        self.new_by_hash: dict[str, str] = {}  # content of images new to the store -> key
        self.seen: set[str] = set()  # staged keys already planned

    def staged(self, record: Record) -> None:
        key, plan, store = record.key, self.plan, self.store
        if key in self.removals:
            plan.not_packed[key] = "listed in data/remove.txt"
            return
        existing = store.record(key) if store is not None and key in store else None
        if existing is None:
            self._new(record)
        elif existing.info.sha256 == record.info.sha256:
            self.seen.add(key)
            metadata = self.tracked.apply(key, existing.info, existing, record.metadata)
            if self._repaired(record, existing, metadata):
                return
            if not _relabel(plan, existing, metadata):
                plan.unchanged += 1
        else:
            self._conflict(record, existing)

    def _repaired(self, record: Record, existing: Record, metadata: Metadata) -> bool:
        """A stored image arriving with other paired images (a mask changed): planned
        as relabeled, its new paired images written. One that arrives without some of
        its paired images keeps those (files dropped again never take anything away)."""
        paired = {**existing.paired, **record.paired}
        if paired == existing.paired:
            return False
        plan = self.plan
        plan.repaired[record.key] = paired
        plan.relabeled.append(record.key)
        plan.metadata[record.key] = metadata
        return True

    def _new(self, record: Record) -> None:
        key, plan = record.key, self.plan
        first = self.new_by_hash.setdefault(record.info.sha256, key)
        if first != key:
            plan.duplicates[key] = first
        plan.added.append(key)
        metadata = self.tracked.apply(key, record.info, None, record.metadata)
        if metadata != (record.metadata, ()):  # else the manifest's is the one: no copy
            plan.metadata[key] = metadata

    def _conflict(self, record: Record, existing: Record) -> None:
        key, plan = record.key, self.plan
        plan.conflicts.append(key)
        if self.params.on_conflict == "replace":
            self.seen.add(key)
            plan.replaced.append(key)
            plan.metadata[key] = self.tracked.apply(key, record.info, existing, record.metadata)
        elif self.params.on_conflict == "skip":
            plan.not_packed[key] = "conflict: the stored bytes were kept (on_conflict: skip)"

    def stored(self, since: Since) -> None:
        """What changes for images already stored: duplicates of new bytes, records the
        tracked annotations change, splits the ratios move."""
        store, plan, tracked = self.store, self.plan, self.tracked
        assert store is not None
        if self.new_by_hash:
            _find_duplicates(store, self.new_by_hash, self.removals, plan)
        if not since.same_ratios or since.tracked_keys is None:
            ratios_changed = not since.same_ratios
            _scan(store, self.removals, self.seen, self.params, tracked, ratios_changed, plan)
            return
        # Only the records the changed annotation files speak of.
        keys = since.tracked_keys - self.seen - self.removals - set(plan.metadata)
        for key, raw, _part in store.raw_records_of(keys):
            stored = Record.decode(key, raw)
            _relabel(plan, stored, tracked.apply(key, stored.info, stored, None))


def _scan(
    store: ImageStore,
    removal_set: set[str],
    seen: set[str],
    params: PackParams,
    tracked: Tracked,
    ratios_changed: bool,
    plan: PackPlan,
) -> None:
    """One scan of every stored record (no image bytes): records the tracked annotations
    change and, when the ratios changed, records whose split moves."""
    ratios = params.split
    for key, raw in store.raw_records():
        if key in removal_set or key in plan.metadata:
            continue  # removed, or rewritten anyway: the transform gives it its split
        if key not in seen and tracked.concerns(key, raw):
            stored = Record.decode(key, raw)
            if _relabel(plan, stored, tracked.apply(key, stored.info, stored, None)):
                continue
        if not ratios_changed or peek_sha256_and_split(raw)[1] == assign_split(key, ratios):
            continue  # the usual case, decided without parsing the record
        stored = Record.decode(key, raw)
        if with_split(stored, ratios) is not stored:
            plan.resplit.append(key)


def part_hashes(store: ImageStore, name: str, digest: str) -> bytes:
    """The SHA-256 digests of a part's images, 32 bytes each, in key order: read off its
    records once, then kept in the cache by the part's content digest."""
    cached = cache.load_bytes(cache.part_hashes_name(digest))
    if cached is not None and len(cached) % 32 == 0:
        return cached
    hashes = b"".join(
        bytes.fromhex(peek_sha256_and_split(raw)[0]) for _key, raw in store.part(name).raw_records()
    )
    cache.save_bytes(cache.part_hashes_name(digest), hashes)
    return hashes


def _find_duplicates(
    store: ImageStore, new_by_hash: dict[str, str], removal_set: set[str], plan: PackPlan
) -> None:
    """New images whose bytes the store already holds under another key."""
    wanted = {bytes.fromhex(sha): sha for sha in new_by_hash}
    for part in store.parts:
        hashes = part_hashes(store, part.name, part.content_digest)
        found = {h for h in (hashes[i : i + 32] for i in range(0, len(hashes), 32)) if h in wanted}
        if not found:
            continue
        for number, key in enumerate(store.part(part.name)):  # rare: name the stored key
            digest = hashes[number * 32 : number * 32 + 32]
            if digest in found and key not in removal_set:
                sha = wanted[digest]
                if sha in new_by_hash:
                    plan.duplicates[new_by_hash.pop(sha)] = key


def _relabel(plan: PackPlan, stored: Record, metadata: Metadata) -> bool:
    """Plan `metadata` for a stored record if it differs from what it has; count the
    fields it loses (only tracked annotations can take one away)."""
    if metadata == (stored.metadata, stored.annotated):
        return False
    same = metadata[0] == stored.metadata
    (plan.retracked if same else plan.relabeled).append(stored.key)
    plan.metadata[stored.key] = metadata
    plan.fields_removed.update(name for name in stored.metadata if name not in metadata[0])
    return True


def apply_plan(
    store_path: Path,
    manifest: Path,
    incoming: Path,
    plan: PackPlan,
    params: PackParams,
    *,
    base: ImageStore | None = None,
    on_item: Callable[[Record], None] | None = None,
    held: ImageStore | None = None,
) -> Header:
    """Publish the new store in the layout params.yaml names; return its header. New
    bytes are read from the incoming files. base: the store the plan was made against
    (in another place when converting between layouts); held: the store as it is,
    which the paired images a record keeps are read from."""
    ratios = params.split
    metadata = plan.metadata
    probed = Probed()  # the hashes ingest took, to prove a file unchanged since
    staged = _Staged(manifest, incoming, plan, probed, held)

    def transform(record: Record) -> Record:
        planned = metadata.get(record.key)
        if planned is not None:
            record = record.replace(metadata=planned[0], annotated=planned[1])
        return with_split(record, ratios)

    with probed:
        if params.layout == "single":
            return rebuild(
                store_path,
                staged.additions,
                plan.removed,
                base=base,
                transform=transform,
                on_item=on_item,
                indexed=params.index,
                byte_additions=staged.byte_additions,
            )
        return write_sharded(
            store_path,
            staged.additions,
            plan.removed,
            base=base,
            touched=[*plan.resplit, *plan.relabeled, *plan.retracked],
            shard_bytes=params.shard_bytes,
            transform=transform,
            on_item=on_item,
            indexed=params.index,
        )


def outdated(store: ImageStore, params: PackParams) -> str | None:
    """Why the store must be written again although nothing in it changes: a part in an
    older format version, or indexing other fields than params.yaml names."""
    for part in store.parts:
        why = _part_header(store, part).outdated(params.index)
        if why is not None:
            return why
    return None


def _part_header(store: ImageStore, part: Part) -> Header:
    """A part's header, kept in the cache by the shard's content and file fingerprint:
    asking it of every shard on each run would open them all (and after DVC's chmod,
    verify them all again: trust.py)."""
    if store.layout == "single":
        return store.part(part.name).header
    path = store.path / part.name
    stamp = list(fingerprint(path) or ())
    name = f"parts/{part.content_digest}.header"
    cached = cache.load(name)
    if isinstance(cached, dict) and cached.get("stamp") == stamp and stamp:
        try:
            return Header.decode(str(cached.get("header")).encode(), str(path))
        except StoreError:
            pass  # the cache is ours but may be damaged: ask the file
    header = store.part(part.name).header
    cache.save(name, {"stamp": stamp, "header": header.encode().decode()})
    return header


@dataclass
class _Staged:
    """The plan's writes as items: each staged record whose bytes (or some of them) come
    from the incoming folder, read and proven as ingest hashed them."""

    manifest: Path
    incoming: Path
    plan: PackPlan
    probed: Probed
    held: ImageStore | None  # the store as it is: the paired images a record keeps

    def item(self, staged: Record) -> Item:
        info = staged.info
        read = _reader(self.incoming, staged.key, info.sha256, info.size, self.probed)
        whole = self.plan.repaired.get(staged.key)  # with the paired images it keeps
        record = staged if whole is None else staged.replace(paired=whole)
        paired = None
        if record.paired:
            paired = _paired_reader(self.incoming, staged, self.probed, self.held)
        return Item(record, read, True, None, paired)

    def additions(self) -> Iterator[Item]:
        writes = self.plan.writes
        for record in read_manifest(self.manifest):
            if record.key in writes:
                yield self.item(record)

    def byte_additions(self) -> Iterator[Item]:  # the pass that writes bytes: key and info
        writes = self.plan.writes
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


def plan_report(
    plan: PackPlan, params: PackParams, header: Header, written: bool
) -> dict[str, Any]:
    return {
        "written": written,
        "count": header.count,
        "total_bytes": header.total_bytes,
        "content_digest": header.content_digest,
        "added": len(plan.added),
        "replaced": len(plan.replaced),
        "relabeled": len(plan.relabeled),
        "retracked": len(plan.retracked),
        "unchanged": plan.unchanged,
        "removed": len(plan.removed),
        "resplit": len(plan.resplit),
        "fields_removed": dict(sorted(plan.fields_removed.items())),
        "unused_annotations": plan.unused_annotations,
        "split": dict(params.split),
        "on_conflict": params.on_conflict,
        "on_duplicate": params.on_duplicate,
        "conflicts": plan.conflicts,
        "duplicates": [{"key": k, "same_as": v} for k, v in sorted(plan.duplicates.items())],
        "removal_not_found": plan.removal_not_found,
        "removal_list": removal_digest(plan.removed, plan.removal_not_found),
        "not_packed": dict(sorted(plan.not_packed.items())),
    }


def removal_digest(removed: list[str], not_found: list[str]) -> str:
    """What the removal list said, as a digest: pack warns about keys it names that are
    not in the store only when the list changed, not on every later run."""
    text = "\n".join(sorted([*removed, *not_found]))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# Past either, pack advises the sharded layout: the single file is rewritten whole.
SHARDED_FROM = 2_000_000_000  # bytes of images
SHARDED_FROM_IMAGES = 50_000  # images: each change rewrites every record (~7 s at 100,000)


@dataclass
class PackPaths:
    """The paths a pack run was given, for what it tells the user."""

    store: Path
    report: Path
    annotations: Path | None
    remove_list: Path


@dataclass
class PackOutcome(StageResult):
    """What a pack run did: the plan, the published header, and how it was written."""

    plan: PackPlan
    header: Header
    written: bool
    converted_from: Path | None
    params: PackParams
    where: PackPaths
    removals_changed: bool = True  # the removal list differs from the last run's
    upgraded: str | None = None  # why an unchanged store was written again

    def report(self) -> dict[str, Any]:
        return plan_report(self.plan, self.params, self.header, self.written)

    def notes(self) -> list[str]:
        """Lines for the user beyond the summary: a store no longer used, when to switch
        layouts, annotations and removals that matched nothing."""
        plan, where, notes = self.plan, self.where, self._advice()
        if self.converted_from is not None:
            notes.insert(
                0,
                f"  {self.converted_from} is no longer used; delete it when you like "
                "(its versions stay in DVC's cache and remote)",
            )
        if plan.unused_annotations:
            notes.append(
                f"  {len(plan.unused_annotations)} annotation row(s) or file(s) in "
                f"{where.annotations} matched no image, first: {plan.unused_annotations[0]} "
                f"(all in {where.report})"
            )
        if plan.removal_not_found and self.removals_changed:  # once, not every run
            notes.append(
                f"  {len(plan.removal_not_found)} key(s) in {where.remove_list} are not "
                f"in the store (see {where.report})"
            )
        return notes

    def _advice(self) -> list[str]:
        header = self.header
        large = header.total_bytes > SHARDED_FROM or header.count >= SHARDED_FROM_IMAGES
        if self.params.layout == "single" and self.written and large:
            return [
                f"  note: {self.where.store} holds {header.count:,} images "
                f"({header.total_bytes / 1e9:.1f} GB) and is rewritten (and pushed) whole on "
                "every change; the sharded layout writes only what changed: docs/PIPELINE.md, "
                '"Growing past a few GB"'
            ]
        return []

    def summary(self) -> str:
        plan = self.plan
        duplicates = "duplicates " + ("kept" if self.params.on_duplicate == "keep" else "skipped")
        parts = [f"{len(plan.added)} added"]
        for count, what in (
            (len(plan.replaced), "replaced"),
            (len(plan.relabeled), "relabeled"),
            (len(plan.retracked), "with the same fields, tracked otherwise (data/annotations/)"),
            (len(plan.removed), "removed"),
            (len(plan.resplit), "moved to another split"),
            (plan.unchanged, "already there"),
            (len(plan.duplicates), duplicates),
            (len(plan.conflicts) - len(plan.replaced), "conflicts skipped"),
        ):
            if count:
                parts.append(f"{count} {what}")
        if plan.fields_removed:
            removed = sorted(plan.fields_removed.items())
            parts.append(
                "fields removed by data/annotations: "
                + ", ".join(f"{name} from {count}" for name, count in removed)
            )
        return (
            f"pack: {', '.join(parts)}; {self.where.store} holds {self.header.count} images "
            f"({self.header.total_bytes / 1e6:,.1f} MB), {self._state()}"
        )

    def _state(self) -> str:
        if self.converted_from is not None:
            return f"converted from {self.converted_from}"
        if self.upgraded is not None and not self.plan.changes_store:
            return self.upgraded
        return "written" if self.written else "unchanged, not rewritten"


def run(
    store_path: Path,
    manifest: Path,
    incoming: Path,
    remove_list: Path,
    catalog: Path,
    report: Path,
    params: PackParams,
    annotations: Path | None = None,
    rules: AnnotationsParams | None = None,
    progress: Callable[[int], AbstractContextManager[Progress]] | None = None,
) -> PackOutcome:
    """The pack stage: check the store is the version dvc.lock records, plan, publish
    the new version under the writer's lock (only if anything changes), bring the
    catalog in line, write the report.

    annotations: the tracked annotations folder (data/annotations/), applied to every
    record, stored or new; rules: params.yaml's `annotations` section.
    `progress(total)`, if given, makes the bar (a context manager) the write reports to.
    """
    if not manifest.exists():
        raise PackError(f"{manifest}: no staged manifest; run ingest first")
    rules = rules or AnnotationsParams()
    previous = previous_store(store_path)
    check_recorded(store_path, report)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    where = PackPaths(store_path, report, annotations, remove_list)
    with writer_lock(store_path):
        if store_path.is_dir():
            tidy(store_path)  # what a killed pack left: DVC must not track it
        source = store_path if store_path.exists() else previous
        store = _open(source)
        removals = read_removals(remove_list)
        stored_folders = _stored_folders(store) if needs_layout(rules) else None
        layout = _layout(store, stored_folders, manifest, set(removals))
        tracked = _tracked(store, manifest, annotations, rules, layout)
        last = _previous_report(report)
        since = _since(store, last, params, tracked)
        plan = plan_pack(store, manifest, removals, params, tracked, since)
        converting = source is not None and source != store_path
        upgrade = outdated(store, params) if store is not None else None
        rewritten = _single_part(store) if not converting else None
        written = store is None or plan.changes_store or converting or upgrade is not None
        try:
            header = (
                _write(store, plan, params, (manifest, incoming), where.store, converting, progress)
                if written or store is None
                else store.header
            )
        finally:
            if store is not None:
                store.close()
        outcome = PackOutcome(
            plan, header, written, source if converting else None, params, where, upgraded=upgrade
        )
        digest = removal_digest(plan.removed, plan.removal_not_found)
        outcome.removals_changed = last.get("removal_list") != digest
        # The report first: it records the store now published, so a pack run again
        # after a failure below (a read-only catalog folder, a full disk) picks up here.
        _remember(header, tracked)
        if stored_folders is not None:
            _remember_folders(header, stored_folders, plan)
        write_json(report, outcome.report())
        carried = (rewritten, plan) if rewritten is not None else None
        _catalog_and_notes(store_path, catalog, manifest, carried)
    return outcome


def _single_part(store: ImageStore | None) -> str | None:
    """The content digest of a single-file store: a new part at every change."""
    if store is None or store.path.is_dir():
        return None
    return store.parts[0].content_digest


def _open(source: Path | None) -> ImageStore | None:
    """The store to pack into (or convert), checked readable; None for a first pack."""
    if source is None:
        return None
    store = ImageStore(source)
    try:
        len(store)
    except StoreError as exc:
        raise PackError(
            f"{exc}. Restore the last good version with `dvc checkout {source}`"
        ) from None
    return store


def _tracked(
    store: ImageStore | None,
    manifest: Path,
    annotations: Path | None,
    rules: AnnotationsParams,
    layout: FolderLayout,
) -> Tracked:
    """The tracked annotations, read for the keys of the store and the manifest, with
    the folder rules over `layout`."""
    if annotations is None:
        return Tracked(Annotations(), rules, layout)

    def keys() -> Iterator[str]:
        yield from store if store is not None else ()
        yield from read_manifest_keys(manifest)

    return read_tracked(annotations, rules, keys, layout=layout)


FOLDERS = "folders.json"  # in the cache: the store's images per folder (folder labels)


def _stored_folders(store: ImageStore | None) -> Counter[str]:
    """How many images each folder of the store holds: from the cache while it
    describes this very store (its content digest), else by listing its keys."""
    if store is None:
        return Counter()
    cached = cache.load(FOLDERS)
    if isinstance(cached, dict) and cached.get("store") == store.header.content_digest:
        counts = cached.get("counts")
        if isinstance(counts, dict) and all(type(n) is int for n in counts.values()):
            return Counter(counts)
    return Counter(folder_of(key) for key in store)


def _layout(
    store: ImageStore | None, stored: Counter[str] | None, manifest: Path, removals: set[str]
) -> FolderLayout:
    """The folders of the store to be, for folder labels: the store's, less those whose
    every image data/remove.txt lists, plus the staged images' (none if no rule needs
    them). A staged key the store holds counts twice: it only keeps its folder."""
    if stored is None:
        return FolderLayout()
    counts = stored.copy()
    counts.subtract(folder_of(k) for k in removals if store is not None and k in store)
    counts.update(folder_of(k) for k in read_manifest_keys(manifest) if k not in removals)
    return FolderLayout.of(folder for folder, n in counts.items() if n > 0)


def _remember_folders(header: Header, stored: Counter[str], plan: PackPlan) -> None:
    """The published store's images per folder: what it held, less what pack removed,
    plus what it added."""
    counts = stored.copy()
    counts.subtract(folder_of(key) for key in plan.removed)
    counts.update(folder_of(key) for key in plan.added)
    kept = {folder: n for folder, n in sorted(counts.items()) if n > 0}
    cache.save(FOLDERS, {"store": header.content_digest, "counts": kept})


def _write(
    store: ImageStore | None,
    plan: PackPlan,
    params: PackParams,
    sources: tuple[Path, Path],
    store_path: Path,
    converting: bool,
    progress: Callable[[int], AbstractContextManager[Progress]] | None,
) -> Header:
    """Publish the plan's new version; sources: the manifest and the incoming folder."""
    manifest, incoming = sources
    total = len(plan.writes) + (len(store) if store is not None else 0)
    with progress(total) if progress is not None else contextlib.nullcontext() as bar:
        return apply_plan(
            store_path,
            manifest,
            incoming,
            plan,
            params,
            base=store if converting else None,
            on_item=None if bar is None else per_item(bar),
            held=store,
        )


def _catalog_and_notes(
    store_path: Path, catalog: Path, manifest: Path, rewritten: tuple[str, PackPlan] | None
) -> None:
    """Bring the catalog in line with the published store; tell ingest's cache where
    the staged images are now (seen.py), so the next ingest need not look them up.
    `rewritten`: the single file's part before this pack, and the plan: the records it
    carried over as they were are where they were, in the new part (or a no-op run just
    after an add would look every earlier image up again, and report what it said of
    them: reports/ingest.json and dvc.lock would change)."""
    with ImageStore(store_path) as published:
        try:
            write_catalog(published, catalog)
        except ShelfError as exc:
            raise PackError(
                f"{store_path} was published, but its catalog was not: {exc}; "
                "fix that and run pack again"
            ) from None
        staged = list(read_manifest_keys(manifest))
        where: dict[str, str] = {}
        for key, raw, part in published.raw_records_of(staged):
            where[key] = part.content_digest
            if b'"paired":' in raw:  # its paired files are as stored as it is
                for paired in Record.decode(key, raw).paired.values():
                    where[paired.file] = part.content_digest
        note_stored(where, _carried(published, *rewritten) if rewritten else None)


def _carried(published: ImageStore, before: str, plan: PackPlan) -> tuple[str, dict[str, str]]:
    """(the single file's part before, {file: the part now} for every key whose record
    the plan left as it was, and its paired files)."""
    parts = published.parts
    now: dict[str, str] = {}
    if len(parts) != 1 or parts[0].content_digest == before:
        return before, now
    part = parts[0]
    changed = plan.writes | set(plan.relabeled) | set(plan.retracked) | set(plan.resplit)
    for key, raw in published.part(part.name).raw_records():
        if key in changed:
            continue
        now[key] = part.content_digest
        if b'"paired":' in raw:
            for paired in Record.decode(key, raw).paired.values():
                now[paired.file] = part.content_digest
    return before, now


def _previous_report(report: Path) -> dict[str, Any]:
    try:
        last = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return last if isinstance(last, dict) else {}


TRACKED = "tracked.json"  # in the cache: the annotation files as the last pack saw them


def _since(
    store: ImageStore | None, last: dict[str, Any], params: PackParams, tracked: Tracked
) -> Since:
    """What the last pack of this store settled: its report `last` (for the ratios) and
    the cache (for the annotation files), each trusted only if it names this store."""
    if store is None:
        return Since()
    digest = store.header.content_digest
    same_ratios = last.get("content_digest") == digest and last.get("split") == dict(params.split)
    seen = cache.load(TRACKED)
    if not (
        isinstance(seen, dict)
        and seen.get("store") == digest
        and seen.get("rules") == _rules(tracked)
    ):
        return Since(same_ratios, None)
    before = seen.get("files")
    if not isinstance(before, dict) or not all(isinstance(v, dict) for v in before.values()):
        return Since(same_ratios, None)  # a cache of another shape: look at every record
    folders = seen.get("folders")
    if not isinstance(folders, dict):
        return Since(same_ratios, None)
    now = _tracked_files(tracked)
    keys: set[str] = set()
    for rel in set(before) | set(now):
        was, is_ = before.get(rel, {}), now.get(rel, {})
        if was.get("stamp") != is_.get("stamp"):
            keys.update(was.get("keys", ()), is_.get("keys", ()))
    # Hugging Face's folder labels depend on the other images of a dataset: where that
    # verdict changed (a second class folder arrived, an image at another depth), the
    # stored images under the top-level folder it concerns.
    changed = tracked.layout.changed_tops(folders)
    if changed:
        keys.update(key for key in store if top_of(key) in changed)
    return Since(same_ratios, keys)


def _rules(tracked: Tracked) -> list[Any]:
    rules = tracked.rules
    return [rules.label_from_folder, rules.split_from_folder, dict(rules.label_from_folder_in)]


def _tracked_files(tracked: Tracked) -> dict[str, dict[str, list[Any]]]:
    """Each tracked annotation file: its fingerprint ("stamp") and the keys it speaks of."""
    annotations = tracked.annotations
    return {
        rel: {
            "stamp": list(fingerprint(annotations.root / rel) or ()),
            "keys": sorted(annotations.keys_by_file.get(rel, ())),
        }
        for rel in annotations.files
    }


def _remember(header: Header, tracked: Tracked) -> None:
    cache.save(
        TRACKED,
        {
            "store": header.content_digest,
            "rules": _rules(tracked),
            "files": _tracked_files(tracked),
            "folders": tracked.layout.codes(),
        },
    )
