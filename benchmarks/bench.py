"""Side-by-side benchmarks: the store against tar, loose files, DVC directories and the
naive LMDB script, all measured in one run on one machine.

    python benchmarks/bench.py --images 20000        # what `make bench` runs
    python benchmarks/bench.py first-image           # its "first image" rows alone, in seconds

Every figure is a wall-clock time of a real command (or a read loop), and every row
compares two figures from this same run. Results go to stdout and, with a description of
the machine, to benchmarks/results.md.
"""

from __future__ import annotations

import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import floor

PROJECT = Path(__file__).resolve().parents[1]
SKELETON = [
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "data/remove.txt",
    "data/reviewed.jsonl",
    "data/incoming/.gitkeep",
    "data/annotations/README.md",
]
LABELS = 100
SIZES = ("MiB", "MB")  # rows measured in bytes: smaller is better, ratio ours/theirs


@dataclass
class Row:
    section: str
    what: str
    ours: float
    against: str
    theirs: float
    goal: float | None  # minimum speedup (theirs / ours); for memory, maximum growth
    unit: str = "s"

    @property
    def speedup(self) -> float:
        if self.unit in SIZES:  # sizes: ours over theirs (memory at 5N over N; upload)
            return self.ours / self.theirs
        return self.theirs / self.ours if self.ours else float("inf")

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        met = self.speedup <= self.goal if self.unit in SIZES else self.speedup >= self.goal
        return "met" if met else "MISSED"


# ------------------------------------------------------------------------ the data


def _image(i: int) -> tuple[str, bytes]:
    from PIL import Image

    rng = random.Random(i)
    w, h = 112 + rng.randrange(32), 112 + rng.randrange(32)
    base = Image.radial_gradient("L").resize((w, h)).convert("RGB")
    noise = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    image = Image.blend(base, noise, 0.45)
    out = io.BytesIO()
    label = f"class_{i % LABELS:03d}"
    if i % 5 == 0:
        image.save(out, "PNG")
        return f"{label}/{i:07d}.png", out.getvalue()
    image.save(out, "JPEG", quality=90)
    return f"{label}/{i:07d}.jpg", out.getvalue()


def make_images(folder: Path, first: int, count: int) -> int:
    """Write `count` unique images (about 20 KB each, 80% JPEG, 20% PNG) in label
    folders, with their labels in a labels.csv; return the bytes written."""
    total = 0
    rows = []
    with Pool(os.cpu_count() or 1) as pool:
        for rel, data in pool.imap(_image, range(first, first + count), chunksize=256):
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            rows.append(f"{rel},{rel.split('/')[0]}\n")
            total += len(data)
    with open(folder / "labels.csv", "a") as csv:
        if csv.tell() == 0:
            csv.write("path,label\n")
        csv.writelines(rows)
    return total


# ----------------------------------------------------------------------- helpers


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }


def run(args: list[str], cwd: Path) -> float:
    """Run a command; return its wall-clock seconds. Fails loudly."""
    if args[0] == "dvc":
        args = [sys.executable, "-m", "dvc", *args[1:]]
    elif args[0] == "pipeline":  # a stage script, as dvc.yaml runs it
        args = [sys.executable, str(PROJECT / "pipeline" / f"{args[1]}.py"), *args[2:]]
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise click.ClickException(f"{' '.join(args)} failed in {cwd}:\n{result.stderr[-2000:]}")
    return elapsed


def median_of(times: int, fn) -> float:
    """The median of several runs: these machines are noisy (shared cores, page cache)."""
    return statistics.median(fn() for _ in range(times))


def evict(paths) -> None:
    """Drop files from the page cache (posix_fadvise works without root)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def new_project(root: Path, remote: Path) -> Path:
    """A fresh copy of this project's pipeline, as a git repository with a local remote."""
    for rel in SKELETON:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / rel, root / rel)
    for code in ("pipeline", "imageshelf"):
        shutil.copytree(PROJECT / code, root / code, ignore=shutil.ignore_patterns("__pycache__"))
    run(["git", "init", "-q"], root)
    run(["dvc", "remote", "modify", "local", "url", str(remote)], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "skeleton"], root)
    return root


def new_plain_repo(root: Path, remote: Path) -> Path:
    root.mkdir(parents=True)
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    run(["dvc", "config", "cache.type", "copy"], root)  # the same as the project's
    run(["dvc", "remote", "add", "-d", "local", str(remote)], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "dvc init"], root)
    return root


def link_tree(source: Path, target: Path) -> None:
    """Hard-link a folder of images into place: no copying, same bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(source), str(target)], check=True)


# -------------------------------------------------------------------- the measures


def naive_pack(folder: Path, out: Path) -> None:
    """What people write by hand: read each file, batches of 1000 putmulti, a value per
    image, no hashing, no checks, no records."""
    import lmdb

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".csv")
    env_ = lmdb.open(str(out), subdir=False, map_size=1 << 40, lock=False)
    for start in range(0, len(files), 1000):
        batch = [
            (str(p.relative_to(folder)).encode(), p.read_bytes())
            for p in files[start : start + 1000]
        ]
        with env_.begin(write=True) as txn:
            txn.cursor().putmulti(batch)
    env_.close()


def tar_once(work: Path, images: Path, durable: bool = False) -> float:
    """tar cf into a fresh file, as a user would: overwriting one can reuse its pages.

    durable: also `sync` the archive (fsync), as pack does with its store.
    """
    target = work / "images.tar"
    target.unlink(missing_ok=True)
    elapsed = run(["tar", "cf", str(target), "-C", str(images), "."], work)
    if durable:
        elapsed += run(["sync", str(target)], work)
    target.unlink()
    return elapsed


def image_files(images: Path) -> list[Path]:
    return [p for p in images.rglob("*") if p.is_file()]


def measure_build(work: Path, images: Path, rows: list[Row]) -> float:
    ours_dir = work / "build"
    (ours_dir / ".dvc").mkdir(parents=True)  # as in a project: ingest keeps its cache there

    def ours() -> float:
        for name in ("images.lmdb", "staged.jsonl"):
            (ours_dir / name).unlink(missing_ok=True)
        shutil.rmtree(ours_dir / ".dvc" / "tmp", ignore_errors=True)  # a first build each time
        return run(
            [
                "pipeline",
                "ingest",
                "--incoming",
                str(images),
                "--manifest",
                "staged.jsonl",
                "--report",
                "ingest.json",
            ],
            ours_dir,
        ) + run(
            [
                "pipeline",
                "pack",
                "--store",
                "images.lmdb",
                "--manifest",
                "staged.jsonl",
                "--incoming",
                str(images),
                "--report",
                "pack.json",
            ],
            ours_dir,
        )

    def naive() -> float:
        (work / "naive.lmdb").unlink(missing_ok=True)
        return run(
            [sys.executable, __file__, "naive-pack", str(images), str(work / "naive.lmdb")], work
        )

    files = image_files(images)

    def cold(fn):
        def measure() -> float:
            evict(files)
            return fn()

        return measure

    tar = median_of(3, lambda: tar_once(work, images))
    tar_durable = median_of(3, lambda: tar_once(work, images, durable=True))
    build = median_of(3, ours)
    naive_time = median_of(3, naive)
    tar_cold = median_of(3, cold(lambda: tar_once(work, images)))
    build_cold = median_of(3, cold(ours))
    rows.append(
        Row(
            "build",
            "ingest + pack, warm cache (hash, check, index every image)",
            build,
            "tar cf",
            tar,
            None,
        )
    )
    rows.append(
        Row(
            "build",
            "ingest + pack, warm cache",
            build,
            "tar cf, then sync the archive (durable, as the store is)",
            tar_durable,
            None,
        )
    )
    rows.append(
        Row("build", "ingest + pack, cold cache", build_cold, "tar cf, cold cache", tar_cold, None)
    )
    rows.append(
        Row(
            "build",
            "ingest + pack, warm cache",
            build,
            "naive LMDB script (read, put; no hash, no checks)",
            naive_time,
            None,
        )
    )
    return build


def measure_repro(work: Path, images: Path, rows: list[Row], floors: floor.Floor) -> Path:
    """The first build: the four stage commands against tar + sync, and `dvc repro`
    against those commands plus what DVC must do anyway (hash the store and copy it
    into its cache: `dvc add` of the same outputs)."""
    repo = new_project(work / "project", work / "remote-store")
    link_tree(images, repo / "data" / "incoming" / "batch")
    # The same four stage commands without DVC, in a twin project: what DVC adds.
    twin = new_project(work / "project-twin", work / "remote-twin")
    link_tree(images, twin / "data" / "incoming" / "batch")
    each = {stage: run(["pipeline", stage], twin) for stage in STAGE_NAMES}
    stages = sum(each.values())
    plain = new_plain_repo(work / "plain-add", work / "remote-plain")
    for name in ("images.lmdb", "catalog"):
        subprocess.run(["cp", "-al", str(twin / "data" / name), str(plain / name)], check=True)
    dvc_add = run(["dvc", "add", "images.lmdb", "catalog"], plain)
    shutil.rmtree(twin)
    shutil.rmtree(plain)
    repro = run(["dvc", "repro"], repo)
    tar = median_of(3, lambda: tar_once(work, images))
    tar_durable = median_of(3, lambda: tar_once(work, images, durable=True))
    split = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in each.items())
    rows.append(
        Row(
            "repro",
            f"the four stage commands, first build ({split})",
            stages,
            "tar cf, then sync the archive",
            tar_durable,
            1 / 3,
        )
    )
    rows.append(Row("repro", "the four stage commands", stages, "tar cf", tar, None))
    rows.append(
        Row(
            "repro",
            f"the floor of the four stage commands ({floors.parts()}; benchmarks/floor.py)",
            floors.four_stages,
            "tar cf, then sync the archive",
            tar_durable,
            None,
        )
    )
    rows.append(
        Row("repro", "the four stage commands", stages, "their floor", floors.four_stages, None)
    )
    rows.append(
        Row(
            "repro",
            "dvc repro, all four stages",
            repro,
            "the four stage commands + `dvc add` of what they wrote (DVC's hash and cache copy)",
            stages + dvc_add,
            1 / 1.5,
        )
    )
    rows.append(
        Row(
            "repro",
            "DVC's own share of repro (repro minus the stage commands)",
            repro - stages,
            "`dvc add` of the same outputs",
            dvc_add,
            None,
        )
    )
    return repo


STAGE_NAMES = ("ingest", "pack", "validate", "stats")


def settle(repo: Path) -> None:
    """The steady state: packed images have left data/incoming/ and that is recorded."""
    shutil.rmtree(repo / "data" / "incoming" / "batch", ignore_errors=True)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "dataset"], repo)


def measure_dvc(work: Path, images: Path, repo: Path, rows: list[Row], label: str) -> None:
    """push, status and a fresh clone's pull: the store against a tracked directory."""
    plain = new_plain_repo(work / f"plain-{label}", work / f"remote-dir-{label}")
    link_tree(images, plain / "data" / "raw")
    add = run(["dvc", "add", "data/raw"], plain)
    run(["git", "add", "-A"], plain)
    run(["git", "commit", "-qm", "raw"], plain)

    results: dict[str, dict[str, float]] = {}
    for name, root in (("store", repo), ("dir", plain)):
        push = run(["dvc", "push"], root)
        status = median_of(3, lambda root=root: run(["dvc", "status"], root))
        results[name] = {"push": push, "status": status}
        for cache_type in ("copy", "hardlink"):
            clone = work / f"clone-{name}-{label}"
            run(["git", "clone", "-q", str(root), str(clone)], work)
            run(["dvc", "config", "--local", "cache.type", cache_type], clone)
            results[name][cache_type] = run(["dvc", "pull"], clone)
            shutil.rmtree(clone)
    n = label
    store, folder = results["store"], results["dir"]
    rows.append(
        Row(
            "dvc",
            f"dvc push ({n} images)",
            store["push"],
            "directory (dvc add data/raw)",
            folder["push"],
            None,
        )
    )
    rows.append(
        Row(
            "dvc",
            f"dvc status, no change ({n})",
            store["status"],
            "directory",
            folder["status"],
            None,
        )
    )
    rows.append(
        Row(
            "dvc",
            f"fresh clone's dvc pull ({n}), cache.type copy (the default)",
            store["copy"],
            "directory, same",
            folder["copy"],
            10.0,
        )
    )
    rows.append(
        Row(
            "dvc",
            f"fresh clone's dvc pull ({n}), cache.type hardlink",
            store["hardlink"],
            "directory, same",
            folder["hardlink"],
            10.0,
        )
    )
    rows.append(Row("dvc", f"dvc add data/raw ({n}), for reference", add, "", add, None))


def measure_incremental(work: Path, repo: Path, count: int, build: float, rows: list[Row]) -> None:
    """Add 1% new images to the full store: time ingest + pack against cp of the store."""
    store = repo / "data" / "images.lmdb"
    incoming = repo / "data" / "incoming"
    new = work / "new"
    make_images(new, 10_000_000, max(1, count // 100))
    link_tree(new, incoming / "new")
    before = store.read_bytes()

    def incremental() -> float:
        store.unlink()
        store.write_bytes(before)
        return run(["pipeline", "ingest"], repo) + run(["pipeline", "pack"], repo)

    add = median_of(2, incremental)
    cp = median_of(3, lambda: run(["cp", str(store), str(work / "store-copy.lmdb")], work))
    rows.append(
        Row(
            "incremental",
            f"add 1% ({max(1, count // 100)} images) to the store",
            add,
            "cp of the store file",
            cp,
            0.5,
        )
    )
    rows.append(
        Row(
            "incremental",
            "add 1% to the store",
            add,
            "full rebuild (ingest + pack of everything)",
            build,
            None,
        )
    )
    (work / "store-copy.lmdb").unlink()


def _use_sharded(repo: Path) -> None:
    params = repo / "params.yaml"
    text = params.read_text().replace("layout: single", "layout: sharded")
    params.write_text(text.replace("store: data/images.lmdb", "store: data/images"))
    run(["git", "commit", "-qam", "sharded layout"], repo)


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure_growth(work: Path, images: Path, count: int, rows: list[Row]) -> None:
    """Add 1% new images to a full store in each layout: time ingest + pack, then what
    the next `dvc push` uploads (the remote's growth)."""
    n_new = max(1, count // 100)
    new = work / "growth-new"
    new_bytes = make_images(new, 20_000_000, n_new)
    uploads, times = {}, {}
    for layout in ("single", "sharded"):
        remote = work / f"remote-growth-{layout}"
        repo = new_project(work / f"growth-{layout}", remote)
        if layout == "sharded":
            _use_sharded(repo)
        link_tree(images, repo / "data" / "incoming" / "batch")
        run(["dvc", "repro"], repo)
        settle(repo)
        run(["dvc", "push"], repo)
        before = _tree_bytes(remote)
        link_tree(new, repo / "data" / "incoming" / "new")
        times[layout] = run(["pipeline", "ingest"], repo) + run(["pipeline", "pack"], repo)
        run(["dvc", "repro"], repo)  # records it; pack finds nothing left to do
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-qm", "1% more"], repo)
        run(["dvc", "push"], repo)
        uploads[layout] = _tree_bytes(remote) - before
        shutil.rmtree(repo)
        shutil.rmtree(remote)
    single_store = work / "project" / "data" / "images.lmdb"
    cp = median_of(3, lambda: run(["cp", str(single_store), str(work / "store-copy.lmdb")], work))
    (work / "store-copy.lmdb").unlink()
    rows.append(
        Row(
            "growth",
            f"add 1% ({n_new} images) to the sharded store",
            times["sharded"],
            "cp of the single store file",
            cp,
            0.5,
        )
    )
    rows.append(
        Row(
            "growth",
            f"dvc push after adding 1% ({n_new} images), sharded layout",
            uploads["sharded"] / 1e6,
            "the new images' bytes",
            new_bytes / 1e6,
            1.2,
            unit="MB",
        )
    )
    rows.append(
        Row(
            "growth",
            "dvc push after adding 1%, single file (for comparison)",
            uploads["single"] / 1e6,
            "the new images' bytes",
            new_bytes / 1e6,
            None,
            unit="MB",
        )
    )


def _read_loop(kind: str, target: str, keys_file: str) -> float:
    """Read every record once, in a fixed random order; return seconds."""
    keys = json.loads(Path(keys_file).read_text())
    if kind == "files":
        start = time.perf_counter()
        for key in keys:
            with open(os.path.join(target, key), "rb") as fh:
                fh.read()
        return time.perf_counter() - start
    if kind == "store":
        sys.path.insert(0, str(PROJECT))
        from imageshelf import ImageStore

        store = ImageStore(target)
        get = store.get
        start = time.perf_counter()
        for key in keys:
            get(key)
        return time.perf_counter() - start
    import lmdb

    env_ = lmdb.open(target, subdir=False, readonly=True, lock=False)
    start = time.perf_counter()
    with env_.begin() as txn:
        for key in keys:
            txn.get(key.encode())
    return time.perf_counter() - start


def read_once(kind: str, target: Path, keys_file: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "read-loop", kind, str(target), str(keys_file)],
        capture_output=True,
        text=True,
        env=env(),
    )
    if out.returncode:
        raise click.ClickException(out.stderr[-2000:])
    return float(out.stdout)


def measure_reads(work: Path, images: Path, store: Path, prefix: str, rows: list[Row]) -> str:
    """Every image once, in the same random order, from the store and from the files."""
    keys = sorted(
        str(p.relative_to(images)) for p in images.rglob("*") if p.is_file() and p.suffix != ".csv"
    )
    random.Random(7).shuffle(keys)
    keys_files = {"files": work / "keys-files.json", "store": work / "keys-store.json"}
    keys_files["files"].write_text(json.dumps(keys))
    keys_files["store"].write_text(json.dumps([prefix + k for k in keys]))
    keys_files["raw"] = keys_files["files"]
    files = [images / k for k in keys]
    naive = work / "naive.lmdb"  # the naive script's file of the same images

    warm = {}
    for kind, target in (("store", store), ("files", images), ("raw", naive)):
        read_once(kind, target, keys_files[kind])  # warm the page cache
        warm[kind] = median_of(5, lambda k=kind, t=target: read_once(k, t, keys_files[k]))
    cold = {}
    for kind, target, paths in (("store", store, [store]), ("files", images, files)):

        def cold_read(k=kind, t=target, p=paths) -> float:
            evict(p)
            return read_once(k, t, keys_files[k])

        cold[kind] = median_of(3, cold_read)
    n = len(keys)
    rows.append(
        Row(
            "reads",
            f"random reads of all {n} images, warm",
            warm["store"],
            "open().read() of loose files",
            warm["files"],
            3.0,
        )
    )
    rows.append(
        Row(
            "reads",
            f"random reads of all {n} images, cold",
            cold["store"],
            "open().read() of loose files",
            cold["files"],
            2.0,
        )
    )
    rows.append(
        Row(
            "reads",
            "ImageStore.get, warm (our overhead)",
            warm["store"],
            "raw py-lmdb txn.get on the naive script's file",
            warm["raw"],
            1 / 1.2,
        )
    )
    return "posix_fadvise(POSIX_FADV_DONTNEED) on every file read (no root needed)"


def measure_memory(work: Path, images: Path, label: str) -> float:
    """Peak RSS (MiB) of one pack from scratch, in a process of its own."""
    folder = work / f"mem-{label}"
    folder.mkdir()
    run(
        [
            "pipeline",
            "ingest",
            "--incoming",
            str(images),
            "--manifest",
            "staged.jsonl",
            "--report",
            "ingest.json",
        ],
        folder,
    )
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            sys.executable,
            str(PROJECT / "pipeline" / "pack.py"),
            "--store",
            "images.lmdb",
            "--manifest",
            "staged.jsonl",
            "--incoming",
            str(images),
            "--report",
            "pack.json",
        ],
        cwd=folder,
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.rmtree(folder)
    return int(out.stdout.split()[-1]) / 1024  # the last line; pack prints its summary first


PEERS_PYTHON = PROJECT / ".venv-peers" / "bin" / "python"
MDS_PYTHON = PROJECT / ".venv-mds" / "bin" / "python"


def run_peers(python: Path, names: list[str], images: Path, store: Path, work: Path) -> dict:
    """benchmarks/peers.py in the environment of `python`, measuring `names`."""
    if not python.exists():
        raise click.ClickException(f"{python} is missing: `make bench` makes it")
    out = subprocess.run(
        [
            str(python),
            str(PROJECT / "benchmarks" / "peers.py"),
            *(str(path) for path in (images, store, work, work / "naive.lmdb")),
            *names,
        ],
        capture_output=True,
        text=True,
        env={**env(), "PYTHONPATH": str(PROJECT)},
    )
    if out.returncode:
        raise click.ClickException(f"benchmarks/peers.py failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_other_peers(
    work: Path, images: Path, store: Path, build: float, add, floors: floor.Floor
) -> None:
    """Lance, Hugging Face datasets and litdata, run by benchmarks/peers.py in their own
    environment (.venv-peers), and MDS in another (.venv-mds): `make bench` makes both."""
    found = run_peers(PEERS_PYTHON, ["ours", "Lance", "HF", "litdata"], images, store, work)
    found["peers"] += run_peers(MDS_PYTHON, ["MDS"], images, store, work)["peers"]
    ours = found["ours"]
    add(
        "peers",
        "first image in a fresh process, library installed without site tweaks (.venv-peers)",
        ours["first"] * 1e3,
        "raw py-lmdb, the same",
        ours["raw_first"] * 1e3,
        None,
        unit="ms",
    )
    for peer in found["peers"]:
        name = peer["peer"]
        if "error" in peer:
            add("peers", f"{name}: not measured", 0.0, peer["error"], 0.0, None)
            continue
        if peer["found"] != ours["found"]:
            raise click.ClickException(f"{name} found {peer['found']} images, ours {ours['found']}")
        add(
            "peers",
            "ingest + pack (check, hash, index every image)",
            build,
            f"{name}: write",
            peer["write"],
            1 / 1.5 if name.startswith("MDS") else None,  # the peer that writes fastest
        )
        if name.startswith("MDS"):
            add(
                "peers",
                "the floor of ingest + pack (two starts, a read + hash on two cores, "
                "a read + LMDB write + sync; benchmarks/floor.py)",
                floors.ingest_and_pack,
                f"{name}: write",
                peer["write"],
                None,
            )
        add("peers", "store size", ours["size"] / 1e6, name, peer["size"] / 1e6, None, unit="MB")
        add(
            "peers",
            "random read, one image by key",
            ours["reads"] * 1e6,
            f"{name}: by row",
            peer["reads"] * 1e6,
            None,
            unit="µs",
        )
        add(
            "peers",
            "filter label=class_042",
            ours["filter"] * 1e3,
            name,
            peer["filter"] * 1e3,
            None,
            unit="ms",
        )
        add(
            "peers",
            "first image in a fresh process",
            ours["first"] * 1e3,
            name,
            peer["first"] * 1e3,
            None,
            unit="ms",
        )


# ------------------------------------------------------------------------ report


def machine() -> list[str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import dvc.version
    import lmdb
    import PIL

    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {memory:.0f} GiB",
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"- dvc {dvc.version.__version__}, py-lmdb {lmdb.__version__} (LMDB "
        f"{'.'.join(map(str, lmdb.version()))}), Pillow {PIL.__version__}",
    ]


def run_and_report(
    prefix: str, measure: Callable[[Path], list[Row]], out: Path, heading: list[str]
) -> None:
    """Measure in a temporary folder (removed after), then write `out`: the heading, the
    machine, the table; and print the table."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        rows = measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.write_text("\n".join([*heading, "", *machine(), "", *table(rows), ""]))
    click.echo("\n".join(table(rows)))


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| measure | ours | against | theirs | ratio | goal | |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for row in rows:
        sign = "≤" if row.unit in SIZES else "≥"
        goal = f"{sign} {row.goal:.3g}x" if row.goal is not None else ""
        against = row.against or "—"
        lines.append(
            f"| {row.what} | {row.ours:.2f} {row.unit} | {against} | "
            f"{row.theirs:.2f} {row.unit} | {row.speedup:.2f}x | {goal} | "
            f"{row.verdict} |"
        )
    return lines


@click.group(invoke_without_command=True)
@click.option(
    "--images",
    "count",
    default=20_000,
    show_default=True,
    help="How many images to generate (about 20 KB each).",
)
@click.option(
    "--scale",
    default=5,
    show_default=True,
    help="Also run the DVC and memory measures at this multiple of --images (0 to skip).",
)
@click.option(
    "--filter-records",
    default=1_000_000,
    show_default=True,
    help="Also time a filter over this many records (tiny images).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to build (default: a temporary folder, removed afterwards).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=PROJECT / "benchmarks" / "results.md",
    show_default=True,
)
@click.pass_context
def cli(
    ctx: click.Context,
    count: int,
    scale: int,
    filter_records: int,
    workdir: Path | None,
    out: Path,
) -> None:
    """Measure the store against tar, loose files, DVC directories and the naive script."""
    if ctx.invoked_subcommand is not None:
        return
    work = workdir or Path(tempfile.mkdtemp(prefix="image-store-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    started = time.time()
    try:
        images = work / "images"
        click.echo(f"bench: generating {count} images in {images} ...")
        size = make_images(images, 0, count)
        click.echo(f"bench: {size / 1e6:.0f} MB, {size / count / 1e3:.1f} KB average")
        build = measure_build(work, images, rows)
        import floor  # here, not at the top: the timed helper processes stay light
        import limits

        floors = floor.measure(images, work, env())

        def add(*args, **kwargs) -> None:
            rows.append(Row(*args, **kwargs))

        first_key = sorted(str(p.relative_to(images)) for p in images.rglob("*.jpg"))[0]
        limits.measure_first_record(
            work / "build" / "images.lmdb", work / "naive.lmdb", first_key, add
        )
        limits.measure_peers(work, images, work / "build" / "images.lmdb", build, add)
        measure_other_peers(work, images, work / "build" / "images.lmdb", build, add, floors)
        limits.measure_sizes(work, add)
        for records in (count, filter_records):
            limits.measure_filters(work, records, add)
        import columnar  # SQL and broad filters over the columnar catalog (issue 42)

        columnar.measure(work / "columnar", count, 5, add)
        repo = measure_repro(work, images, rows, floors)
        settle(repo)
        measure_dvc(work, images, repo, rows, str(count))
        cold_note = measure_reads(work, images, repo / "data" / "images.lmdb", "batch/", rows)
        measure_incremental(work, repo, count, build, rows)
        measure_growth(work, images, count, rows)
        memory = [measure_memory(work, images, str(count))]
        if scale:
            big = work / "images-big"
            link_tree(images, big)
            labels = big / "labels.csv"  # appended to below: must not be the linked original
            rows_so_far = labels.read_bytes()
            labels.unlink()
            labels.write_bytes(rows_so_far)
            make_images(big, count, count * (scale - 1))
            memory.append(measure_memory(work, big, str(count * scale)))
            big_repo = new_project(work / "project-big", work / "remote-big")
            link_tree(big, big_repo / "data" / "incoming" / "batch")
            run(["dvc", "repro"], big_repo)
            settle(big_repo)
            measure_dvc(work, big, big_repo, rows, str(count * scale))
            rows.append(
                Row(
                    "memory",
                    f"peak RSS of pack, {count * scale} images",
                    memory[1],
                    f"pack of {count} images",
                    memory[0],
                    1.25,
                    unit="MiB",
                )
            )
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    lines = table(rows)
    click.echo("\n".join(lines))
    report = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python benchmarks/bench.py --images {count} "
        f"--scale {scale}`) in {time.time() - started:.0f} s. Every row compares two "
        "figures measured in this same run; speedup above 1 means ours is faster.",
        "",
        "## Machine",
        "",
        *machine(),
        f"- data: {count} generated images, {size / count / 1e3:.1f} KB average "
        "(80% JPEG, 20% PNG), 100 label folders, labels in a labels.csv",
        f"- cold reads: {cold_note}",
        "",
        "## Results",
        "",
        *lines,
        "",
    ]
    notes = PROJECT / "benchmarks" / "NOTES.md"
    if notes.exists():
        report += [notes.read_text().strip(), ""]
    out.write_text("\n".join(report))
    click.echo(f"bench: wrote {out}")


@cli.command("naive-pack", hidden=True)
@click.argument("folder", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
def naive_pack_command(folder: Path, out: Path) -> None:
    naive_pack(folder, out)


@cli.command("first-image", hidden=True)
@click.option("--images", "count", default=2_000, show_default=True)
def first_image_command(count: int) -> None:
    """Only the rows "first image in a fresh process" of `make bench`, in seconds: a
    store and the naive script's file of `count` images of about 19 KB, then the same
    interleaved fresh processes as the full run (limits.measure_first_record)."""
    import limits

    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="image-store-first-"))
    try:
        source = limits._items(count, 19_000)
        limits.rebuild(work / "images.lmdb", source)
        limits._naive_lmdb(
            work / "naive.lmdb", ((i.record.key.encode(), i.read()) for i in source())
        )
        key = next(source()).record.key
        limits.measure_first_record(
            work / "images.lmdb",
            work / "naive.lmdb",
            key,
            lambda *a, **k: rows.append(Row(*a, **k)),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    click.echo("\n".join(table(rows)))


@cli.command("read-loop", hidden=True)
@click.argument("kind")
@click.argument("target")
@click.argument("keys_file")
def read_loop_command(kind: str, target: str, keys_file: str) -> None:
    click.echo(f"{_read_loop(kind, target, keys_file):.6f}")


if __name__ == "__main__":
    cli()
