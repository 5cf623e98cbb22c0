"""Duplicates, leakage and unusable images, measured side by side with cleanvision on a
corpus with planted problems (issue 40).

    python benchmarks/quality.py --images 2000     # what `make bench` runs
    python benchmarks/quality.py --images 20000    # the scale row, by hand:
                                                   # make bench-quality QUALITY_IMAGES=20000

Builds the planted corpus (benchmarks/quality_corpus.py: photographs that scikit-image
and Pillow ship, then synthetic scenes; the truth beside the images), then runs, on the
same files and the same cores, alternating, for --rounds rounds: cleanvision's
`Imagelab(filepaths=...).find_issues()` in the peers' environment
(benchmarks/quality_cleanvision.py), one process, and ours as a user runs it
(`library_findings` below): the images linked into a new project's data/incoming/, then
the ingest and pack stages and `imageshelf audit --json`, three processes. Each is timed
as a whole: wall clock, and CPU time (user + sys of the processes and every process they
started). The best round of each is compared. Both tools' findings are scored against
the truth (benchmarks/quality_score.py) and the issue's goals checked; then adding 1% to
a project holding the rest is timed against the same 1% in a fresh project
(`measure_add`). Results go to benchmarks/results-quality.md (results-quality-N.md for
another N).
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality_score  # noqa: E402
from bench import PEERS_PYTHON, PROJECT, Row, env, machine, table  # noqa: E402

LEAK_GOAL_KINDS = ("jpeg_requality", "png_to_jpeg", "jpeg_to_png", "resize_half")
JOBS = len(os.sched_getaffinity(0))  # both tools get the cores this process may use


# ------------------------------------------------------------------ ours

OURS = (
    "the pipeline as a user runs it: ingest and pack of the corpus into a project's store "
    "(ingest measures each image as it probes it, pack keeps the measures in its record), "
    "then `imageshelf audit --json`"
)
STAGES = ("ingest", "pack", "audit")  # ours' processes, in order, each timed
Timing = dict[str, tuple[float, float]]  # stage -> (wall, CPU) seconds
ISSUE_NAMES = {
    "odd_aspect": "odd_aspect_ratio"
}  # ours -> quality_score.ISSUE_TYPES', if not the same


def library_findings(corpus: Path, folder: Path) -> tuple[Timing, dict]:
    """Ours as a user runs it: the corpus's images put into the project in `folder`, then
    ingest, pack and `imageshelf audit --json` there. Each stage's (wall, CPU) and the
    findings, keyed as the truth (read_findings)."""
    setup_project(corpus, folder)
    times, report = run_pipeline(folder)
    return times, read_findings(report)


def read_findings(report: dict) -> dict:
    """The truth's shape of `imageshelf audit --json`'s report (Findings.report()): each
    issue type's keys under quality_score.ISSUE_TYPES' names, `exact_duplicates` and
    `near_duplicates` as groups of keys, `leaks` as pairs of keys; each key without the
    batch folder the store has it under (`corpus/train/x.jpg` is `train/x.jpg`)."""

    def key(stored: str) -> str:
        return stored.split("/", 1)[1]

    found: dict = {
        ISSUE_NAMES.get(kind, kind): [key(k) for k in keys]
        for kind, keys in report["issues"].items()
    }
    missing = set(quality_score.ISSUE_TYPES) - set(found)
    if missing:
        raise click.ClickException(f"the audit's report has no {sorted(missing)}: renamed?")
    found["exact_duplicates"] = [[key(k) for k in group] for group in report["exact_duplicates"]]
    found["near_duplicates"] = [
        [key(k) for k in group["keys"]] for group in report["near_duplicates"]
    ]
    found["leaks"] = [[key(leak["key_a"]), key(leak["key_b"])] for leak in report["leaks"]]
    return found


def setup_project(
    corpus: Path,
    folder: Path,
    keys: list[str] | None = None,
    batch: str = "corpus",
    layout: str = "single",
) -> None:
    """Put the corpus's images (or `keys` of them) where the project in `folder` takes
    new images, as a user does: linked into data/incoming/BATCH/ (not timed: the user's
    copy). The folders train/, val/ and test/ give the splits
    (annotations.split_from_folder). The project is made on first use, its store in
    `layout` (params.yaml's pack.layout); given again with another batch, its next run
    adds that batch to the store."""
    incoming = folder / "data" / "incoming"
    if not (folder / "params.yaml").exists():
        incoming.mkdir(parents=True)
        (folder / ".dvc").mkdir()  # the stages keep their cache there, as in a project
        shutil.copy2(PROJECT / "dvc.yaml", folder / "dvc.yaml")
        params = (PROJECT / "params.yaml").read_text()
        swaps = [("split_from_folder: false", "split_from_folder: true ")]
        if layout == "sharded":
            swaps += [("layout: single", "layout: sharded")]
            swaps += [("store: data/images.lmdb", "store: data/images")]
        for before, after in swaps:
            if before not in params:
                raise click.ClickException(f"params.yaml has no `{before}` to change")
            params = params.replace(before, after)
        (folder / "params.yaml").write_text(params)
    for key in keys if keys is not None else truth_of(corpus)["images"]:
        (incoming / batch / key).parent.mkdir(parents=True, exist_ok=True)
        os.link(corpus / "images" / key, incoming / batch / key)


def stage_command(stage: str) -> list[str]:
    """A stage as dvc.yaml runs it, or the audit as a user types it."""
    if stage == "audit":
        script = Path(sys.executable).parent / "imageshelf"
        if not script.exists():
            raise click.ClickException(f"{script} is missing: `make setup` installs it")
        return [str(script), "audit", "--json"]
    return [sys.executable, str(PROJECT / "pipeline" / f"{stage}.py")]


def run_pipeline(folder: Path) -> tuple[Timing, dict]:
    """Ingest, pack and `imageshelf audit --json` in `folder`, each a process of its
    own: each one's (wall, CPU) seconds, and the audit's report."""
    times: Timing = {}
    printed = ""
    for stage in STAGES:
        wall, cpu, printed = timed(stage_command(stage), folder)
        times[stage] = (wall, cpu)
    return times, json.loads(printed)


def total(times: Timing) -> tuple[float, float]:
    return sum(w for w, _ in times.values()), sum(c for _, c in times.values())


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


def timed(args: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """Run a command: (wall, CPU) seconds, CPU being user + sys of the process and of
    every process it started and waited for (worker pools included), and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        raise click.ClickException(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, result.stdout


def cleanvision_command(corpus: Path, out: Path) -> list[str]:
    if not PEERS_PYTHON.exists():
        raise click.ClickException(f"{PEERS_PYTHON} is missing: `make bench` makes it")
    return [
        str(PEERS_PYTHON),
        str(HERE / "quality_cleanvision.py"),
        str(corpus),
        str(out / "cleanvision.json"),
        f"--jobs={JOBS}",
    ]


@dataclass
class Rounds:
    """Every round of both tools: name -> [(wall, CPU)], ours' per stage, the first
    round's findings of each, and whether every round found the same."""

    times: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {"cleanvision": [], "ours": []}
    )
    stages: list[Timing] = field(default_factory=list)
    found: dict[str, dict] = field(default_factory=dict)
    same: bool = True

    def keep(self, name: str, result: dict) -> None:
        self.same = self.same and self.found.setdefault(name, result) == result


def run_rounds(corpus: Path, work: Path, rounds: int) -> Rounds:
    """Both tools, alternating which goes first, `rounds` times. Ours' project of the
    first round is checked against the truth's splits, after its clock stopped."""
    done = Rounds()
    for r in range(rounds):
        out = work / f"round-{r + 1}"
        out.mkdir()
        for name in ("cleanvision", "ours") if r % 2 == 0 else ("ours", "cleanvision"):
            if name == "ours":
                stages, result = library_findings(corpus, out / "project")
                if r == 0:
                    check_splits(corpus, out / "project")
                shutil.rmtree(out / "project")
                done.stages.append(stages)
                done.times["ours"].append(total(stages))
                result["tool"] = f"imageshelf, ingest on {JOBS} processes"
            else:
                wall, cpu, _ = timed(cleanvision_command(corpus, out))
                done.times[name].append((wall, cpu))
                result = json.loads((out / "cleanvision.json").read_text())
                result.pop("seconds", None)  # the tool's own clock: the process's is kept
            click.echo(f"quality: round {r + 1}, {name}: {done.times[name][-1][0]:.1f} s", err=True)
            done.keep(name, result)
    return done


@dataclass
class Add:
    """The add-1% measure in one store layout: each round's stages, in the grown project
    and in a fresh one."""

    layout: str
    grown: list[Timing] = field(default_factory=list)
    fresh: list[Timing] = field(default_factory=list)

    def median(self, side: str) -> tuple[float, Timing]:
        """The median round's total wall seconds and its stages."""
        rounds = sorted(getattr(self, side), key=lambda t: total(t)[0])
        middle = rounds[len(rounds) // 2]
        return total(middle)[0], middle


LAYOUTS = ("single", "sharded")  # params.yaml's default first


def measure_add(corpus: Path, work: Path, rounds: int, layout: str) -> Add:
    """Adding 1% of the corpus to a project holding the other 99% (built and audited
    first, untimed: its cache holds the last audit's search), against the same 1% in a
    fresh project; each ingest + pack + `imageshelf audit --json`, the originals left in
    data/incoming/. `rounds` times, each in a grown project of its own, which of the two
    goes first alternating. Both projects' stores in `layout`."""
    keys = sorted(truth_of(corpus)["images"])
    new = sorted(random.Random(40).sample(keys, max(1, len(keys) // 100)))
    old = sorted(set(keys) - set(new))
    add = Add(layout)
    for r in range(rounds):
        grown, fresh = work / f"add-grown-{r + 1}", work / f"add-fresh-{r + 1}"
        setup_project(corpus, grown, old, layout=layout)
        run_pipeline(grown)
        if not (grown / ".dvc" / "tmp" / "imageshelf" / "quality").is_dir():
            raise click.ClickException(f"{grown}: the audit left no state; an add would search all")
        for folder in (grown, fresh) if r % 2 == 0 else (fresh, grown):
            setup_project(corpus, folder, new, batch="added", layout=layout)
            stages, _ = run_pipeline(folder)
            (add.grown if folder == grown else add.fresh).append(stages)
            click.echo(
                f"quality: add 1%, {layout}, {folder.name}: {total(stages)[0]:.1f} s", err=True
            )
        shutil.rmtree(grown)
        shutil.rmtree(fresh)
    return add


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


def time_rows(times: dict, n: int) -> list[Row]:
    """The best round of each tool, wall and CPU; the 2x goal is the issue's at 20,000.
    Ours is the whole of what a user runs: ingest + pack + the audit."""
    best = {name: (min(w for w, _ in t), min(c for _, c in t)) for name, t in times.items()}
    goal = 2.0 if n >= 20_000 else None
    rounds = len(times["ours"])
    theirs = "cleanvision: Imagelab(filepaths).find_issues()"
    ours, cv = best["ours"], best["cleanvision"]
    what = f"ingest + pack + `imageshelf audit --json` of {n} images"
    return [
        Row("quality", f"{what}, wall (best of {rounds})", ours[0], theirs, cv[0], goal),
        Row(
            "quality",
            f"{what}, CPU: user + sys, workers included (best of {rounds})",
            ours[1],
            theirs + ", the same",
            cv[1],
            goal,
        ),
    ]


def stages_text(stages: Timing) -> str:
    return ", ".join(f"{stage} {w:.2f} s ({c:.2f} s CPU)" for stage, (w, c) in stages.items())


def add_line(add: Add) -> tuple[str, str, str]:
    """The add-1% row (a table line), its goal's verdict, and what each side's median
    round spent per stage."""
    grown, grown_stages = add.median("grown")
    fresh, fresh_stages = add.median("fresh")
    ok = grown <= 1.5 * fresh
    rounds = len(add.grown)
    store = "one file (params.yaml's default)" if add.layout == "single" else "sharded"
    row = (
        f"| add 1% to a project holding the other 99%, store {store}: ingest + pack + audit "
        f"(median of {rounds}) | {grown:.2f} s | the same 1% in a fresh project (median of "
        f"{rounds}) | {fresh:.2f} s | {grown / fresh:.2f}x (ours / fresh) | ≤ 1.5x | "
        f"{verdict(ok)} |"
    )
    detail = (
        f"- store {store}: the median rounds by stage, to the project: "
        f"{stages_text(grown_stages)}; fresh: {stages_text(fresh_stages)}. Every round, "
        "wall: to the project "
        + ", ".join(f"{total(t)[0]:.2f} s" for t in add.grown)
        + "; fresh "
        + ", ".join(f"{total(t)[0]:.2f} s" for t in add.fresh)
    )
    return row, f"{store} {grown / fresh:.2f}x, {verdict(ok)}", detail


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
        "- the first audit of 20,000 images (ours: ingest + pack + audit) at least 2x faster "
        f"than find_issues: **{at_scale}**"
    )
    lines.append(f"- an add of 1% at most 1.5x a fresh project's 1%: **{add}**")
    return lines


def report(truth: dict, done: Rounds, extra: dict) -> list[str]:
    """The whole of results-quality.md but its heading."""
    meta, times = truth["meta"], done.times
    scores = {name: quality_score.score(truth, done.found[name]) for name in times}
    issues, issues_met = issue_lines(scores)
    dups, dups_met = duplicate_lines(scores, meta["per_kind"])
    leak_goal, leak_met = leak_goal_lines(scores)
    rows = time_rows(times, meta["n"])
    adds = [add_line(add) for add in extra["adds"]]
    add_verdict = "; ".join(said for _, said, _ in adds)
    rounds = "; ".join(
        f"{name}: " + ", ".join(f"{w:.1f} s ({c:.1f} s CPU)" for w, c in t)
        for name, t in times.items()
    )
    fastest = min(done.stages, key=lambda t: total(t)[0])
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
        *(row for row, _, _ in adds),
        "",
        f"Every round, wall (CPU), the first tool alternating: {rounds}. "
        f"The same findings in every round: {'yes' if done.same else 'NO'}.",
        "",
        f"Ours' fastest round by stage: {stages_text(fastest)}. The adds (the originals "
        "left in data/incoming/, as in the rounds):",
        "",
        *(detail for _, _, detail in adds),
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


@click.command()
@click.option("--images", "count", default=2000, show_default=True, help="Corpus size.")
@click.option("--rounds", default=3, show_default=True, help="Rounds of both tools.")
@click.option("--add-rounds", default=3, show_default=True, help="Rounds of the add-1% measure.")
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
def cli(count: int, rounds: int, add_rounds: int, seed: int, corpus_dir, workdir, out) -> None:
    """Ours against cleanvision's find_issues on a corpus with planted problems."""
    started = time.time()
    work = workdir or Path(tempfile.mkdtemp(prefix="quality-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = corpus_dir or work / "corpus"
    reused = (corpus / "truth.json").exists()
    try:
        if not reused:
            import quality_corpus  # numpy and the photographs: only to build the corpus

            click.echo(f"quality: building the corpus of {count} images in {corpus} ...")
            quality_corpus.build(count, corpus, seed)
        truth = truth_of(corpus)
        done = run_rounds(corpus, work, rounds)
        adds = [measure_add(corpus, work, add_rounds, layout) for layout in LAYOUTS]
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    n = truth["meta"]["n"]
    body = report(truth, done, {"adds": adds, "reused": reused})
    out = out or HERE / ("results-quality.md" if n == 2000 else f"results-quality-{n}.md")
    heading = [
        f"# Data quality: the pipeline's audit against cleanvision, {n} images",
        "",
        f"Generated by `python benchmarks/quality.py --images {n} --rounds {rounds}`"
        f"{' (what `make bench` runs)' if n == 2000 else ''} in {time.time() - started:.0f} s. "
        f"**Ours is {OURS}**: three processes, timed together, so its times are what the "
        "whole pipeline costs a user to learn what is wrong with images that just arrived "
        "(cleanvision reads the same files once). Ratio = theirs / ours: above 1, ours is "
        "faster. benchmarks/NOTES.md says how it is measured.",
        "",
        *machine(),
        f"- {done.found['cleanvision']['tool']}; ours: {done.found['ours']['tool']}",
        "",
    ]
    out.write_text("\n".join([*heading, *body, ""]))
    click.echo("\n".join(body[: body.index("## Issue types")]))
    click.echo(f"quality: wrote {out}")


if __name__ == "__main__":
    cli()
