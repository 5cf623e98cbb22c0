"""What pack remembers between runs, so that a run costs what changed. None of it is the
truth: each fact is used only while it describes the store as it is (by its content
digest), and losing any of it costs time, never correctness.

- `data/pack-state.json` (PackState): what the last pack published. The store's path
  and content digest, the split ratios its records were given, what the removal list
  said, and the md5 of the report written with it (dvc.lock records that md5, so pack
  can tell the store is the version dvc.lock records without asking DVC). These facts
  are the same on every machine, but the file is this machine's: git ignores it and
  DVC does not track it. A fresh clone has none, and a `git checkout` of an older
  commit leaves one that names another store: either way the next pack asks DVC and
  looks at every record once, where declaring it to DVC would make DVC call pack stale
  for this file alone.
- In the cache (`.dvc/tmp/imageshelf/`, cache.py): the tracked annotation files as the
  last pack saw them (their fingerprints are this machine's), and how many images each
  folder of the store holds (for folder labels).

Pack reads its state, never its report (reports/pack.json is for people and validate).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import cache
from ..annotations.base import folder_of
from ..annotations.folders import top_of
from ..atomic import write_json
from ..files import fingerprint
from ..metadata import Tracked
from ..store import ImageStore

STATE = Path("data/pack-state.json")


@dataclass(frozen=True)
class PackState:
    """What the last pack published: the store, and the facts about it a run relies on."""

    store: str  # the store's path, as pack was given it (POSIX)
    content_digest: str  # the published store's
    split: dict[str, float]  # the ratios its records were split by (pack.split)
    removal_list: str  # what data/remove.txt said, as a digest (Changes.removal_digest)
    report_md5: str  # the report written with it: dvc.lock names this run by that md5


def read_state(path: Path = STATE) -> PackState | None:
    """Pack's state, or None if there is none or it is not one (hand-made, cut short by a
    power cut, an older shape): the next run then decides without it."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(PackState.__dataclass_fields__):
        return None
    split = data["split"]
    texts = (data["store"], data["content_digest"], data["removal_list"], data["report_md5"])
    if not all(isinstance(text, str) for text in texts) or not isinstance(split, dict):
        return None
    if not all(type(v) in (int, float) for v in split.values()):
        return None
    return PackState(**data)


def write_state(state: PackState, path: Path = STATE) -> None:
    """Publish the state whole (atomic.py). Not synced to disk: a state lost to a power
    cut costs the next run time, no more."""
    write_json(path, asdict(state))


# ------------------------------------------------------------------ in the cache

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
