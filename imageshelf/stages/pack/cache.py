"""What pack keeps in the cache (`.dvc/tmp/imageshelf/`, state/cache.py) between runs: the
tracked annotation files as the last pack saw them (their fingerprints are this
machine's), and how many images each folder of the store holds (for folder labels).
Each entry names the store it describes by its content digest and is used only for
that store; losing it costs time, never correctness.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ...annotations.base import folder_of
from ...annotations.folders import top_of
from ...base.userfile import fingerprint
from ...sources.tracked import Tracked
from ...state import cache
from ...store import ImageStore

TRACKED = "tracked.json"  # the annotation files as the last pack saw them
FOLDERS = "folders.json"  # the store's images per folder (folder labels)


def changed_keys(store: ImageStore, tracked: Tracked) -> set[str] | None:
    """The keys whose tracked annotations may have changed since the last pack of this
    very store (the keys the changed annotation files spoke of, before and now); None
    when that is not known (a first run, new folder rules, the cache lost)."""
    digest = store.header.content_digest
    seen = cache.load(TRACKED)
    if not (
        isinstance(seen, dict)
        and seen.get("store") == digest
        and seen.get("rules") == _rules(tracked)
    ):
        return None
    before = seen.get("files")
    if not isinstance(before, dict) or not all(isinstance(v, dict) for v in before.values()):
        return None  # a cache of another shape: look at every record
    folders = seen.get("folders")
    if not isinstance(folders, dict):
        return None
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
    return keys


def remember_tracked(digest: str, tracked: Tracked) -> None:
    """The annotation files as this run saw them, for the store it published."""
    cache.save(
        TRACKED,
        {
            "store": digest,
            "rules": _rules(tracked),
            "files": _tracked_files(tracked),
            "folders": tracked.layout.codes(),
        },
    )


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


def stored_folders(store: ImageStore | None) -> Counter[str]:
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


def remember_folders(
    digest: str, stored: Counter[str], removed: Iterable[str], added: Iterable[str]
) -> None:
    """The published store's images per folder: what it held, less what pack removed,
    plus what it added."""
    counts = stored.copy()
    counts.subtract(folder_of(key) for key in removed)
    counts.update(folder_of(key) for key in added)
    kept = {folder: n for folder, n in sorted(counts.items()) if n > 0}
    cache.save(FOLDERS, {"store": digest, "counts": kept})
