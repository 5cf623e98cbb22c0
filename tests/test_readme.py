"""The README's and docs' promises point at tests that exist; their links lead somewhere."""

from __future__ import annotations

import re

from conftest import PROJECT

DOCS = [
    PROJECT / "README.md",
    *sorted((PROJECT / "docs").glob("*.md")),
    PROJECT / "data" / "annotations" / "README.md",  # the first thing a user editing labels reads
]


def test_every_test_the_readme_and_docs_name_exists():
    text = "\n".join(doc.read_text() for doc in DOCS)
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    assert len(named) >= 40
    missing = [
        f"{file}::{test}"
        for file, test in named
        if f"def {test}(" not in (PROJECT / "tests" / file).read_text()
    ]
    assert missing == []


def test_every_guarantee_is_listed_in_the_readme_and_tied_to_a_test_in_the_docs():
    readme = (PROJECT / "README.md").read_text()
    full = (PROJECT / "docs" / "GUARANTEES.md").read_text()
    promises = re.split(r"^\d+\. ", full, flags=re.M)[1:]
    assert len(promises) >= 15
    for promise in promises:
        title = re.match(r"\*\*(.+?)\*\*", promise).group(1)
        assert title in readme, title
        assert re.search(r"`test_\w+\.py(::test_\w+)?`", promise), title


def test_the_readme_stays_short_and_every_local_link_leads_to_a_file():
    # Two commands, then a screen per topic; details in docs/. (260 before the viewer and
    # "Many machines" sections, 280 before SQL's three examples: their issues asked for them.)
    assert len((PROJECT / "README.md").read_text().splitlines()) <= 310
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def test_the_training_example_runs_as_written(tmp_path):
    """The README's "Training with the store" example, run as a script against a store
    packed by the pipeline: a user copying it gets a batch of tensors and labels."""
    import subprocess
    import sys

    from conftest import command_line, make_image, put

    section = (PROJECT / "README.md").read_text().split("## Training with the store", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    files = {
        f"{label}/{i:03d}.png": make_image("PNG", (40, 30), seed=i)
        for i, label in enumerate(["bird", "cat", "dog", "fish"] * 30)
    }
    files["labels.csv"] = "file,label\n" + "".join(f"{k},{k.split('/')[0]}\n" for k in files)
    put(tmp_path / "data" / "incoming", files)
    (tmp_path / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    for command in ("ingest", "pack"):
        subprocess.run(command_line(command), cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "example.py").write_text(example)
    result = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=300,
        env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("torch.Size([32, 3, 64, 64]) tensor([")


def test_the_days_commands_leave_nothing_uncommitted(tmp_path):
    """README's "A day with the dataset", run as written, on a day that also changed a
    param and a file in data/annotations/ (as the README invites): step 3 records all of
    it, so a teammate's `git pull && dvc pull` gets what dvc.lock says."""
    import subprocess

    from conftest import batch, env, make_repo, put, sh

    repo = make_repo(tmp_path)
    section = (PROJECT / "README.md").read_text().split("## A day with the dataset", 1)[1]
    day = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    put(tmp_path / "home" / "new_scans", batch(0, 4))
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("thumbnail_px: 64", "thumbnail_px: 48"))
    labels = "file,label\n" + "".join(f"{key},cat\n" for key in batch(0, 4))
    put(repo / "data" / "annotations", {"labels.csv": labels})

    result = subprocess.run(
        ["bash", "-e", "-c", day],
        cwd=repo,
        env={**env(), "HOME": str(tmp_path / "home")},
        text=True,
        capture_output=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sh(repo, "git", "status", "--porcelain").stdout == ""
    committed = sh(repo, "git", "show", "--name-only", "--format=", "HEAD").stdout.split()
    assert {"params.yaml", "data/annotations/labels.csv", "dvc.lock"} <= set(committed)


def _headings(doc):
    """The headings of a Markdown file (not the `# comments` of its code blocks)."""
    headings, fenced = [], False
    for line in doc.read_text().splitlines():
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#+ ", line):
            headings.append(line.lstrip("#").strip())
    return headings


def test_every_quoted_section_and_anchor_exists():
    """A pointer to a section (`PIPELINE.md, "Growing past a few GB"`, a link's
    `#growing-past-a-few-gb`) names a heading of that file: sections move."""

    def found(doc, target, wanted):
        file = doc.parent / target if (doc.parent / target).exists() else PROJECT / target
        titles = [re.split(r":| \(", title)[0] for title in _headings(file)]
        slugs = [
            re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in _headings(file)
        ]
        return wanted in titles or wanted in slugs

    quoted = re.compile(r"`?([\w./-]+\.md)`?\)?,\s+\"([^\"]+)\"")
    anchored = re.compile(r"\]\(([^)#:]+\.md)#([^)]+)\)")
    checked, wrong = 0, []
    for doc in DOCS:
        text = doc.read_text()
        for target, wanted in [*quoted.findall(text), *anchored.findall(text)]:
            checked += 1
            if not found(doc, target, " ".join(wanted.split())):
                wrong.append(f"{doc.relative_to(PROJECT)}: {target}, {wanted!r}")
    assert checked >= 8
    assert wrong == []
