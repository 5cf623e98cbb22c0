"""Near-duplicate search at scale (imageshelf/quality/near.py), by hand: N random 64-bit
hashes plus planted pairs (a copy with 1..t bits flipped), all pairs within t found with
numpy (and pure Python with --python-full), then a 1% add: N/100 new hashes, each one
bit from a stored one, against the other 99%, plus the pairs among the new, in both
engines. Then the whole findings (imageshelf/quality/findings.py) of N records' rows with
those pHashes: from nothing, and a 1% add given the state of a run over the other 99%.

    python benchmarks/near_scale.py                      # 1,000,000 hashes, t = 8
    python benchmarks/near_scale.py --images 100000 --python-full

Each step runs in a process of its own, so that its peak memory (ru_maxrss) is its own;
"before" is that process's memory once the hashes are made, so peak minus before is
what the search itself took (for the 1% add of the findings, "before" follows the run
over the 99% that made its state). Prints a table and writes benchmarks/results-near.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from imageshelf.project.params import QualityParams
from imageshelf.quality.chunks import plan, probes
from imageshelf.quality.findings import Row, find
from imageshelf.quality.near import near_pairs, near_pairs_against

HERE = Path(__file__).resolve().parent
STEPS = {
    "full-numpy": "all pairs, numpy",
    "full-python": "all pairs, pure Python",
    "add-numpy": "1% add, numpy",
    "add-python": "1% add, pure Python",
    "find-full": "findings of N rows, from nothing",
    "find-add": "findings, 1% add given the last state",
}


def hashes(n: int, planted: int, t: int, seed: int = 40) -> tuple[list[int], set[tuple[int, int]]]:
    """n random hashes, `planted` of them copies of others with 1..t bits flipped."""
    rng = random.Random(seed)
    values = [rng.getrandbits(64) for _ in range(n)]
    chosen = rng.sample(range(n), 2 * planted)
    truth = set()
    for a, b in zip(chosen[::2], chosen[1::2], strict=True):
        value = values[a]
        for bit in rng.sample(range(64), rng.randint(1, max(1, t))):
            value ^= 1 << bit
        values[b] = value
        truth.add((min(a, b), max(a, b)))
    return values, truth


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows(values: list[int], first: int = 0) -> Iterator[Row]:
    """A record's row per hash, made as find reads them (no list of a million dicts)."""
    props = {"v": 1, "mode": "RGB", "mean": 0.48, "p05": 0.06, "p99": 0.94, "contrast": 0.21}
    props |= {"sharpness": 1.23, "edges": 31.25, "chroma": 17, "colour": 23.5, "entropy": 7.1}
    splits = ("train",) * 8 + ("val", "test")
    for n, value in enumerate(values, first):
        sha = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
        row_props = {**props, "phash": f"{value:016x}"}
        yield Row(f"images/{n:08d}.jpg", sha, splits[n % 10], 640, 480, row_props)


def findings(name: str, values: list[int], t: int) -> dict[str, object]:
    params = QualityParams(near_threshold=t)
    before = peak_mib()
    if name == "find-full":
        wall, cpu = time.perf_counter(), time.process_time()
        found = find(rows(values), params)
    else:
        q = len(values) // 100
        state = find(rows(values[q:], q), params).state
        new = [v ^ (1 << (i % 64)) for i, v in enumerate(values[q : 2 * q])]
        before = peak_mib()
        wall, cpu = time.perf_counter(), time.process_time()
        found = find(itertools.chain(rows(values[q:], q), rows(new, len(values))), params, state)
    state_bytes = len(json.dumps(found.state.to_json()))
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "before": before,
        "peak": peak_mib(),
        "pairs": len(found.state.pairs),
        "recall": None,  # pairs of contents; the rows' making is in the time
        "state_mb": state_bytes / 1e6,
    }


def step(name: str, n: int, t: int, planted: int) -> dict[str, object]:
    """One step, in this process: its seconds (wall and CPU), memory and what it found."""
    values, truth = hashes(n, planted, t)
    if name.startswith("find"):
        return findings(name, values, t)
    engine = "numpy" if name.endswith("numpy") else "python"
    if engine == "numpy":
        import numpy  # noqa: F401  (its own memory is not the search's)
    before = peak_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    if name.startswith("full"):
        pairs = near_pairs(values, t, engine=engine)
        found = {(i, j) for i, j, _ in pairs}
        recall = len(truth & found) / len(truth)
        count = len(pairs)
    else:
        q = n // 100
        old = values[q:]
        new = [v ^ (1 << (i % 64)) for i, v in enumerate(values[q : 2 * q])]
        against = near_pairs_against(new, old, t, engine=engine)
        among = near_pairs(new, t, engine=engine)
        found = {(i, j) for i, j, _ in against}
        recall = sum((i, i) in found for i in range(q)) / q
        count = len(against) + len(among)
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "before": before,
        "peak": peak_mib(),
        "pairs": count,
        "recall": recall,
    }


def run(name: str, n: int, t: int, planted: int) -> dict[str, object]:
    args = [sys.executable, __file__, "--step", name, "--images", str(n), "--t", str(t)]
    done = subprocess.run([*args, "--planted", str(planted)], capture_output=True, text=True)
    if done.returncode:
        raise click.ClickException(done.stderr[-2000:])
    return json.loads(done.stdout)


def chunking(n: int, t: int) -> str:
    """The chunks each engine plans for the full search and the add."""
    shown = []
    for engine in ("numpy", "python"):
        for what, chunks in (
            ("all pairs", plan(t, n, None, engine)),
            ("1% add", plan(t, n - n // 100, n // 100, engine)),
        ):
            widths = "/".join(str(c.width) for c in chunks)
            radii = "/".join(str(c.radius) for c in chunks)
            total = sum(probes(c.width, c.radius) for c in chunks)
            shown.append(f"{what}, {engine}: {widths} bits within {radii} ({total} probes)")
    return "; ".join(shown)


@click.command()
@click.option("--images", "n", default=1_000_000, show_default=True, help="Hashes.")
@click.option("--t", default=8, show_default=True, help="Hamming threshold.")
@click.option("--planted", default=1000, show_default=True, help="Pairs planted within t.")
@click.option("--python-full", is_flag=True, help="Also all pairs in pure Python (slow).")
@click.option("--step", "only", type=click.Choice(list(STEPS)), hidden=True)
def main(n: int, t: int, planted: int, python_full: bool, only: str | None) -> None:
    """Time the near-duplicate search on N random hashes."""
    if only:
        click.echo(json.dumps(step(only, n, t, planted)))
        return
    names = [s for s in STEPS if python_full or s != "full-python"]
    lines = [
        f"# Near pairs within t = {t} among {n:,} random 64-bit hashes ({planted:,} planted)",
        "",
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"{chunking(n, t)}.",
        "",
        "| step | wall s | CPU s | MiB before | MiB peak | pairs | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for name in names:
        r = run(name, n, t, planted)
        recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        lines.append(
            f"| {STEPS[name]} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['before']:.0f} | "
            f"{r['peak']:.0f} | {r['pairs']:,} | {recall} |"
        )
        click.echo(lines[-1])
        if "state_mb" in r:
            notes.append(f"{STEPS[name]}: the state to keep is {r['state_mb']:.1f} MB of JSON.")
    lines += ["", *notes]
    (HERE / "results-near.md").write_text("\n".join(lines) + "\n")
    click.echo("\n".join([*lines[:4], *notes]))


if __name__ == "__main__":
    main()
