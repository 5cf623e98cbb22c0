"""Pack's own state: what the last pack published, in `data/pack-state.json`. Never the
truth: pack uses it only while it describes the store as it is (by its content digest),
and losing it costs the next run time, never correctness.

It holds the store's path and content digest, the split ratios its records were given,
whether every record carries what its pixels measure, what the removal list said, and
the md5 of the report written with it (dvc.lock records that md5, so pack can tell the
store is the version dvc.lock records without asking DVC). These facts are the same on
every machine, but the file is this machine's: git ignores it and DVC does not track it.
A fresh clone has none, and a `git checkout` of an older commit leaves one that names
another store: either way the next pack asks DVC and looks at every record once, where
declaring it to DVC would make DVC call pack stale for this file alone. Pack reads its
state, never its report (reports/pack.json is for people and validate).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..base.atomic import write_json

STATE = Path("data/pack-state.json")


@dataclass(frozen=True)
class PackState:
    """What the last pack published: the store, and the facts about it a run relies on."""

    store: str  # the store's path, as pack was given it (POSIX)
    content_digest: str  # the published store's
    split: dict[str, float]  # the ratios its records were split by (pack.split)
    removal_list: str  # what data/remove.txt said, as a digest (Changes.removal_digest)
    report_md5: str  # the report written with it: dvc.lock names this run by that md5
    measured: int = 0  # the PROPS_VERSION every record carries props of; 0: not known


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
    if type(data["measured"]) is not int:
        return None
    return PackState(**data)


def write_state(state: PackState, path: Path = STATE) -> None:
    """Publish the state whole (base/atomic.py). Not synced to disk: a state lost to a power
    cut costs the next run time, no more."""
    write_json(path, asdict(state))
