"""Pack: merge the staged manifest into the store, by the policies in params.yaml
(pack_changes.py says them). If nothing changes, the store is not rewritten: it stays
byte-identical.

The layout (pack.layout) decides how a new version is written; when pack.store names a
new place and dvc.lock records the store elsewhere (the layout was switched), that
store is converted. Pack also writes the catalog (every record, no image bytes) that
`imageshelf diff` compares.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .. import cache
from ..annotations import Annotations
from ..annotations.base import folder_of
from ..annotations.folders import FolderLayout, top_of
from ..atomic import write_json
from ..catalog import write_catalog
from ..errors import ShelfError
from ..files import fingerprint
from ..manifest import read_manifest_keys
from ..metadata import Tracked, needs_layout, read_tracked
from ..params import AnnotationsParams, PackParams
from ..progress import Progress, per_item
from ..seen import note_stored
from ..store import Header, ImageStore, InvalidKeyError, Part, Record, StoreError, encode_key
from ..store.writer import tidy, writer_lock
from ..versions import check_recorded, previous_store
from .pack_changes import Changes, ConflictError, PackError, Since, plan_changes
from .pack_outcome import PackOutcome, PackPaths
from .pack_write import apply_changes

__all__ = ["ConflictError", "PackError", "PackOutcome", "PackPaths", "read_removals", "run"]


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
    where = PackPaths(store_path, report, annotations or Path("data/annotations"), remove_list)
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
        memos: dict[str, bytes] = {}
        plan = plan_changes(store, manifest, removals, params, tracked, since, memos)
        for name, data in memos.items():
            cache.save_bytes(name, data)
        converting = source is not None and source != store_path
        upgrade = outdated(store, params) if store is not None else None
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
        outcome.removals_changed = last.get("removal_list") != plan.removal_digest
        # The report first: it records the store now published, so a pack run again
        # after a failure below (a read-only catalog folder, a full disk) picks up here.
        _remember(header, tracked)
        if stored_folders is not None:
            _remember_folders(header, stored_folders, plan)
        write_json(report, outcome.report())
        _catalog_and_notes(store_path, catalog, manifest)
    return outcome


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


def _remember_folders(header: Header, stored: Counter[str], plan: Changes) -> None:
    """The published store's images per folder: what it held, less what pack removed,
    plus what it added."""
    counts = stored.copy()
    counts.subtract(folder_of(key) for key in plan.removed)
    counts.update(folder_of(key) for key in plan.added)
    kept = {folder: n for folder, n in sorted(counts.items()) if n > 0}
    cache.save(FOLDERS, {"store": header.content_digest, "counts": kept})


def _write(
    store: ImageStore | None,
    plan: Changes,
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
        return apply_changes(
            store_path,
            manifest,
            incoming,
            plan,
            params,
            base=store if converting else None,
            on_item=None if bar is None else per_item(bar),
            held=store,
        )


def _catalog_and_notes(store_path: Path, catalog: Path, manifest: Path) -> None:
    """Bring the catalog in line with the published store; tell ingest's cache where
    the staged images are now (seen.py), so the next ingest need not look them up."""
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
        note_stored(where)


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
