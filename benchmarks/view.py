"""`imageshelf view` at scale, side by side with browsing the same images as loose files.

    python benchmarks/view.py --images 100000     # what `make bench` runs
    python benchmarks/view.py --images 1000000    # the by-hand row (about 5 minutes)

Builds a store of N small distinct JPEGs (ten label folders), starts `imageshelf view`
over it as a user would, and times over HTTP: the first gallery page, a filtered page,
a page of 60 thumbnails made from the stored bytes (cold) and from the cache (warm),
and the server's memory after one page and after paging 50 pages on. Against: Python's
http.server over the same images as loose files (a folder's listing; 60 originals).
Results go to benchmarks/results-view.md.
"""

from __future__ import annotations

import io
import os
import random
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Pool
from pathlib import Path

import click
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench import PROJECT, Row, run_and_report  # noqa: E402

LABELS = 10


def _jpeg(i: int) -> tuple[str, bytes]:
    rng = random.Random(i)
    image = Image.new("RGB", (96, 72), tuple(rng.randrange(256) for _ in range(3)))
    image.putpixel((i % 96, (i // 96) % 72), (255, 255, 255))  # every image distinct
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return f"l{i % LABELS}/{i:07d}.jpg", out.getvalue()


def build(folder: Path, store: Path, count: int) -> None:
    """Loose files under `folder`, and the same images in the store at `store`."""
    from imageshelf.images.recognise import describe
    from imageshelf.store.writer import Item, rebuild

    def items():
        with Pool(os.cpu_count() or 1) as pool:
            for rel, data in pool.imap(_jpeg, range(count), chunksize=512):
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                label = rel.split("/")[0]
                yield Item(describe(rel, data, {"label": label}), lambda d=data: d)

    rebuild(store, list(items()))


def get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        body = response.read()
    return time.perf_counter() - start, body


def rss_mib(pid: int) -> float:
    """The process's own memory (anonymous: heap and stacks), not the store's pages that
    LMDB maps in as it reads (the kernel's page cache, shared, given back on demand)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(
    args: list[str], cwd: Path, env: dict[str, str], pattern: str
) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(pattern, line)
        if found:
            return proc, found.group(0)
    raise click.ClickException(f"{args[:4]} did not start: {proc.stderr.read()[-500:]}")  # type: ignore[union-attr]


def links(body: bytes, kind: str) -> list[str]:
    return [urllib.parse.unquote(m) for m in re.findall(rf'href="(/{kind}/[^"?]+)', body.decode())]


def fetch_all(base: str, paths: list[str]) -> float:
    """All of `paths` over 6 connections at once, as a browser loads a page's images."""
    start = time.perf_counter()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda p: get(base + urllib.parse.quote(p))[1], paths))
    return time.perf_counter() - start


def measure(work: Path, count: int) -> list[Row]:
    images, store = work / "images", work / "store.lmdb"
    start = time.perf_counter()
    build(images, store, count)
    click.echo(f"built {count:,} images in {time.perf_counter() - start:.0f} s")
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    view = [sys.executable, "-m", "imageshelf", "view", "--store", str(store)]
    started = time.perf_counter()
    proc, base = serve(view, work, env, r"http://127\.0\.0\.1:\d+/")
    ready = time.perf_counter() - started
    try:
        first, body = get(base)
        filtered, _ = get(base + "?where=label%3Dl3")
        thumbs = [p.replace("/image/", "thumb/", 1) for p in links(body, "image")]
        cold = fetch_all(base, thumbs)
        warm = fetch_all(base, thumbs)
        memory_one = rss_mib(proc.pid)  # one page seen, its thumbnails made
        cursor = body
        pages = time.perf_counter()
        paged = 0
        while paged < 50:  # fewer on a store of under 51 pages
            nxt = re.search(rb'id="next-page" href="([^"]+)"', cursor)
            if not nxt:
                break
            cursor = get(base + nxt.group(1).decode().replace("&amp;", "&").lstrip("/"))[1]
            paged += 1
        per_page = (time.perf_counter() - pages) / max(paged, 1)
        memory_fifty = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    loose, listing_url = serve(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
        images,
        env,
        r"http://127\.0\.0\.1:\d+/",
    )
    try:
        listing, body = get(listing_url + "l0/")
        originals = [
            f"l0/{name}" for name in re.findall(r'href="([^"]+\.jpg)"', body.decode())[:60]
        ]
        loose_60 = fetch_all(listing_url, originals)
    finally:
        loose.terminate()
        loose.wait()
    n = f"{count:,}"
    click.echo(f"server ready in {ready:.2f} s; next pages {per_page * 1000:.0f} ms each")
    return [
        Row("view", f"first gallery page of {n} (60 thumbnails' page, label counts)", first,
            f"http.server: one folder's listing ({count // LABELS:,} loose files)", listing, 1.0),
        Row("view", f"a filtered page (label=l3, through the index) of {n}", filtered,
            "the same listing", listing, 1.0),
        Row("view", f"the next page, paging on (mean of {paged}) of {n}", per_page,
            "the same listing", listing, 1.0),
        Row("view", "60 thumbnails made from stored bytes (cold, 6 at once)", cold,
            "60 loose originals over http.server", loose_60, None),
        Row("view", "60 thumbnails from the cache (warm)", warm,
            "60 loose originals over http.server", loose_60, 0.5),
        Row("view", f"server memory (anonymous RSS) after {paged + 1} pages of {n}", memory_fifty,
            "after the first and its thumbnails", memory_one, 1.1, unit="MiB"),
    ]  # fmt: skip


@click.command()
@click.option("--images", "count", default=100_000, show_default=True, help="Images in the store.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=PROJECT / "benchmarks" / "results-view.md",
    show_default=True,
)
def main(count: int, out: Path) -> None:
    """Time the viewer over a store of COUNT images against loose files."""
    run_and_report(
        "imageshelf-view-bench-",
        lambda work: measure(work, count),
        out,
        [
            "# imageshelf view at scale",
            "",
            f"`python benchmarks/view.py --images {count}` (what `make bench` runs at 100,000).",
            "Times over HTTP from a client on the same machine; ratio = theirs / ours (memory:",
            "ours / theirs). The by-hand row at 1,000,000 is in NOTES.md.",
        ],
    )


if __name__ == "__main__":
    main()
