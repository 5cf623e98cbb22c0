"""The by-hand row of results-scale.md: build, add 1% (kept and cleared) and status at a
large N, each step one `dvc repro` timed with the peak RSS of DVC and its stages.

    python benchmarks/million.py --images 1000000     # about 10 minutes, 5 GB of disk

Prints one line per step; NOTES-scale.md holds the last run's figures.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).parent))
import scale  # noqa: E402


def timed(root: Path, *args: str) -> tuple[float, float]:
    """Seconds and peak MiB of `dvc ARGS` and everything it runs (GNU time's %M)."""
    start = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=scale.ENV,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise click.ClickException(result.stderr[-2000:])
    return time.perf_counter() - start, int(result.stderr.strip().splitlines()[-1]) / 1024


def step(name: str, root: Path, *args: str) -> None:
    seconds, mib = timed(root, *args)
    click.echo(f"{name}: {seconds:.2f} s, {mib:.0f} MiB")


@click.command()
@click.option("--images", "n", default=1_000_000, show_default=True, help="Images in the store.")
def main(n: int) -> None:
    """Build a sharded store of N tiny images, add 1% with the originals kept and then
    cleared, and time `dvc status`; then the same 1% in a fresh project."""
    work = Path(tempfile.mkdtemp(prefix="imageshelf-million-"))
    try:
        root = scale.project(work / "big", work / "remote")
        start = time.perf_counter()
        scale.make(root / "data" / "incoming", 0, n)
        click.echo(f"generate {time.perf_counter() - start:.1f} s")
        step("build", root, "repro")
        scale.commit(root, "built")
        step("status, kept", root, "status")
        for first, name in ((10_000_000, "add 1%, kept"), (20_000_000, "add 1%, cleared")):
            # The first add finds the originals kept; after it, they are cleared.
            scale.make(root / "data" / "incoming", first, n // 100)
            step(name, root, "repro")
            scale.commit(root, name)
            scale.clear(root)
            timed(root, "repro")
            scale.commit(root, f"{name}: originals cleared")
        step("status, cleared", root, "status")
        shutil.rmtree(root)
        fresh = scale.project(work / "fresh", work / "remote-fresh")
        scale.make(fresh / "data" / "incoming", 50_000_000, n // 100)
        step("the same 1% in a fresh project", fresh, "repro")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
