"""Duplicates, leakage and unusable images, measured side by side with cleanvision on a
corpus with planted problems (issue 40).

    python benchmarks/quality.py --images 2000     # what `make bench` runs
    python benchmarks/quality.py --images 20000    # the scale row, by hand:
                                                   # make bench-quality QUALITY_IMAGES=20000

Builds the planted corpus (benchmarks/quality_corpus.py: photographs that scikit-image
and Pillow ship, then synthetic scenes; the truth beside the images), then runs, on the
same files and the same cores, alternating, for --rounds rounds: cleanvision's
`Imagelab(filepaths=...).find_issues()` in the peers' environment
(benchmarks/quality_cleanvision.py) and ours (`ours_findings` below, in a process of its
own). Each is timed as a whole process: wall clock, and CPU time (user + sys of the
process and every process it started). The best round of each is compared. Both tools'
findings are scored against the truth (benchmarks/quality_score.py) and the issue's goals
checked. Results go to benchmarks/results-quality.md (results-quality-N.md for another N).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality_score  # noqa: E402
from bench import PEERS_PYTHON, PROJECT, Row, env, machine, table  # noqa: E402

LEAK_GOAL_KINDS = ("jpeg_requality", "png_to_jpeg", "jpeg_to_png", "resize_half")
JOBS = len(os.sched_getaffinity(0))  # both tools get the cores this process may use
PENDING = "pending the pipeline"


# ------------------------------------------------------------------ ours


def ours_findings(corpus: Path) -> dict:
    """Ours' findings on the corpus, keyed as its truth: each issue type's keys,
    `exact_duplicates` and `near_duplicates` as groups of keys, `leaks` as pairs.

    THE ADAPTER. Until imageshelf/images/properties.py and imageshelf/quality/ land, ours
    is the research prototype copied into benchmarks/quality_reference.py. When they
    land, this body becomes `return library_findings(corpus)` (and read_findings below
    is written against the library), so that ours runs as a user runs it.
    """
    import quality_reference

    return quality_reference.audit(corpus, JOBS)


OURS = "the prototype (benchmarks/quality_reference.py)"  # what ours_findings runs


def library_findings(corpus: Path) -> dict:
    """Ours as a user runs it: a project whose store holds the corpus (ingest, then pack,
    which computes each image's properties), and its findings read from the store."""
    folder = Path(tempfile.mkdtemp(prefix="quality-ours-", dir=corpus.parent))
    try:
        build_project(corpus, folder)
        return read_findings(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_findings(folder: Path) -> dict:
    """The findings of the project in `folder`, as `ours_findings` returns them: each
    issue type's keys under quality_score.ISSUE_TYPES' names (cleanvision's: dark, light,
    blurry, low_information, grayscale, odd_aspect_ratio, odd_size), `exact_duplicates`
    and `near_duplicates` as groups of keys, `leaks` as pairs of keys; each key without
    the batch folder the store has it under (`corpus/train/x.jpg` is `train/x.jpg`).
    To be written against imageshelf/quality/ when it lands: the way a user reads them
    (`imageshelf audit --json` run in `folder`, after the stats stage if that is where
    they are found), timed with the rest by the `ours` process."""
    raise NotImplementedError(f"imageshelf.quality has not landed: no findings in {folder}")


def library_pending() -> str | None:
    """Why the measures that need the library cannot run yet, or None."""
    if importlib.util.find_spec("imageshelf.quality") is None:
        return "imageshelf.quality is not in this tree yet"
    return None


def build_project(
    corpus: Path, folder: Path, keys: list[str] | None = None, batch: str = "corpus"
) -> tuple[float, float]:
    """Put the corpus's images (or `keys` of them) into the store of the project in
    `folder`, as a user does: linked into data/incoming/BATCH/, then ingest and pack.
    The folders train/, val/ and test/ give the splits (annotations.split_from_folder).
    Made on first use; run again with another batch, it adds to the store. Returns
    (wall, CPU) seconds of the two stages."""
    incoming = folder / "data" / "incoming"
    if not (folder / "params.yaml").exists():
        incoming.mkdir(parents=True)
        (folder / ".dvc").mkdir()  # ingest keeps its cache there, as in a project
        shutil.copy2(PROJECT / "dvc.yaml", folder / "dvc.yaml")
        params = (PROJECT / "params.yaml").read_text()
        given = params.replace("split_from_folder: false", "split_from_folder: true ")
        if given == params:
            raise click.ClickException("params.yaml has no `split_from_folder: false` to turn on")
        (folder / "params.yaml").write_text(given)
    for key in keys if keys is not None else truth_of(corpus)["images"]:
        (incoming / batch / key).parent.mkdir(parents=True, exist_ok=True)
        os.link(corpus / "images" / key, incoming / batch / key)
    wall = cpu = 0.0
    for stage in ("ingest", "pack"):
        w, c = timed([sys.executable, str(PROJECT / "pipeline" / f"{stage}.py")], folder)
        wall, cpu = wall + w, cpu + c
    return wall, cpu


def check_splits(corpus: Path, folder: Path) -> None:
    """The store's splits are the truth's (the leak scores rest on it)."""
    from imageshelf.store import ImageStore

    images = truth_of(corpus)["images"]
    store = ImageStore(folder / "data" / "images.lmdb")
    wrong = [r.key for r in store.records() if images[r.key.split("/", 1)[1]]["split"] != r.split]
    if wrong or len(store) != len(images):
        raise click.ClickException(f"the store's splits differ from the truth's: {wrong[:3]}")


# ------------------------------------------------------------------ measuring


def truth_of(corpus: Path) -> dict:
    return json.loads((corpus / "truth.json").read_text())


def timed(args: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Run a command; (wall, CPU) seconds, CPU being user + sys of the process and of
    every process it started and waited for (worker pools included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        raise click.ClickException(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def commands(corpus: Path, out: Path) -> dict[str, list[str]]:
    if not PEERS_PYTHON.exists():
        raise click.ClickException(f"{PEERS_PYTHON} is missing: `make bench` makes it")
    return {
        "cleanvision": [
            str(PEERS_PYTHON),
            str(HERE / "quality_cleanvision.py"),
            str(corpus),
            str(out / "cleanvision.json"),
            f"--jobs={JOBS}",
        ],
        "ours": [sys.executable, __file__, "ours", str(corpus), str(out / "ours.json")],
    }


def run_rounds(corpus: Path, work: Path, rounds: int) -> tuple[dict, dict, bool]:
    """Both tools, alternating which goes first, `rounds` times: (name -> [(wall, CPU)]
    per round, name -> the first round's findings, whether every round found the same)."""
    times: dict[str, list[tuple[float, float]]] = {"cleanvision": [], "ours": []}
    found: dict[str, dict] = {}
    same = True
    for r in range(rounds):
        out = work / f"round-{r + 1}"
        out.mkdir()
        todo = commands(corpus, out)
        for name in list(todo) if r % 2 == 0 else list(todo)[::-1]:
            times[name].append(timed(todo[name]))
            click.echo(f"quality: round {r + 1}, {name}: {times[name][-1][0]:.1f} s", err=True)
            result = json.loads((out / f"{name}.json").read_text())
            result.pop("seconds", None)  # the tool's own clock: the process's is kept
            same = same and found.setdefault(name, result) == result
    return times, found, same


def measure_add(corpus: Path, work: Path) -> tuple[float, float] | None:
    """Adding 1% of the corpus to a project holding the rest, against the same 1% in a
    fresh project: wall seconds of ingest + pack + reading the findings, or None while
    the library is pending."""
    if library_pending():
        return None
    keys = sorted(truth_of(corpus)["images"])
    new = sorted(random.Random(40).sample(keys, max(1, len(keys) // 100)))
    old = sorted(set(keys) - set(new))
    grown, fresh = work / "add-grown", work / "add-fresh"
    build_project(corpus, grown, old)
    read_findings(grown)
    seconds = []
    for folder in (grown, fresh):
        start = time.perf_counter()
        build_project(corpus, folder, new, batch="added")
        read_findings(folder)
        seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1]


# ------------------------------------------------------------------ the report


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def at_least(ours: float | None, theirs: float | None) -> bool:
    """ours >= theirs; a measure a tool has no value for (nothing flagged: no precision)
    is met by anything when it is theirs, and missed when it is ours alone."""
    if theirs is None:
        return True
    return ours is not None and ours >= theirs - 1e-9


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def issue_lines(scores: dict) -> tuple[list[str], list[bool]]:
    """The issue types side by side; each verdict: ours' recall and precision both at
    least cleanvision's."""
    lines = [
        "| issue type | planted | cleanvision: recall / precision (flagged) | "
        "ours: recall / precision (flagged) | goal: both at least cleanvision's |",
        "|---|---:|---|---|---|",
    ]
    met = []
    for name, cv in scores["cleanvision"]["issues"].items():
        ours = scores["ours"]["issues"][name]
        ok = at_least(ours["recall"], cv["recall"]) and at_least(ours["precision"], cv["precision"])
        met.append(ok)
        cells = [f"{fmt(r['recall'])} / {fmt(r['precision'])} ({r['flagged']})" for r in (cv, ours)]
        lines.append(f"| {name} | {cv['planted']} | {cells[0]} | {cells[1]} | {verdict(ok)} |")
    lines.append("")
    for tool in ("cleanvision", "ours"):
        gray = scores[tool]["issues"]["grayscale"]
        wrong = {n: r["fp_by_truth"] for n, r in scores[tool]["issues"].items() if r["fp_by_truth"]}
        lines.append(
            f"- {tool}: grayscale recall saved as L {fmt(gray['recall_L'])}, as RGB "
            f"{fmt(gray['recall_RGB'])}; wrong flags by what they are: {json.dumps(wrong)}"
        )
    return lines, met


def duplicate_lines(scores: dict, per_kind: int) -> tuple[list[str], list[bool]]:
    """Recall per planted copy kind, then the pairs and leaks overall."""
    cv, ours = scores["cleanvision"]["dups"], scores["ours"]["dups"]
    lines = [
        f"| planted copies ({per_kind} pairs each) | cleanvision: recall (photos only) | "
        "ours: recall (photos only) | goal: at least cleanvision's |",
        "|---|---|---|---|",
    ]
    met = []
    for kind, theirs in cv["recall_per_kind"].items():
        mine = ours["recall_per_kind"][kind]
        met.append(at_least(mine, theirs))
        photo = [fmt(d["recall_per_kind_photo"].get(kind)) for d in (cv, ours)]
        lines.append(
            f"| {kind} | {fmt(theirs)} ({photo[0]}) | {fmt(mine)} ({photo[1]}) | "
            f"{verdict(met[-1])} |"
        )
    for label, key in (
        ("all planted pairs: recall", "recall"),
        ("found pairs: precision (blank pairs left out)", "precision"),
        ("leakage (planted pairs across splits): recall", "leak_recall"),
        ("leakage: precision (blank pairs left out)", "leak_precision"),
    ):
        met.append(at_least(ours[key], cv[key]))
        lines.append(f"| {label} | {fmt(cv[key])} | {fmt(ours[key])} | {verdict(met[-1])} |")
    for label, key in (
        ("found pairs", "found_pairs"),
        ("false pairs", "false_pairs"),
        ("blank-with-blank pairs (uniform, tiny)", "blank_pairs"),
        ("leaks found (pairs)", "leaks_found"),
        ("groups: exact / near", "groups"),
    ):
        values = [" / ".join(map(str, d[key])) if key == "groups" else d[key] for d in (cv, ours)]
        lines.append(f"| {label} | {values[0]} | {values[1]} | |")
    return lines, met


def leak_goal_lines(scores: dict) -> tuple[list[str], bool]:
    """Leakage recall 1.0 for copies re-encoded or resized to half."""
    per_kind = scores["ours"]["dups"]["leak_recall_per_kind"]
    theirs = scores["cleanvision"]["dups"]["leak_recall_per_kind"]
    met = all(per_kind.get(kind) == 1.0 for kind in LEAK_GOAL_KINDS)
    cells = ", ".join(
        f"{kind} {fmt(per_kind.get(kind))} (cleanvision {fmt(theirs.get(kind))})"
        for kind in LEAK_GOAL_KINDS
    )
    return [
        f"- leakage recall 1.0 for copies re-encoded or resized to half: {cells}: "
        f"**{verdict(met)}**"
    ], met


def time_rows(times: dict, n: int, build: tuple[float, float] | None) -> list[Row]:
    """The best round of each tool, wall and CPU; the 2x goal is the issue's at 20,000.
    While ours is the prototype (`build` given), two rows add the store's build (ingest +
    pack as they are today) to it: about what the pipeline will cost, conservatively."""
    best = {name: (min(w for w, _ in t), min(c for _, c in t)) for name, t in times.items()}
    goal = 2.0 if n >= 20_000 else None
    rounds = len(times["ours"])
    theirs = "cleanvision: Imagelab(filepaths).find_issues()"
    ours, cv = best["ours"], best["cleanvision"]
    rows = [
        Row(
            "quality", f"audit of {n} images, wall (best of {rounds})", ours[0], theirs, cv[0], goal
        ),
        Row(
            "quality",
            f"audit of {n} images, CPU: user + sys, workers included (best of {rounds})",
            ours[1],
            theirs + ", the same",
            cv[1],
            goal,
        ),
    ]
    if build is not None:
        what = "the prototype's audit + the store's build (ingest + pack, as they are today)"
        rows += [
            Row("quality", f"{what}, wall", ours[0] + build[0], theirs, cv[0], None),
            Row("quality", f"{what}, CPU", ours[1] + build[1], theirs + ", CPU", cv[1], None),
        ]
    return rows


def add_line(add: tuple[float, float] | None) -> tuple[str, str]:
    """The add-1% row (a table line) and its goal's verdict."""
    if add is None:
        return (
            f"| add 1% to the project, then its findings | {PENDING} | the same 1% in a "
            f"fresh project | {PENDING} | | ≤ 1.5x | pending |"
        ), "pending"
    ok = add[0] <= 1.5 * add[1]
    return (
        f"| add 1% to the project, then its findings | {add[0]:.2f} s | the same 1% in a "
        f"fresh project | {add[1]:.2f} s | {add[0] / add[1]:.2f}x (ours / fresh) | ≤ 1.5x | "
        f"{verdict(ok)} |"
    ), verdict(ok)


def corpus_lines(meta: dict, reused: bool) -> list[str]:
    photos = [s["name"] for s in meta["sources"]]
    lines = [
        f"- {meta['n']} images (seed {meta['seed']}, {meta['bytes'] / 1e6:.0f} MB): "
        f"{meta['images_from_photos']} cut from {len(photos)} photographs, "
        f"{meta['images_synthetic']} synthetic scenes; each planted kind {meta['per_kind']} "
        f"images; copies in another split {meta['leak_p']:.0%} of the time",
        "- photographs: " + (", ".join(photos) or "none"),
        f"- built in {meta['build_seconds']:.0f} s"
        + (" (reused from --corpus)" if reused else "")
        + f", Pillow {meta['pillow']}, numpy {meta['numpy']}",
    ]
    for note in meta["sources_missing"]:
        lines.append(f"- **not fetched, so left out: {note}**")
    if not photos:
        lines.append("- **no photographs could be fetched: the corpus is synthetic scenes only**")
    return lines


def goal_lines(n: int, time_table: list[Row], met: dict[str, list[bool]], add: str) -> list[str]:
    wall, cpu = time_table[0], time_table[1]
    at_scale = (
        f"{verdict(wall.speedup >= 2)} ({wall.speedup:.2f}x wall, {cpu.speedup:.2f}x CPU)"
        if n >= 20_000
        else f"checked at 20,000 (here {n}: {wall.speedup:.2f}x wall, {cpu.speedup:.2f}x CPU; "
        "`make bench-quality QUALITY_IMAGES=20000`, results-quality-20000.md)"
    )
    lines = []
    for label, key in (("issue type", "issues"), ("copy kind or pair measure", "dups")):
        missed = met[key].count(False)
        lines.append(
            f"- recall and precision at least cleanvision's, each {label}: "
            f"**{verdict(not missed)}** ({len(met[key]) - missed} of {len(met[key])})"
        )
    lines.append(
        f"- the first audit of 20,000 images at least 2x faster than find_issues: **{at_scale}**"
    )
    lines.append(f"- an add of 1% at most 1.5x a fresh project's 1%: **{add}**")
    return lines


def report(truth: dict, found: dict, times: dict, extra: dict) -> list[str]:
    """The whole of results-quality.md but its heading."""
    meta = truth["meta"]
    scores = {name: quality_score.score(truth, found[name]) for name in ("cleanvision", "ours")}
    issues, issues_met = issue_lines(scores)
    dups, dups_met = duplicate_lines(scores, meta["per_kind"])
    leak_goal, leak_met = leak_goal_lines(scores)
    rows = time_rows(times, meta["n"], extra["build"])
    add_row, add_verdict = add_line(extra["add"])
    rounds = "; ".join(
        f"{name}: " + ", ".join(f"{w:.1f} s ({c:.1f} s CPU)" for w, c in t)
        for name, t in times.items()
    )
    goals = goal_lines(meta["n"], rows, {"issues": issues_met, "dups": dups_met}, add_verdict)
    return [
        "## Goals (issue 40)",
        "",
        *goals[:2],
        *leak_goal,
        *goals[2:],
        "",
        "## Time, on the same files and cores",
        "",
        *table(rows),
        add_row,
        "",
        f"Every round, wall (CPU), the first tool alternating: {rounds}. "
        f"The same findings in every round: {'yes' if extra['same'] else 'NO'}.",
        "",
        "## Issue types",
        "",
        *issues,
        "",
        "## Duplicates and leakage (pairs: every pair inside a found group counts)",
        "",
        *dups,
        "",
        "## The corpus (benchmarks/quality_corpus.py)",
        "",
        *corpus_lines(meta, extra["reused"]),
    ]


# ------------------------------------------------------------------ the command


@click.group(invoke_without_command=True)
@click.option("--images", "count", default=2000, show_default=True, help="Corpus size.")
@click.option("--rounds", default=3, show_default=True, help="Rounds of both tools.")
@click.option("--seed", default=40, show_default=True, help="The corpus's seed.")
@click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Use the corpus built there (or build it there, and keep it).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to work (default: a temporary folder, removed afterwards).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: benchmarks/results-quality.md (results-quality-N.md unless N is 2000).",
)
@click.pass_context
def cli(ctx: click.Context, count: int, rounds: int, seed: int, corpus_dir, workdir, out) -> None:
    """Ours against cleanvision's find_issues on a corpus with planted problems."""
    if ctx.invoked_subcommand is not None:
        return
    started = time.time()
    work = workdir or Path(tempfile.mkdtemp(prefix="quality-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = corpus_dir or work / "corpus"
    reused = (corpus / "truth.json").exists()
    try:
        if not reused:
            import quality_corpus  # here: the timed `ours` process need not import numpy

            click.echo(f"quality: building the corpus of {count} images in {corpus} ...")
            quality_corpus.build(count, corpus, seed)
        truth = truth_of(corpus)
        times, found, same = run_rounds(corpus, work, rounds)
        build = build_project(corpus, work / "project")
        check_splits(corpus, work / "project")
        build = build if OURS.startswith("the prototype") else None
        add = measure_add(corpus, work)
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    n = truth["meta"]["n"]
    body = report(truth, found, times, {"build": build, "add": add, "same": same, "reused": reused})
    out = out or HERE / ("results-quality.md" if n == 2000 else f"results-quality-{n}.md")
    heading = [
        f"# Data quality: ours against cleanvision, {n} images",
        "",
        f"Generated by `python benchmarks/quality.py --images {n} --rounds {rounds}`"
        f"{' (what `make bench` runs)' if n == 2000 else ''} in {time.time() - started:.0f} s. "
        f"**Ours is {OURS}** until imageshelf's properties and findings land; then the "
        "benchmark builds a project's store from the corpus and reads its findings. Ratio = "
        "theirs / ours: above 1, ours is faster. benchmarks/NOTES.md says how it is measured.",
        "",
        *machine(),
        f"- {found['cleanvision']['tool']}; ours: {found['ours']['tool']}",
        "",
    ]
    out.write_text("\n".join([*heading, *body, ""]))
    click.echo("\n".join(body[: body.index("## Issue types")]))
    click.echo(f"quality: wrote {out}")


@cli.command("ours", hidden=True)
@click.argument("corpus", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
def ours_command(corpus: Path, out: Path) -> None:
    """Ours' findings on CORPUS, to OUT (JSON): the process the benchmark times."""
    found = ours_findings(corpus)
    found["tool"] = f"{OURS}, {JOBS} processes"
    out.write_text(json.dumps(found))


if __name__ == "__main__":
    cli()
