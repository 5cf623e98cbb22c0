"""cleanvision's `Imagelab(filepaths=...).find_issues()` on the planted corpus, its
findings written as JSON: what benchmarks/quality.py measures the audit against.

    .venv-peers/bin/python benchmarks/quality_cleanvision.py CORPUS OUT.json [--jobs N]

Runs in the peers' environment (.venv-peers: cleanvision and its pandas, matplotlib and
imagehash, which the project never needs), with cleanvision's default issue types and
thresholds, on every image of CORPUS/images/ (the keys of CORPUS/truth.json), over N
worker processes (default: the cores this process may use, as ours uses). Writes, keyed
by the corpus's keys: each issue type's flagged images, and the exact and near duplicate
sets. Imports nothing from the project.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ISSUE_TYPES = [
    "dark",
    "light",
    "blurry",
    "low_information",
    "grayscale",
    "odd_aspect_ratio",
    "odd_size",
]


def findings(corpus: Path, jobs: int) -> dict:
    """Every issue type's flagged keys and the duplicate sets, as cleanvision finds them."""
    from cleanvision import Imagelab

    keys = sorted(json.loads((corpus / "truth.json").read_text())["images"])
    root = corpus / "images"
    lab = Imagelab(filepaths=[str(root / key) for key in keys])
    lab.find_issues(n_jobs=jobs, verbose=False)
    key_of = {str(root / key): key for key in keys}
    issues = lab.issues
    out: dict = {
        kind: sorted(key_of[p] for p in issues.index[issues[f"is_{kind}_issue"]])
        for kind in ISSUE_TYPES
    }
    for kind in ("exact_duplicates", "near_duplicates"):
        out[kind] = [sorted(key_of[p] for p in group) for group in lab.info[kind]["sets"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    started = time.perf_counter()
    found = findings(args.corpus, args.jobs)
    import cleanvision

    found["tool"] = f"cleanvision {cleanvision.__version__}, n_jobs={args.jobs}"
    found["seconds"] = round(time.perf_counter() - started, 3)
    args.out.write_text(json.dumps(found))


if __name__ == "__main__":
    main()
