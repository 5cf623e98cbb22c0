"""The quality audit at a million records, by hand (issue 40's scale goal: near-duplicate
groups of 1,000,000 images within 60 s). A section of results-scale.md (NOTES-scale.md
holds the last run's figures).

    python benchmarks/quality_scale.py --images 1000000    # about 7 minutes, 1 GB of disk

Builds a project whose single-file store holds N records, written directly with the
store's writer (no image is decoded: the audit reads records only): tiny image bytes,
distinct but for planted exact copies; `props` as images/properties.py writes them, with
random 64-bit pHashes and N/1000 planted near pairs (a copy of a pHash with 1 to 8 bits
flipped), measures drawn around a photograph's, and 1% each of dark, light, blurry,
flat, grayscale, odd-sized and odd-shaped images; splits train/val/test 80/10/10. Then,
each a fresh process timed by /usr/bin/time (wall, CPU, peak memory; the best of
--repeat):

1. `imageshelf audit --json > /dev/null` with no audit state in the cache (cold);
2. the same again, nothing changed (the state: every pair is kept, nothing searched);
3. after adding 1% (N/100 records, a tenth of them near a stored one): the state makes
   it search only the new pHashes.

Then, in this process, where the time of steps 1 and 3 goes: reading and parsing the
records, judging each one (the tally), the near search, the rest of the findings
(groups, leaks), the state's JSON (load and save) and the report's.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from imageshelf.project.params import QualityParams
from imageshelf.quality import findings
from imageshelf.quality.audit import _state_name
from imageshelf.quality.findings import NearState, find, rows_from_store
from imageshelf.state import cache
from imageshelf.store import ImageStore
from imageshelf.store.build import Item
from imageshelf.store.values import ImageInfo, Record
from imageshelf.store.writer import rebuild

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
STORE = Path("data") / "images.lmdb"
# A PNG signature and header of 8x8 RGB: each image is these bytes and its number, so
# that every content is distinct (the audit never decodes them).
PNG_HEAD = bytes.fromhex("89504e470d0a1a0a0000000d494844520000000800000008080200000046ee3bda")
ISSUE_SHARE = 0.01  # of each planted issue type
SPLITS = ("train",) * 8 + ("val", "test")


def _unit(digest: bytes, i: int) -> float:
    """The i-th of 16 numbers in 0..1 a content's digest gives."""
    return int.from_bytes(digest[2 * i : 2 * i + 2], "big") / 65535


def measures(content: int, issue: str) -> dict[str, object]:
    """props' measures of a content (without its pHash and dHash), drawn from its number:
    a photograph's, or one of the issue type planted on it."""
    d = hashlib.blake2b(content.to_bytes(8, "big"), digest_size=32).digest()
    mean = 0.3 + 0.4 * _unit(d, 0)
    contrast = 0.12 + 0.16 * _unit(d, 1)
    sharpness, edges = 0.5 + 2.5 * _unit(d, 2), 28 + 60 * _unit(d, 3)
    chroma, mode = 8 + int(200 * _unit(d, 4)), "RGB"
    if issue == "dark":
        mean, contrast = 0.05 + 0.08 * _unit(d, 5), 0.02 + 0.03 * _unit(d, 6)
    elif issue == "light":
        mean, contrast = 0.85 + 0.08 * _unit(d, 5), 0.02 + 0.02 * _unit(d, 6)
    elif issue == "blurry":
        sharpness, edges = 0.1 + 0.25 * _unit(d, 5), 5 + 18 * _unit(d, 6)
    elif issue == "flat":
        contrast = 0.002 + 0.01 * _unit(d, 5)
    elif issue == "grayscale":
        chroma, mode = 0, "L"
    p05 = max(0.0, mean - 1.6 * contrast)
    p99 = min(1.0, mean + 2.3 * contrast)
    values = {"mean": mean, "p05": p05, "p99": p99, "contrast": contrast}
    values |= {"sharpness": sharpness, "edges": edges, "colour": 60 * _unit(d, 7)}
    values |= {"entropy": 6.5 + 1.4 * _unit(d, 8)}
    return {
        "v": 1,
        "mode": mode,
        "chroma": chroma,
        **{name: round(value, 4) for name, value in values.items()},
    }


class Planted:
    """N images: each one's content number, pHash and planted issue type."""

    ISSUES = ("dark", "light", "blurry", "flat", "grayscale", "odd_size", "odd_aspect")

    def __init__(self, n: int, seed: int, first: int = 0, near_to: list[int] | None = None):
        rng = random.Random(seed)
        self.first = first
        self.content = list(range(first, first + n))
        self.phash = [rng.getrandbits(64) for _ in range(n)]
        self.issue = [""] * n
        picked = rng.sample(range(n), int(n * ISSUE_SHARE) * len(self.ISSUES))
        for at, i in enumerate(picked):
            self.issue[i] = self.ISSUES[at % len(self.ISSUES)]
        clean = [i for i in range(n) if not self.issue[i]]
        # Near pairs among these, and (an add) near a stored pHash; a few exact copies.
        pairs = rng.sample(clean, 2 * (n // 1000))
        for a, b in zip(pairs[::2], pairs[1::2], strict=True):
            self.phash[b] = flip(self.phash[a], rng)
        for i in rng.sample(clean, n // 10) if near_to else ():
            self.phash[i] = flip(rng.choice(near_to), rng)
        for a, b in zip(*[iter(rng.sample(clean, 2 * (n // 2000)))] * 2, strict=True):
            self.content[b], self.phash[b] = self.content[a], self.phash[a]

    def items(self, prefix: str) -> Callable[[], Iterator[Item]]:
        """The writer's source: an Item per image, in key order, the same at each call."""

        def source() -> Iterator[Item]:
            for i, (content, value, issue) in enumerate(
                zip(self.content, self.phash, self.issue, strict=True)
            ):
                number = self.first + i
                data = PNG_HEAD + content.to_bytes(8, "big")
                width, height = {"odd_size": (16, 16), "odd_aspect": (1000, 100)}.get(
                    issue, (640, 480)
                )
                info = ImageInfo(hashlib.sha256(data).hexdigest(), len(data), "PNG", width, height)
                props = {**measures(content, issue), "phash": f"{value:016x}"}
                props["dhash"] = f"{value ^ 0x5555555555555555:016x}"
                split = SPLITS[hashlib.blake2b(str(number).encode()).digest()[0] % 10]
                record = Record(f"{prefix}/{number:08d}.png", info, {}, split, (), {}, props)
                yield Item(record, lambda data=data: data)

        return source


def flip(value: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), rng.randint(1, 8)):
        value ^= 1 << bit
    return value


def make_project(folder: Path, n: int) -> None:
    """A project whose store holds n planted records."""
    (folder / "data").mkdir(parents=True)
    (folder / ".dvc").mkdir()  # the audit keeps its state in the cache there
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(PROJECT / name, folder / name)
    planted = Planted(n, seed=40)
    rebuild(folder / STORE, planted.items("a"))


def add_one_percent(folder: Path, n: int) -> int:
    """N/100 new records (keys after the stored ones), a tenth of them near one."""
    stored = Planted(n, seed=40).phash
    added = Planted(n // 100, seed=41, first=n, near_to=stored)
    rebuild(folder / STORE, added.items("b"))
    return n // 100


# ------------------------------------------------------------------ measuring

TIME_FIELDS = {
    "wall": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)",
    "user": r"User time \(seconds\): (\S+)",
    "sys": r"System time \(seconds\): (\S+)",
    "rss": r"Maximum resident set size \(kbytes\): (\d+)",
}


def seconds_of(clock: str) -> float:
    total = 0.0
    for part in clock.split(":"):
        total = total * 60 + float(part)
    return total


def audit_process(folder: Path) -> dict[str, float]:
    """`imageshelf audit --json > /dev/null` in `folder`, under /usr/bin/time -v: wall
    and CPU seconds, peak MiB."""
    script = Path(sys.executable).parent / "imageshelf"
    with open("/dev/null", "w") as null:
        done = subprocess.run(
            ["/usr/bin/time", "-v", str(script), "audit", "--json"],
            cwd=folder,
            stdout=null,
            stderr=subprocess.PIPE,
            text=True,
        )
    if done.returncode:
        raise click.ClickException(done.stderr[-2000:])
    got = {name: re.search(rx, done.stderr) for name, rx in TIME_FIELDS.items()}
    if not all(got.values()):
        raise click.ClickException(f"/usr/bin/time -v said:\n{done.stderr[-2000:]}")
    value = {name: m.group(1) for name, m in got.items() if m}
    return {
        "wall": seconds_of(value["wall"]),
        "cpu": float(value["user"]) + float(value["sys"]),
        "mib": int(value["rss"]) / 1024,
    }


def phases(folder: Path) -> dict[str, float]:
    """Where an audit's time goes, each part timed alone in this process (in `folder`,
    with the state the cache holds, which is left as it was)."""
    params = QualityParams()
    store = ImageStore(folder / STORE)
    out: dict[str, float] = {}

    def clock(name: str, work: Callable[[], object]) -> object:
        start = time.process_time()  # CPU: the machine is shared, this is what moves least
        result = work()
        out[name] = time.process_time() - start
        return result

    clock("read and parse the records", lambda: sum(1 for _ in rows_from_store(store)))
    name = _state_name(params)
    previous = clock("load the state", lambda: NearState.from_json(cache.load(name)))
    tally = findings._Tally(params)
    judged = "read, parse and judge (the tally)"
    clock(judged, lambda: [tally.add(row) for row in rows_from_store(store)])
    hashes = {sha: value for sha, (_, value) in tally.searched.items()}
    t = params.near_threshold
    clock("the near search", lambda: findings._near(hashes, t, previous))  # type: ignore[arg-type]
    found = clock("find: all of it", lambda: find(rows_from_store(store), params, previous))
    assert isinstance(found, findings.Findings)
    spare = f"{name}.phases"  # saved as the audit saves its state, then dropped
    clock("save the state", lambda: cache.save(spare, found.state.to_json()))
    (Path(cache.CACHE) / spare).unlink()
    clock("the report to JSON", lambda: json.dumps(found.report(), sort_keys=True))
    out["judge"] = out[judged] - out["read and parse the records"]
    out["groups, leaks, the rest of find"] = (
        out["find: all of it"] - out[judged] - out["the near search"]
    )
    out["pairs"] = len(found.state.pairs)
    out["near groups"] = len(found.near)
    return out


@click.command()
@click.option("--images", "n", default=1_000_000, show_default=True, help="Records in the store.")
@click.option("--repeat", default=2, show_default=True, help="Timed audits of each kind; the best.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to build the project (kept); default: a temporary folder, removed after.",
)
@click.option("--phases/--no-phases", "phases_too", default=True, help="Say where the time goes.")
def main(n: int, repeat: int, workdir: Path | None, phases_too: bool) -> None:
    """Time `imageshelf audit --json` on a store of N records: cold, again, after 1%."""
    work = workdir or Path(tempfile.mkdtemp(prefix="imageshelf-quality-scale-"))
    folder = work / "project"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        run(folder, n, repeat, phases_too)
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(folder: Path, n: int, repeat: int, phases_too: bool) -> None:
    start = time.perf_counter()
    make_project(folder, n)
    click.echo(f"build the store of {n:,} records: {time.perf_counter() - start:.1f} s")
    state = folder / ".dvc" / "tmp" / "imageshelf" / _state_name(QualityParams())
    timed_audits("cold: no audit state", folder, state, None, repeat)
    timed_audits("again: nothing changed", folder, state, state.read_bytes(), 1)
    if phases_too:
        explain("cold", folder, None)
    before = state.read_bytes()
    start = time.perf_counter()
    added = add_one_percent(folder, n)
    click.echo(f"add {added:,} records: {time.perf_counter() - start:.1f} s")
    timed_audits(f"after adding 1% ({added:,})", folder, state, before, repeat)
    if phases_too:
        explain("after 1%", folder, before)


def put_state(state: Path, saved: bytes | None) -> None:
    """The audit's state as it was (None: none)."""
    if saved is None:
        state.unlink(missing_ok=True)
    else:
        state.write_bytes(saved)


def timed_audits(what: str, folder: Path, state: Path, saved: bytes | None, repeat: int) -> None:
    """`repeat` audits, each starting from the state `saved`; print the fastest."""
    runs = []
    for _ in range(repeat):
        put_state(state, saved)
        runs.append(audit_process(folder))
    best = min(runs, key=lambda got: got["wall"])
    size = state.stat().st_size / 1e6
    every = ", ".join(f"{got['wall']:.1f}" for got in runs)
    click.echo(
        f"audit, {what}: {best['wall']:.1f} s wall, {best['cpu']:.1f} s CPU, "
        f"{best['mib']:,.0f} MiB peak (best of {repeat}: {every} s); state {size:.1f} MB"
    )


def explain(what: str, folder: Path, saved: bytes | None) -> None:
    """Where the time of an audit from the state `saved` goes (the state the cache
    holds is put back after)."""
    state = folder / ".dvc" / "tmp" / "imageshelf" / _state_name(QualityParams())
    now = state.read_bytes()
    here = Path.cwd()
    os.chdir(folder)  # the cache is the project's
    try:
        put_state(state, saved)
        got = phases(folder)
    finally:
        os.chdir(here)
        state.write_bytes(now)
    click.echo(f"where the time goes, {what} (CPU seconds):")
    for name, value in got.items():
        click.echo(f"  {name}: {value:.2f}" if isinstance(value, float) else f"  {name}: {value}")


if __name__ == "__main__":
    main()
