"""The store beside Lance, Hugging Face datasets, litdata and MDS on the same images: write,
size on disk, random reads, a label filter and the first image in a fresh process.

Runs in its own environment (`.venv-peers`, made by `make bench`): these libraries bring
pyarrow, pandas and torch's kin, which the project itself never needs. Prints one JSON
list of rows for bench.py, which puts them in results.md beside its own.

    .venv-peers/bin/python benchmarks/peers.py IMAGES STORE WORK NAIVE_LMDB ours Lance HF litdata
    .venv-mds/bin/python benchmarks/peers.py IMAGES STORE WORK NAIVE_LMDB MDS

MDS (MosaicML streaming) has an environment of its own, `.venv-mds`: it pins numpy<2.2
and brings transformers, torchvision and the AWS, Azure, Google Cloud and Oracle SDKs.

This environment installs the project's code the way a user's pip would (not editable),
so its "first image" rows also show what a fresh process pays there, beside raw py-lmdb
on the naive script's file of the same images.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "benchmarks"))

from limits import _files  # noqa: E402  the same listing of the images as bench.py's

READS = 2_000  # random reads per library (some peers take a millisecond each)
WANT = "class_042"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _median(fn: Callable[[], Any], times: int = 3) -> float:
    return statistics.median(_timed(fn)[0] for _ in range(times))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _fresh(code: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(PROJECT)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def _first(code: str) -> float:
    _fresh(code)
    return statistics.median(_fresh(code) for _ in range(7))


class Peer:
    name = ""
    modules: tuple[str, ...] = ()  # imported before its write is timed: the write is compared

    def __init__(self, work: Path, files: list[tuple[str, Path, str]]) -> None:
        self.work = work
        self.files = files
        self.path = work / f"peer-{self.name.split()[0].lower()}"

    def columns(self) -> dict[str, list[Any]]:
        """key, label and image bytes of every image, in order: what each peer writes."""
        return {
            "key": [rel for rel, _p, _l in self.files],
            "label": [label for _r, _p, label in self.files],
            "image": [p.read_bytes() for _r, p, _l in self.files],
        }

    def write(self) -> None:
        raise NotImplementedError

    def reader(self) -> Callable[[int], bytes]:
        raise NotImplementedError

    def label_filter(self) -> int:
        raise NotImplementedError

    def first_code(self) -> str:
        raise NotImplementedError


class Lance(Peer):
    name = "Lance"
    modules = ("lance", "pyarrow")

    def write(self) -> None:
        import lance
        import pyarrow as pa

        shutil.rmtree(self.path, ignore_errors=True)
        columns = self.columns()
        columns["image"] = pa.array(columns["image"], pa.binary())
        lance.write_dataset(pa.table(columns), str(self.path))

    def reader(self) -> Callable[[int], bytes]:
        import lance

        ds = lance.dataset(str(self.path))
        return lambda i: ds.take([i], columns=["image"]).column(0)[0].as_py()

    def label_filter(self) -> int:
        import lance

        ds = lance.dataset(str(self.path))
        return ds.to_table(columns=["key"], filter=f"label = '{WANT}'").num_rows

    def first_code(self) -> str:
        return (
            f"import lance; lance.dataset({str(self.path)!r})"
            ".take([0], columns=['image']).column(0)[0].as_py()"
        )


class HuggingFace(Peer):
    name = "HF datasets"
    modules = ("datasets",)

    def write(self) -> None:
        from datasets import Dataset

        shutil.rmtree(self.path, ignore_errors=True)
        Dataset.from_dict(self.columns()).save_to_disk(str(self.path))

    def reader(self) -> Callable[[int], bytes]:
        from datasets import load_from_disk

        ds = load_from_disk(str(self.path))
        return lambda i: ds[i]["image"]

    def label_filter(self) -> int:
        from datasets import load_from_disk

        ds = load_from_disk(str(self.path))
        return len(ds.filter(lambda label: label == WANT, input_columns="label"))

    def first_code(self) -> str:
        return (
            f"from datasets import load_from_disk; load_from_disk({str(self.path)!r})[0]['image']"
        )


def _litdata_item(item: tuple[str, str, str]) -> dict[str, Any]:
    rel, path, label = item
    return {"key": rel, "label": label, "image": Path(path).read_bytes()}


class LitData(Peer):
    name = "litdata"
    modules = ("litdata",)

    def write(self) -> None:
        import litdata

        shutil.rmtree(self.path, ignore_errors=True)
        litdata.optimize(
            fn=_litdata_item,
            inputs=[(rel, str(p), label) for rel, p, label in self.files],
            output_dir=str(self.path),
            chunk_bytes="64MB",
            num_workers=os.cpu_count() or 1,
        )

    def reader(self) -> Callable[[int], bytes]:
        import litdata

        ds = litdata.StreamingDataset(str(self.path))
        return lambda i: ds[i]["image"]

    def label_filter(self) -> int:
        import litdata

        ds = litdata.StreamingDataset(str(self.path))
        return sum(1 for i in range(len(ds)) if ds[i]["label"] == WANT)

    def first_code(self) -> str:
        return f"import litdata; litdata.StreamingDataset({str(self.path)!r})[0]['image']"


class MDS(Peer):
    name = "MDS (MosaicML streaming)"
    modules = ("streaming",)

    def write(self) -> None:
        from streaming import MDSWriter

        shutil.rmtree(self.path, ignore_errors=True)
        columns = {"key": "str", "label": "str", "image": "bytes"}
        with MDSWriter(out=str(self.path), columns=columns, size_limit="64mb") as out:
            for rel, path, label in self.files:
                out.write({"key": rel, "label": label, "image": path.read_bytes()})

    def reader(self) -> Callable[[int], bytes]:
        from streaming import LocalDataset

        ds = LocalDataset(str(self.path))
        return lambda i: ds[i]["image"]

    def label_filter(self) -> int:
        from streaming import LocalDataset

        ds = LocalDataset(str(self.path))
        return sum(1 for i in range(len(ds)) if ds[i]["label"] == WANT)

    def first_code(self) -> str:
        return f"from streaming import LocalDataset; LocalDataset({str(self.path)!r})[0]['image']"


PEERS = {kind.name.split()[0]: kind for kind in (Lance, HuggingFace, LitData, MDS)}


def _ours(store: Path, files: list[tuple[str, Path, str]]) -> dict[str, Any]:
    sys.path.insert(0, str(PROJECT))
    from imageshelf.read.query import select
    from imageshelf.store import ImageStore

    opened = ImageStore(store)
    keys = opened.keys()
    prefix = keys[0][: len(keys[0]) - len(files[0][0])] if keys else ""
    order = random.Random(7).sample(range(len(files)), min(READS, len(files)))
    wanted = [prefix + files[i][0] for i in order]
    get = opened.get
    reads = _median(lambda: [get(k) for k in wanted])
    found = sum(1 for _ in select(opened, f"label={WANT}"))
    key = wanted[0]
    return {
        "size": _size(store),
        "reads": reads / len(wanted),
        "filter": _median(lambda: sum(1 for _ in select(opened, f"label={WANT}"))),
        "found": found,
        "first": _first(
            f"from imageshelf import ImageStore; ImageStore({str(store)!r}).get({key!r})"
        ),
    }


def main() -> None:
    images, store, work, naive = (Path(arg) for arg in sys.argv[1:5])
    names = sys.argv[5:]  # "ours" and the peers to measure in this environment
    if unknown := set(names) - {"ours", *PEERS}:
        raise SystemExit(f"unknown peers {sorted(unknown)}: pick from ours, {', '.join(PEERS)}")
    files = _files(images)
    image_bytes = sum(p.stat().st_size for _r, p, _l in files)
    ours: dict[str, Any] | None = None
    if "ours" in names:
        ours = _ours(store, files)
        key = files[0][0].encode()
        ours["raw_first"] = _first(
            f"import lmdb; lmdb.open({str(naive)!r}, subdir=False, readonly=True, lock=False)"
            f".begin().get({key!r})"
        )
    order = random.Random(7).sample(range(len(files)), min(READS, len(files)))
    results: list[dict[str, Any]] = []
    for kind in (PEERS[name] for name in names if name != "ours"):
        peer = kind(work, files)
        try:
            for module in peer.modules:
                importlib.import_module(module)
            write = _median(peer.write, 1)
            read = peer.reader()
            reads = _median(lambda read=read: [read(i) for i in order]) / len(order)
            found = peer.label_filter()
            results.append(
                {
                    "peer": peer.name,
                    "write": write,
                    "size": _size(peer.path),
                    "reads": reads,
                    "filter": _median(peer.label_filter),
                    "found": found,
                    "first": _first(peer.first_code()),
                }
            )
        except Exception as exc:  # noqa: BLE001 - reported in the results, not skipped
            results.append({"peer": peer.name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        shutil.rmtree(peer.path, ignore_errors=True)
    print(json.dumps({"ours": ours, "image_bytes": image_bytes, "peers": results}))


if __name__ == "__main__":
    main()
