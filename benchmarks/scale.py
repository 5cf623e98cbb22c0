"""Every change costs what changed: the everyday path at scale, measured side by side.

    python benchmarks/scale.py --images 100000        # what `make bench-scale` runs

Builds a sharded store of N small images and adds 1% three times, with the originals
kept in data/incoming/ and with them cleared, against the same 1% packed in a fresh,
empty project; `dvc status` with nothing changed against a 1,000-image project; what a
push uploads after adding 1% (realistic ~19 KB images); reads by key from a store grown
by 50 interleaved appends against the single file; validate by default against --full.
Medians of three where the row says so. Results go to benchmarks/results-scale.md.
"""

from __future__ import annotations

import io
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).parent))
from bench import PROJECT, Row, machine, new_project, table  # noqa: E402

ENV = {
    **os.environ,
    "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def tiny(i: int) -> bytes:
    """A unique 8x8 PNG of about 270 bytes: per-file costs, not bytes, are measured."""
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (8, 8), random.Random(i).randbytes(192)).save(out, "PNG")
    return out.getvalue()


def photo(i: int) -> bytes:
    """About 19 KB, like the main benchmark's images: for what a push uploads."""
    from PIL import Image

    rng = random.Random(i)
    base = Image.radial_gradient("L").resize((128, 128)).convert("RGB")
    noise = Image.frombytes("RGB", (128, 128), rng.randbytes(128 * 128 * 3))
    out = io.BytesIO()
    Image.blend(base, noise, 0.45).save(out, "JPEG", quality=90)
    return out.getvalue()


def _write(args: tuple[str, int, str]) -> int:
    folder, i, kind = args
    data = tiny(i) if kind == "tiny" else photo(i)
    path = Path(folder) / f"class_{i % 100:03d}" / f"{i:08d}.{'png' if kind == 'tiny' else 'jpg'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def make(folder: Path, first: int, count: int, kind: str = "tiny") -> int:
    """`count` images in 100 class folders, keys interleaved with every earlier batch."""
    with Pool(2) as pool:
        return sum(
            pool.map(
                _write, [(str(folder), i, kind) for i in range(first, first + count)], chunksize=500
            )
        )


def _write_batch(args: tuple[str, int, int]) -> int:
    folder, first, count = args
    batch = Path(folder) / f"batch_{first:08d}"
    rows = ["path,label"]
    for i in range(first, first + count):
        rel = f"class_{i % 5}/{i:08d}.png"
        (batch / rel).parent.mkdir(parents=True, exist_ok=True)
        (batch / rel).write_bytes(tiny(i))
        rows.append(f"{rel},label_{i % 5}")
    (batch / "labels.csv").write_text("\n".join(rows) + "\n")
    return count


def make_batches(folder: Path, first: int, count: int, size: int = 1000) -> None:
    """`count` images in batch folders of `size`, five class folders and a labels.csv
    each: a labelling tool's exports, kept as they came."""
    with Pool(2) as pool:
        pool.map(
            _write_batch,
            [
                (str(folder), start, min(size, first + count - start))
                for start in range(first, first + count, size)
            ],
        )


def _write_yolo(args: tuple[str, int, int]) -> int:
    folder, first, count = args
    export = Path(folder) / f"yolo_{first:08d}"
    for sub in ("images/train", "labels/train"):
        (export / sub).mkdir(parents=True, exist_ok=True)
    (export / "data.yaml").write_text(
        "path: .\ntrain: images/train\nnames:\n" + "".join(f"  {c}: class_{c}\n" for c in range(5))
    )
    for i in range(first, first + count):
        (export / "images/train" / f"{i:08d}.png").write_bytes(tiny(i))
        box = f"{i % 5} 0.5 0.5 {0.1 + (i % 7) / 10:.2f} 0.3\n"
        (export / "labels/train" / f"{i:08d}.txt").write_text(box)
    return count


def make_yolo(folder: Path, first: int, count: int, size: int = 1000) -> None:
    """`count` images as YOLO exports of `size` images each (Ultralytics' layout:
    images/train, labels/train with a box per image, data.yaml naming five classes), as
    a labelling tool exports them and a user drops them in."""
    with Pool(2) as pool:
        pool.map(
            _write_yolo,
            [
                (str(folder), start, min(size, first + count - start))
                for start in range(first, first + count, size)
            ],
        )


WRITERS = {"plain": make, "tables": make_batches, "yolo": make_yolo}


def sh(cwd: Path, *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True)
    if result.returncode:
        raise click.ClickException(f"{' '.join(args)} failed in {cwd}:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def dvc(cwd: Path, *args: str) -> float:
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def project(root: Path, remote: Path) -> Path:
    """A fresh copy of this project, sharded, as a git repository with a local remote."""
    new_project(root, remote)
    params = root / "params.yaml"
    params.write_text(
        params.read_text()
        .replace("layout: single", "layout: sharded")
        .replace("store: data/images.lmdb", "store: data/images")
    )
    commit(root, "sharded")
    return root


def commit(root: Path, message: str) -> None:
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", message)


def clear(root: Path) -> None:
    incoming = root / "data" / "incoming"
    for child in incoming.iterdir():
        if child.name != ".gitkeep":
            shutil.rmtree(child)


def remote_size(remote: Path) -> int:
    return sum(p.stat().st_size for p in remote.rglob("*") if p.is_file())


def fresh_repro(
    work: Path, count: int, rounds: int = 3, layout: str = "plain"
) -> tuple[float, float]:
    """Median `dvc repro` of `count` images in a fresh project, and its `dvc status`;
    `layout`: how they are written (WRITERS: loose, batches with a label table, YOLO)."""
    times, statuses = [], []
    write = WRITERS[layout]
    for r in range(rounds):
        root = project(work / f"fresh{r}", work / f"remote-fresh{r}")
        write(root / "data" / "incoming", 50_000_000 + r * count, count)
        times.append(dvc(root, "repro"))
        commit(root, "packed")
        statuses.append(dvc(root, "status"))
        shutil.rmtree(root)
    return statistics.median(times), statistics.median(statuses)


def growth(
    work: Path, n: int, keep: bool, rounds: int = 3, layout: str = "plain"
) -> tuple[float, float, float]:
    """Build a sharded store of `n` images, then add 1% `rounds` times; return the build
    time, the median time of an add, and `dvc status` with nothing changed after.
    `layout`: how images are written (WRITERS); but "plain", in exports of 1,000."""
    name = layout if layout != "plain" else "kept" if keep else "cleared"
    root = project(work / name, work / f"remote-{name}")
    write = WRITERS[layout]
    write(root / "data" / "incoming", 0, n)
    build = dvc(root, "repro")
    commit(root, "built")
    if not keep:
        clear(root)
        dvc(root, "repro")
        commit(root, "cleared")
    adds = []
    for r in range(rounds):
        write(root / "data" / "incoming", 10_000_000 + r * n // 100, n // 100)
        adds.append(dvc(root, "repro"))
        commit(root, f"add {r}")
        if not keep:
            clear(root)
            dvc(root, "repro")
            commit(root, f"cleared {r}")
    status = statistics.median(dvc(root, "status") for _ in range(3))
    if keep:  # for the validate rows: the store as it is now
        default = sh(root, sys.executable, "pipeline/validate.py")
        full = sh(root, sys.executable, "pipeline/validate.py", "--full")
        growth.validate = (default, full)  # type: ignore[attr-defined]
    shutil.rmtree(root)
    return build, statistics.median(adds), status


def push_after_one_percent(work: Path, n: int, keep: bool) -> tuple[int, int]:
    """Bytes a push adds to the remote after 1% more images, and those images' bytes."""
    remote = work / ("remote-push-kept" if keep else "remote-push-cleared")
    root = project(work / "push", remote)
    make(root / "data" / "incoming", 0, n, "photo")
    dvc(root, "repro")
    commit(root, "built")
    dvc(root, "push")
    if not keep:
        clear(root)
        dvc(root, "repro")
        commit(root, "cleared")
        dvc(root, "push")
    before = remote_size(remote)
    new = make(root / "data" / "incoming", 20_000_000, n // 100, "photo")
    dvc(root, "repro")
    commit(root, "added 1%")
    dvc(root, "push")
    grew = remote_size(remote) - before
    shutil.rmtree(root)
    return grew, new


def reads(work: Path, n: int, appends: int = 50) -> dict[str, float]:
    """Reads per second by key, random order, of every image: the single file against a
    sharded store grown by `appends` batches that each hold every class (so every
    shard's key range overlaps every other's). Also `key in store`, pack's lookup."""
    import hashlib

    from imageshelf.store import ImageInfo, ImageStore, Record
    from imageshelf.store.writer import Item, rebuild, write_sharded

    data = tiny(0)
    info = ImageInfo(hashlib.sha256(data).hexdigest(), len(data), "png", 8, 8)
    keys = [f"class_{i % 100:03d}/{i:08d}.png" for i in range(n)]

    def items(batch: list[str]):
        return lambda: (Item(Record(k, info, {}), lambda: data, trusted=True) for k in batch)

    rebuild(work / "one.lmdb", items(sorted(keys)))
    step = n // appends
    for a in range(appends):
        write_sharded(work / "shards", items(sorted(keys[a * step : (a + 1) * step])))
    order = keys[:]
    random.Random(1).shuffle(order)
    out: dict[str, float] = {}
    for name, path in (("single", work / "one.lmdb"), ("sharded", work / "shards")):
        store = ImageStore(path)
        len(store)
        start = time.perf_counter()
        for key in order:
            store.get(key)
        out[f"{name} first"] = n / (time.perf_counter() - start)
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            for key in order:
                store.get(key)
            best = max(best, n / (time.perf_counter() - start))
        out[f"{name} steady"] = best
        fresh = ImageStore(path)
        start = time.perf_counter()
        for key in order[: n // 100]:
            _ = key in fresh
        out[f"{name} first lookups"] = (n // 100) / (time.perf_counter() - start)
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            for key in order:
                _ = key in fresh
            best = max(best, n / (time.perf_counter() - start))
        out[f"{name} lookups"] = best
        fresh.close()
        store.close()
    shutil.rmtree(work / "shards")
    (work / "one.lmdb").unlink()
    return out


@click.command()
@click.option(
    "--images",
    "n",
    default=100_000,
    show_default=True,
    help="Images in the big store (tiny ones: per-file costs are what grows).",
)
@click.option(
    "--push-images",
    default=20_000,
    show_default=True,
    help="Images of about 19 KB for the push rows.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=PROJECT / "benchmarks" / "results-scale.md",
    show_default=True,
)
def main(n: int, push_images: int, out: Path) -> None:
    """Measure what adding 1% costs at N images against a fresh project's 1%."""
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="imageshelf-scale-"))
    rows: list[Row] = []
    try:
        click.echo(f"scale: fresh projects of {n // 100} images ...")
        fresh, fresh_status = fresh_repro(work, n // 100)
        for keep in (True, False):
            label = "kept" if keep else "cleared"
            click.echo(f"scale: {n} images, originals {label} ...")
            build, add, status = growth(work, n, keep)
            rows.append(
                Row(
                    "growth",
                    f"dvc repro adding 1% ({n // 100}) to {n:,}, originals {label} (median of 3)",
                    add,
                    f"the same {n // 100} in a fresh project (median of 3)",
                    fresh,
                    1 / 1.5,
                )
            )
            rows.append(
                Row(
                    "growth",
                    f"dvc status, nothing changed, {n:,} packed, originals {label}",
                    status,
                    f"the same with {n // 100} images",
                    fresh_status,
                    1 / 1.5,
                )
            )
            rows.append(
                Row(
                    "growth",
                    f"build {n:,} images (dvc repro), originals {label}",
                    build,
                    "—",
                    build,
                    None,
                )
            )
        default, full = growth.validate  # type: ignore[attr-defined]
        for layout, shipped, fresh_as in (
            ("tables", "a label table per batch of 1,000", "with their table"),
            ("yolo", "as YOLO exports of 1,000 (images/, labels/, data.yaml)", "as one export"),
        ):
            click.echo(f"scale: {n} images kept, {shipped} ...")
            fresh_kind, _ = fresh_repro(work, n // 100, layout=layout)
            _, add, _ = growth(work, n, True, layout=layout)
            rows.append(
                Row(
                    "growth",
                    f"dvc repro adding 1% to {n:,}, originals kept, {shipped} (median of 3)",
                    add,
                    f"the same {n // 100} {fresh_as} in a fresh project (median of 3)",
                    fresh_kind,
                    1 / 1.3,
                )
            )
        rows.append(
            Row(
                "growth",
                f"validate after the adds, {n:,} images (proves what changed)",
                default,
                "validate --full (re-hashes everything)",
                full,
                None,
            )
        )
        for keep in (True, False):
            click.echo(f"scale: push after 1%, {push_images} images of ~19 KB ...")
            grew, new = push_after_one_percent(work, push_images, keep)
            rows.append(
                Row(
                    "growth",
                    f"dvc push after adding 1% ({push_images // 100}) to "
                    f"{push_images:,}, originals {'kept' if keep else 'cleared'}",
                    grew / 1e6,
                    "the new images' bytes",
                    new / 1e6,
                    1.2,
                    "MB",
                )
            )
        click.echo(f"scale: reads by key, {n} keys ...")
        rate = reads(work, n)
        rows.append(
            Row(
                "reads",
                "get by key, every image in random order, store grown by 50 "
                "interleaved appends (steady, best of 3)",
                1e6 / rate["sharded steady"],
                "the single file, same",
                1e6 / rate["single steady"],
                0.8,
                "µs/read",
            )
        )
        rows.append(
            Row(
                "reads",
                "same, first pass (the key -> shard map is built on the way)",
                1e6 / rate["sharded first"],
                "the single file, first pass",
                1e6 / rate["single first"],
                None,
                "µs/read",
            )
        )
        rows.append(
            Row(
                "reads",
                "`key in store`, every key in random order (pack's lookups; steady, best of 3)",
                1e6 / rate["sharded lookups"],
                "the single file, same",
                1e6 / rate["single lookups"],
                0.8,
                "µs/read",
            )
        )
        rows.append(
            Row(
                "reads",
                "`key in store` for the first 1% of keys, in a fresh object (opens the shards)",
                1e6 / rate["sharded first lookups"],
                "the single file, same",
                1e6 / rate["single first lookups"],
                None,
                "µs/read",
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    lines = [
        "# Benchmarks at scale",
        "",
        f"Generated by `make bench-scale` (`python benchmarks/scale.py --images {n}`) in "
        f"{time.time() - started:.0f} s. Ratios compare two figures of this same run; the "
        "goals are issues 13's and 28's. Peak memory of any stage or DVC process: "
        f"{peak:.0f} MiB.",
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
    notes = PROJECT / "benchmarks" / "NOTES-scale.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip(), ""]
    out.write_text("\n".join(lines))
    click.echo("\n".join(table(rows)))
    click.echo(f"scale: wrote {out}")


if __name__ == "__main__":
    main()
