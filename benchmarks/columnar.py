"""Questions over every record (issue 42): the catalog's columnar form, asked through
DuckDB, beside the same question answered record by record and beside a raw py-lmdb
scan of the same metadata.

    python benchmarks/columnar.py --records 1000000 --objects 10   # by hand: the 1M goals

`make bench` runs it at 20,000 records (bench.py). Records are made directly (a store of
tiny images: the questions never read image bytes), with five labels (one label: 20% of
the records), splits of 80/10/10 and `--objects` boxes each in 20 categories.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import orjson

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from imageshelf.read.columnar import select_columnar  # noqa: E402
from imageshelf.read.dataset import ImageDataset  # noqa: E402
from imageshelf.read.query import select  # noqa: E402
from imageshelf.sql import Version, answer  # noqa: E402
from imageshelf.store import ImageInfo, ImageStore, Record  # noqa: E402
from imageshelf.store.build import Item  # noqa: E402
from imageshelf.store.writer import rebuild  # noqa: E402
from imageshelf.versions.catalog import CatalogFolder, catalog_parts, write_catalog  # noqa: E402

AddRow = Callable[..., None]
SPLITS = ("train",) * 8 + ("val", "test")
BOXES_QUERY = (
    "SELECT split, o.category AS category, count(*) AS boxes "
    "FROM images, UNNEST(objects) AS t(o) GROUP BY ALL"
)


def _source(count: int, objects: int) -> Callable[[], Iterator[Item]]:
    def data(i: int) -> bytes:
        return i.to_bytes(8, "big")

    def source() -> Iterator[Item]:
        rng = random.Random(42)
        for i in range(count):
            boxes = [
                {
                    "bbox": [rng.randint(0, 500) + 0.5, 10.0, 32.0, 48.0],
                    "category": f"c{j % 20:02d}",
                }
                for j in range(rng.randint(0, 2 * objects) if objects else 0)
            ]
            info = ImageInfo(hashlib.sha256(data(i)).hexdigest(), 8, "jpeg", 640, 480)
            meta = {"label": f"class_{i % 5}", "objects": boxes, "score": rng.random()}
            record = Record(f"img/{i:07d}.jpg", info, meta, SPLITS[i % 10])
            yield Item(record, lambda i=i: data(i), trusted=True)

    return source


def _time(fn: Callable[[], object], times: int = 5) -> float:
    fn()  # warm: the connection made, the files in the page cache
    runs = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


_ENVS: dict[Path, Any] = {}


def _opened(path: Path) -> Any:
    import lmdb

    if path not in _ENVS:
        _ENVS[path] = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    return _ENVS[path]


def _raw_scan(path: Path, field: str, want: str) -> Callable[[], list[bytes]]:
    """What people write by hand over an LMDB file of their own: a cursor and a compare,
    of the value itself (a file of one field) or of the field orjson finds in it."""
    env = _opened(path)
    wanted = want.encode()

    def alone() -> list[bytes]:
        with env.begin() as txn:
            return [k for k, v in txn.cursor().iternext() if v == wanted]

    def parsed() -> list[bytes]:
        with env.begin() as txn:
            found = []
            for key, raw in txn.cursor().iternext():
                obj = orjson.loads(raw)
                value = obj.get(field) if field == "split" else obj["meta"].get(field)
                if value == want:
                    found.append(key)
            return found

    return alone if path.name.endswith(f"-{field}.lmdb") else parsed


def _naive(path: Path, store: ImageStore, field: str | None = None) -> None:
    """An LMDB file of key -> the record's JSON, or with `field` key -> that field's text
    alone (the fastest scan there is), written as limits.py writes its own."""
    from limits import _naive_lmdb

    def value(raw: bytes) -> bytes:
        if field is None:
            return raw
        obj = orjson.loads(raw)
        return str(obj["split"] if field == "split" else obj["meta"][field]).encode()

    _naive_lmdb(path, ((key.encode(), value(raw)) for key, raw in store.raw_records()))


def measure(work: Path, count: int, objects: int, add: AddRow) -> None:
    work.mkdir(parents=True, exist_ok=True)
    store_path = work / f"columnar-{count}.lmdb"
    catalog = work / "catalog"
    if not store_path.exists():  # the same records each time (seeded): built once
        click.echo(f"columnar: {count:,} records, about {objects} boxes each ...")
        rebuild(store_path, _source(count, objects))
        shutil.rmtree(catalog, ignore_errors=True)
    store = ImageStore(store_path)
    start = time.perf_counter()
    if not catalog.exists():
        write_catalog(store, catalog)
    written = time.perf_counter() - start
    size = sum(p.stat().st_size for p in catalog.glob("*.parquet"))
    click.echo(f"columnar: catalog written in {written:.1f} s; Parquet {size / 1e6:.1f} MB")
    naive = work / f"columnar-{count}-naive.lmdb"
    if not naive.exists():
        _naive(naive, store)
    for where, field, want, share in (
        ("label=class_1", "label", "class_1", "20%"),
        ("split=train", "split", "train", "80%"),
    ):
        alone = work / f"columnar-{count}-{field}.lmdb"
        if not alone.exists():
            _naive(alone, store, field)
        scans = (_raw_scan(alone, field, want), _raw_scan(naive, field, want))
        _filter_rows(store, catalog, scans, where, share, add)
    _boxes_rows(store, catalog, count, add)
    store.close()


def _filter_rows(
    store: ImageStore,
    catalog: Path,
    scans: tuple[Callable[[], list[bytes]], Callable[[], list[bytes]]],
    where: str,
    share: str,
    add: AddRow,
) -> None:
    count = len(store)

    def columnar() -> int:
        return len(ImageDataset(store, where=where, catalog=catalog))

    def records() -> int:
        return sum(1 for _ in select(store, where))

    assert select_columnar(store, where, catalog) is not None, "the columns did not answer"
    alone, scan = scans
    assert columnar() == records() == len(scan()) == len(alone())
    ours = _time(columnar) * 1e3
    what = f"filter {where} ({share} of {count:,} records): ImageDataset(where=), columnar"
    add(
        "columnar",
        what,
        ours,
        "raw py-lmdb scan of a database of that field alone (key -> value)",
        _time(alone) * 1e3,
        1.0,
        unit="ms",
    )
    add(
        "columnar",
        what,
        ours,
        "raw py-lmdb scan of the same records (orjson)",
        _time(scan) * 1e3,
        None,
        unit="ms",
    )
    add(
        "columnar",
        what,
        ours,
        "the same through the records (select)",
        _time(records, 3) * 1e3,
        None,
        unit="ms",
    )
    if count >= 1_000_000 and share == "20%":
        add("columnar", what, ours, "the goal: 100 ms", 100.0, 1.0, unit="ms")


def _boxes_rows(store: ImageStore, catalog: Path, count: int, add: AddRow) -> None:
    folder = CatalogFolder.local(catalog)
    digests = {name: part.content_digest for name, part in catalog_parts(store)}

    def sql() -> dict[tuple[str, str], int]:
        _columns, rows = answer(BOXES_QUERY, [Version("images", folder, catalog, digests)])
        return {(split, category): n for split, category, n in rows}

    def records() -> Counter[tuple[str, str]]:
        return Counter(
            (r.effective_split, box["category"])
            for r in store.records()
            for box in r.metadata["objects"]
        )

    boxes = sum(records().values())
    assert sql() == records()
    ours = _time(sql) * 1e3
    what = f"boxes per category per split, {count:,} records, {boxes:,} boxes: imageshelf sql"
    add(
        "columnar",
        what,
        ours,
        "the same through the records, one by one",
        _time(records, 1) * 1e3,
        None,
        unit="ms",
    )
    if count >= 1_000_000:
        add("columnar", what, ours, "the goal: 1 s", 1000.0, 1.0, unit="ms")


@click.command()
@click.option("--records", "count", default=20_000, show_default=True)
@click.option("--objects", default=5, show_default=True, help="Boxes per image, on average.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the rows as a table here (results-columnar.md, say).",
)
def main(count: int, objects: int, workdir: Path, out: Path | None) -> None:
    """Measure at COUNT records; print each row, and with --out write them as a table."""
    sys.path.insert(0, str(PROJECT / "benchmarks"))
    from bench import Row, machine, table

    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []

    def add(*args: Any, **kwargs: Any) -> None:
        rows.append(Row(*args, **kwargs))
        row = rows[-1]
        click.echo(
            f"{row.what}: {row.ours:.1f} | {row.against}: {row.theirs:.1f} | {row.speedup:.2f}x"
        )

    started = time.time()
    measure(workdir, count, objects, add)
    if out is not None:
        report = [
            "# Questions over every record: the columnar catalog",
            "",
            f"Generated by `python benchmarks/columnar.py --records {count} --objects {objects}` "
            f"in {time.time() - started:.0f} s (by hand; `make bench` runs it at 20,000 records).",
            "",
            "## Machine",
            "",
            *machine(),
            "",
            "## Results",
            "",
            *table(rows),
            "",
        ]
        out.write_text("\n".join(report), encoding="utf-8")


if __name__ == "__main__":
    main()
