"""Broad filters from the catalog's columnar form (imageshelf/read/columnar.py): every
condition gives exactly the images reading every record gives, and a stale or missing
columnar file is never used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imageshelf.read.columnar import select_columnar
from imageshelf.read.dataset import ImageDataset

from conftest import ingest_and_pack, make_image, put

LABELS = ("circle", "square", "triangle", "ünïcode")


def dataset() -> dict[str, bytes | str]:
    """40 images: text labels, whole and decimal scores, booleans, a field of mixed
    types, missing fields and nulls, boxes, and a few masks."""
    files: dict[str, bytes | str] = {}
    for i in range(40):
        files[f"set/{i:02d}.png"] = make_image("PNG", (16 + i, 20 + i % 3), seed=i)
        meta: dict = {"label": LABELS[i % 4], "score": i if i % 3 else i / 4, "flag": i % 2 == 0}
        meta["objects"] = [{"bbox": [j, j, 4, 4], "category": "box"} for j in range(i % 3)]
        if i % 5 == 0:
            meta["mixed"] = "text" if i % 10 else 10
        if i % 7 == 0:
            meta["note"] = None
        elif i % 7 == 1:
            meta["note"] = f"n{i}"
        if i % 11 == 0:
            del meta["label"]
        files[f"set/{i:02d}.json"] = json.dumps(meta)
    return files


CONDITIONS = [
    "label=circle",
    "label=circle,square",
    "label!=circle",
    "label=ünïcode",
    "label>=square",
    "label<square",
    "score>=10",
    "score<2.5",
    "score=3",
    "score=3.0",
    "score=3..12",
    "score=..7",
    "score!=4",
    "score=abc",
    "flag=true",
    "flag=no",
    "flag!=1",
    "note=n8",
    "note!=n8",
    "split=train",
    "split!=train",
    "width>=30",
    "height=21",
    "width=20..40",
    "key>=set/20.png",
    "key=set/03.png,set/04.png",
    "format=PNG",
    "meta.label=square",
    ["split=train", "width>=25"],
    ["label!=square", "score<30", "flag=false"],
]
RECORDS_ONLY = ["mixed=10", "label=", "note=null", "meta.split=train", "props.p99>=0", "width=.."]


@pytest.fixture
def packed(workspace):
    put(Path("data/incoming"), dataset())
    store = ingest_and_pack()
    yield store
    store.close()


@pytest.mark.parametrize("where", CONDITIONS + RECORDS_ONLY, ids=str)
def test_each_condition_selects_what_the_records_select(packed, where):
    by_columns = ImageDataset(packed, where=where)
    by_records = ImageDataset(packed, where=where, catalog="no-such-folder")
    assert by_columns.keys == by_records.keys
    assert 0 < len(by_columns) < 40 or where in ("score=abc", "format=PNG", *RECORDS_ONLY)
    assert by_columns.classes == by_records.classes
    answered = select_columnar(packed, where)
    assert (answered is not None) == (where in CONDITIONS)  # the rest: the records answer


def test_mappings_splits_and_paired(packed):
    for where in ({"label": "circle"}, {"label": {"circle", "square"}}, {"score": [3, 4.0]}):
        assert select_columnar(packed, where) is not None
        assert (
            ImageDataset(packed, where=where).keys
            == ImageDataset(packed, where=where, catalog="none").keys
        )
    assert select_columnar(packed, {"score": "3"}) is None  # text against numbers: records
    assert select_columnar(packed, {"score": lambda s: s > 3}) is None
    val = ImageDataset(packed, split="val")
    assert val.keys == ImageDataset(packed, split="val", catalog="none").keys and val.keys
    assert ImageDataset(packed, paired="mask").keys == []


def test_a_stale_or_missing_columnar_file_is_not_read(packed):
    columns = Path("data/catalog/images.parquet")
    assert select_columnar(packed, "label=circle") is not None
    chosen = ImageDataset(packed, where="score>=20")  # its labels asked when first used
    columns.rename("elsewhere.parquet")  # gone by then: the chosen images' records say
    assert chosen.classes == ImageDataset(packed, where="score>=20").classes
    assert chosen.classes == sorted(LABELS) and chosen.class_to_idx["square"] == 1
    Path("elsewhere.parquet").rename(columns)
    keep = columns.read_bytes()
    Path("data/annotations").mkdir(parents=True, exist_ok=True)
    Path("data/annotations/fix.csv").write_text("file_name,label\nset/01.png,circle\n")
    store = ingest_and_pack()
    columns.write_bytes(keep)  # of the records before the fix
    assert select_columnar(store, "label=circle") is None
    assert "set/01.png" in ImageDataset(store, where="label=circle").keys
    columns.write_bytes(b"PAR1 not a parquet file PAR1")
    assert select_columnar(store, "label=circle") is None
    shutil.rmtree("data/catalog")
    assert select_columnar(store, "label=circle") is None
    assert "set/01.png" in ImageDataset(store, where="label=circle").keys
    store.close()
