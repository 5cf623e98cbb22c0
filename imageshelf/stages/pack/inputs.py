"""What pack decides from, read before anything is written: the paths it was given, the
store as it is (or the one it converts), the removal list, the tracked annotations with
the folder rules, and pack's own state (state/pack.py). Reading only: nothing here
writes a byte of the project (opening a store remembers that it passed verification in
the user's cache, as every reader does: store/trust.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...annotations import Annotations
from ...annotations.base import folder_of
from ...annotations.folders import FolderLayout
from ...project.params import AnnotationsParams, IngestParams, PackParams
from ...project.paths import Project
from ...records.manifest import read_manifest_keys
from ...sources.tracked import Tracked, needs_layout, read_tracked
from ...state.pack import STATE, PackState, read_state
from ...store import ImageStore, InvalidKeyError, StoreError, encode_key
from .cache import stored_folders
from .changes import PackError


@dataclass(frozen=True)
class PackPaths:
    """Where pack reads and writes: the pack stage's deps and outs in dvc.yaml (as the
    Project reads them: project/paths.py), and its own state."""

    store: Path
    manifest: Path
    incoming: Path
    remove_list: Path
    catalog: Path
    report: Path
    annotations: Path | None  # None: no tracked annotations
    state: Path = STATE  # pack's own, not DVC's: its home is state/pack.py

    @classmethod
    def of(cls, project: Project) -> PackPaths:
        """The paths the project's dvc.yaml gives pack."""
        return cls(
            project.store,
            project.manifest,
            project.incoming,
            project.remove_list,
            project.catalog,
            project.pack_report,
            project.annotations,
        )


@dataclass
class PackInputs:
    """Everything a pack run decides from. The store is open (read-only) until `close`."""

    paths: PackPaths
    params: PackParams
    rules: AnnotationsParams
    source: Path | None  # the store as it is: paths.store, the one converted, or None
    store: ImageStore | None  # open at `source`
    removals: list[str]
    tracked: Tracked
    stored_folders: Counter[str] | None  # images per folder, if a folder rule needs them
    state: PackState | None
    max_pixels: int | None = IngestParams().max_pixels  # for images pack measures; None: none

    @property
    def converting(self) -> bool:
        """The store is in another place (the layout was switched): it is converted."""
        return self.source is not None and self.source != self.paths.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> PackInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gather(
    paths: PackPaths,
    params: PackParams,
    rules: AnnotationsParams,
    previous: Path | None,
    max_pixels: int | None = IngestParams().max_pixels,
) -> PackInputs:
    """Read what pack decides from. `previous`: the store in another place that dvc.lock
    records (versions.previous_store), used while paths.store does not exist yet."""
    source = paths.store if paths.store.exists() else previous
    store = _open(source)
    try:
        removals = read_removals(paths.remove_list)
        folders = stored_folders(store) if needs_layout(rules) else None
        layout = _layout(store, folders, paths.manifest, set(removals))
        tracked = _tracked(store, paths.manifest, paths.annotations, rules, layout)
    except BaseException:
        if store is not None:
            store.close()
        raise
    state = read_state(paths.state)
    return PackInputs(
        paths, params, rules, source, store, removals, tracked, folders, state, max_pixels
    )


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
