"""A consumer: another git repository that `dvc import`s the store, installs only the
library's core, reads images and metadata, and compares versions. docs/TEAMS.md, "Using the
store from another repository"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT, command_line, commit, make_image, publish, sh, sharded_params

READ = """
import json, sys
from imageshelf import ImageStore

store = ImageStore(sys.argv[1])
print(json.dumps({key: [store.get(key).hex(), store.metadata(key)] for key in store}))
assert "click" not in sys.modules and "dvc" not in sys.modules
"""


@pytest.fixture(scope="module")
def core_python(tmp_path_factory) -> Path:
    """A fresh virtual environment with the library's core installed, as docs/TEAMS.md tells a
    consumer to: lmdb and orjson come with it, nothing else."""
    root = tmp_path_factory.mktemp("core")
    source = root / "src"  # a copy: installing builds in the source tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, source / name)
    shutil.copytree(
        PROJECT / "imageshelf", source / "imageshelf", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        check=True,
        capture_output=True,
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert {"imageshelf", "lmdb", "orjson"} <= names
    assert not names & {"click", "dvc", "pillow", "pyyaml", "tqdm", "torch"}
    return python


def images(first: int, count: int, folder: str) -> dict[str, bytes]:
    return {
        f"{folder}/{i:03d}.png": make_image("PNG", (16, 16), seed=i)
        for i in range(first, first + count)
    }


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_a_consumer_imports_the_store_reads_it_with_the_core_and_diffs_versions(
    repo, tmp_path, core_python, layout
):
    if layout == "sharded":
        sharded_params(repo)
    store = "data/images.lmdb" if layout == "single" else "data/images"
    first = images(0, 6, "a")
    labels = "path,label\n" + "".join(f"{key},old\n" for key in first)
    publish(repo, {**first, "labels.csv": labels}, "v1")
    sh(repo, "git", "tag", "v1")
    second = images(100, 3, "b")
    relabeled = sorted(first)[0]
    (repo / "data" / "incoming" / "labels.csv").write_text(
        labels.replace(f"{relabeled},old", f"{relabeled},new")
    )
    publish(repo, second, "v2")
    sh(repo, "git", "tag", "v2")

    # The consumer's own repository, as docs/TEAMS.md, "Using the store from another repository".
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    sh(consumer, "git", "init", "-q", "-b", "main")
    sh(consumer, "dvc", "init", "-q")
    (consumer / "data").mkdir()
    sh(consumer, "dvc", "import", str(repo), store, "-o", store, "--rev", "v1")
    sh(consumer, "dvc", "import", str(repo), "data/catalog", "-o", "data/catalog", "--rev", "v1")
    commit(consumer, "dataset v1")
    sh(consumer, "dvc", "update", "--rev", "v2", f"{store}.dvc", "data/catalog.dvc")
    commit(consumer, "dataset v2")

    read = subprocess.run(
        [str(core_python), "-c", READ, store], cwd=consumer, capture_output=True, text=True
    )
    assert read.returncode == 0, read.stderr
    got = {
        key: (bytes.fromhex(data), meta) for key, (data, meta) in json.loads(read.stdout).items()
    }
    expected_labels = {key: {"label": "new" if key == relabeled else "old"} for key in first}
    assert got == {
        **{k: (v, expected_labels[k]) for k, v in first.items()},
        **{k: (v, {}) for k, v in second.items()},
    }

    # Versions compared through the catalog imported beside the store...
    here = json.loads(sh(consumer, *command_line("diff", "HEAD~1", "HEAD", "--json")).stdout)
    # ...or straight from the repository it came from, with nothing else imported.
    there = json.loads(
        sh(consumer, *command_line("diff", "v1", "v2", "--repo", str(repo), "--json")).stdout
    )
    for diff in (here, there):
        assert [e["key"] for e in diff["added"]] == sorted(second)
        assert [(e["key"], e["fields"]) for e in diff["relabeled"]] == [
            (relabeled, {"label": ["old", "new"]})
        ]
        assert diff["removed"] == diff["changed"] == []

    no_cli = subprocess.run(
        [str(core_python.parent / "imageshelf"), "ls"], cwd=consumer, capture_output=True, text=True
    )
    assert no_cli.returncode == 1
    assert no_cli.stderr.strip() == (
        "imageshelf: the command line needs the cli extra (click "
        "is not installed): pip install 'imageshelf[cli]'"
    )
