"""The user's day with real git and real DVC: repro, push, a teammate's pull."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.store import ImageStore

from conftest import PROJECT, make_image, md5, put

SKELETON = ["dvc.yaml", "params.yaml", ".dvc/config", ".dvc/.gitignore", ".dvcignore",
            ".gitignore", "data/remove.txt", "data/incoming/.gitkeep"]


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    if args[0] == "dvc":
        args = (sys.executable, "-m", "dvc", *args[1:])
    result = subprocess.run(args, cwd=cwd, env=env(), text=True, capture_output=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def repo(tmp_path) -> Path:
    """A fresh clone of the project's skeleton, with its own local DVC remote."""
    root = tmp_path / "repo"
    for rel in SKELETON:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / rel, root / rel)
    shutil.copytree(PROJECT / "pipeline", root / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, "dvc", "remote", "modify", "local", "url", str(tmp_path / "remote"))
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "skeleton")
    return root


def batch(first: int, count: int) -> dict[str, bytes]:
    fmts = ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP")
    return {f"set{first // 100}/{fmts[i % 6].lower()}/{i:04d}.img": make_image(fmts[i % 6], seed=i)
            for i in range(first, first + count)}


def commit(root: Path, message: str) -> None:
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", message)


def lock_entry(root: Path, stage: str) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]


def stored(root: Path) -> dict[str, bytes]:
    with ImageStore(root / "data" / "images.lmdb") as store:
        return {key: store.get(key) for key in store}


def test_repro_push_and_a_teammates_pull_bring_the_same_bytes(repo, tmp_path):
    images = batch(0, 12)
    put(repo / "data" / "incoming", images)
    sh(repo, "dvc", "repro")
    assert stored(repo) == images
    assert sh(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."

    before = md5(repo / "data" / "images.lmdb")
    sh(repo, "dvc", "repro")
    assert md5(repo / "data" / "images.lmdb") == before

    commit(repo, "first batch")
    assert "2 files pushed" in sh(repo, "dvc", "push").stdout  # the store and the manifest
    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    sh(teammate, "dvc", "pull")
    assert md5(teammate / "data" / "images.lmdb") == before
    assert stored(teammate) == images


def test_a_second_batch_is_appended_and_metrics_diff_shows_it(repo):
    first = batch(0, 6)
    put(repo / "data" / "incoming", first)
    sh(repo, "dvc", "repro")
    commit(repo, "first batch")
    shutil.rmtree(repo / "data" / "incoming" / "set0")  # packed images stay in the store
    second = batch(100, 4)
    put(repo / "data" / "incoming", second)
    sh(repo, "dvc", "repro")
    assert stored(repo) == {**first, **second}

    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)
    count = diff["reports/stats.json"]["count"]
    assert (count["old"], count["new"], count["diff"]) == (6, 10, 4)


def test_a_conflict_fails_the_repro_and_changes_nothing(repo):
    images = batch(0, 4)
    put(repo / "data" / "incoming", images)
    sh(repo, "dvc", "repro")
    commit(repo, "first batch")
    before = (md5(repo / "data" / "images.lmdb"), lock_entry(repo, "pack"))
    key = sorted(images)[0]
    put(repo / "data" / "incoming", {key: make_image("PNG", seed=999)})

    result = sh(repo, "dvc", "repro", check=False)
    assert result.returncode != 0
    assert f"different bytes: {key}" in result.stdout + result.stderr
    assert (md5(repo / "data" / "images.lmdb"), lock_entry(repo, "pack")) == before
    assert stored(repo) == images


def test_a_removal_through_remove_txt(repo):
    images = batch(0, 5)
    put(repo / "data" / "incoming", images)
    sh(repo, "dvc", "repro")
    commit(repo, "first batch")
    gone = sorted(images)[2]
    shutil.rmtree(repo / "data" / "incoming" / "set0")
    with open(repo / "data" / "remove.txt", "a") as removals:
        removals.write(gone + "\n")
    sh(repo, "dvc", "repro")
    assert stored(repo) == {k: v for k, v in images.items() if k != gone}
    assert sh(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def test_packing_without_pulling_the_store_first_is_refused(repo, tmp_path):
    images = batch(0, 3)
    put(repo / "data" / "incoming", images)
    sh(repo, "dvc", "repro")
    commit(repo, "first batch")
    sh(repo, "dvc", "push")
    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    new = batch(100, 2)
    put(teammate / "data" / "incoming", new)

    result = sh(teammate, "dvc", "repro", check=False)  # forgot `dvc pull`
    assert result.returncode != 0
    assert "Run `dvc pull data/images.lmdb` first" in result.stdout + result.stderr
    assert not (teammate / "data" / "images.lmdb").exists()

    sh(teammate, "dvc", "pull", "data/images.lmdb")
    sh(teammate, "dvc", "repro")
    assert stored(teammate) == {**images, **new}
