"""Undoing a decision gives back the store from before it: a correction in
data/annotations/ (a new value, or a null) reverted brings back the value the image
arrived with, although its files left data/incoming/ long ago (the record keeps it:
`overridden`, docs/FORMAT.md)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import lmdb
import pytest

from imageshelf.errors import ShelfError
from imageshelf.records.manifest import read_manifest
from imageshelf.store import ImageStore
from imageshelf.versions.catalog import diff_catalogs

from conftest import (
    build_store,
    command_line,
    data_of,
    make_image,
    md5,
    put,
    sharded_params,
)
from conftest import ingest_and_pack as packed
from conftest import report as report_of

INCOMING = Path("data/incoming")
ANNOTATIONS = Path("data/annotations")
STORE = Path("data/images.lmdb")
KEY = "boxes/street.jpg"


def arrive(label: str) -> None:
    """The image, dropped in data/incoming/ with a sidecar giving its label."""
    put(INCOMING, {KEY: make_image("JPEG", seed=1), f"{KEY}.json": f'{{"label": "{label}"}}'})


def correct(**fields: Any) -> None:
    """A correction in data/annotations/, as the viewer writes one: a JSON Lines row."""
    import json

    put(ANNOTATIONS, {"viewer.jsonl": json.dumps({"file_name": KEY, **fields}) + "\n"})


def undo() -> None:
    """`git checkout -- data/annotations/viewer.jsonl`: the row was never committed."""
    (ANNOTATIONS / "viewer.jsonl").unlink()


def gone_from_incoming() -> None:
    shutil.rmtree(INCOMING)
    INCOMING.mkdir()


SHARDED = Path("data/images")


def ingest_and_pack() -> ImageStore:
    """`dvc repro`, in whichever layout params.yaml names."""
    return packed(str(SHARDED if SHARDED.exists() or _sharded() else STORE))


def _sharded() -> bool:
    return "layout: sharded" in Path("params.yaml").read_text()


def snapshot(store: ImageStore) -> tuple[Any, ...]:
    """Everything a store holds, bookkeeping included: its records (the content digest
    covers each record's bytes), what they say, and its files' bytes."""
    files = sorted(SHARDED.iterdir()) if SHARDED.is_dir() else [STORE]
    return data_of(store), store.header.content_digest, [(f.name, md5(f)) for f in files]


@pytest.fixture(params=["single", "cached", "sharded"])
def project(request, workspace) -> Path:
    """A workspace packed as a plain folder (pack plans from a scan of the store), as a
    DVC project (from what its cache says the annotation files spoke of), or sharded."""
    if request.param == "cached":
        (workspace / ".dvc").mkdir()
    elif request.param == "sharded":
        sharded_params(workspace)
    return workspace


def test_undoing_a_relabel_gives_back_the_value_the_image_arrived_with(project):
    arrive("street")
    before = snapshot(ingest_and_pack())
    gone_from_incoming()
    correct(label="road")
    store = ingest_and_pack()
    assert store.metadata(KEY) == {"label": "road"}
    assert store.record(KEY).overridden == {"label": "street"}
    undo()
    store = ingest_and_pack()
    assert store.metadata(KEY) == {"label": "street"}
    assert snapshot(store) == before
    assert report_of("pack")["fields_removed"] == {}


def test_undoing_a_null_gives_back_the_field_it_removed(project):
    arrive("street")
    before = snapshot(ingest_and_pack())
    gone_from_incoming()
    correct(label=None)
    store = ingest_and_pack()
    assert store.metadata(KEY) == {} and store.record(KEY).annotated == ()
    assert report_of("pack")["fields_removed"] == {"label": 1}
    undo()
    assert snapshot(ingest_and_pack()) == before


def test_a_field_nothing_arrived_with_still_leaves_when_its_source_stops(workspace):
    arrive("street")
    before = snapshot(ingest_and_pack())
    gone_from_incoming()
    correct(label="road", note="blurry")
    store = ingest_and_pack()
    assert store.metadata(KEY) == {"label": "road", "note": "blurry"}
    assert store.record(KEY).overridden == {"label": "street"}  # only what arrived
    undo()
    store = ingest_and_pack()
    assert store.metadata(KEY) == {"label": "street"}
    assert report_of("pack")["fields_removed"] == {"note": 1}
    assert snapshot(store) == before


def _catalog() -> list[Any]:
    return list(read_manifest(Path("data/catalog/images.jsonl")))


def test_a_new_arrival_under_a_correction_is_the_value_an_undo_gives_back(workspace):
    arrive("street")
    ingest_and_pack()
    correct(label="road")
    ingest_and_pack()
    catalog = _catalog()
    arrive("avenue")  # dropped again, with another label: the correction still wins
    store = ingest_and_pack()
    assert store.metadata(KEY) == {"label": "road"}
    assert store.record(KEY).overridden == {"label": "avenue"}
    pack = report_of("pack")
    assert (pack["relabeled"], pack["retracked"]) == (0, 1)  # no field anyone sees changed
    diff = diff_catalogs(catalog, _catalog())
    assert (diff.added, diff.removed, diff.changed, diff.relabeled) == ([], [], [], [])
    gone_from_incoming()
    undo()
    assert ingest_and_pack().metadata(KEY) == {"label": "avenue"}


def test_a_correction_kept_packs_the_same_store_again(workspace):
    """The arrived value kept under a correction is settled: the same files dropped
    again change nothing."""
    arrive("street")
    ingest_and_pack()
    correct(label="road")
    before = snapshot(ingest_and_pack())
    arrive("street")
    assert snapshot(ingest_and_pack()) == before
    pack = report_of("pack")
    assert (pack["relabeled"], pack["retracked"]) == (0, 0)


# ------------------------------------------------------------- a store from elsewhere


def _crafted(store: Path, overridden: bytes) -> None:
    """The store's only record, rewritten with `overridden` as someone with their own
    LMDB code could: the file stays sound, the record does not."""
    env = lmdb.open(str(store), subdir=False, lock=False, max_dbs=5)
    with env.begin(write=True) as txn:
        records = env.open_db(b"records", txn)
        raw = txn.get(b"a.png", db=records)
        txn.put(b"a.png", raw[:-1] + b',"overridden":' + overridden + b"}", db=records)
    env.close()


@pytest.mark.parametrize(
    "overridden", [b"[1]", b"{}", b'{"label":NaN}', b'{"label":-Infinity}'], ids=repr
)
def test_a_damaged_overridden_is_one_line(workspace, overridden):
    build_store(STORE.resolve(), {"a.png": make_image(seed=1)}, {"a.png": {"label": "cat"}})
    _crafted(STORE, overridden)
    with pytest.raises(ShelfError, match="'a.png' is .*overridden"):
        list(ImageStore(STORE).records())
    result = subprocess.run(
        command_line("ls"), cwd=workspace, capture_output=True, text=True, timeout=120
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "damaged store: the record of 'a.png'" in lines[0] and "overridden" in lines[0]
