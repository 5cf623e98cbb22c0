"""Helpers every test uses: small real images, made on the spot, and real stores."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from imageshelf.images.recognise import describe
from imageshelf.store import ImageStore
from imageshelf.store.writer import Item, rebuild

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")
EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "TIFF": "tif",
    "BMP": "bmp",
}


def make_image(fmt: str = "PNG", size: tuple[int, int] = (32, 24), seed: int = 0) -> bytes:
    """A small real image in `fmt`, the same bytes for the same arguments."""
    rng = random.Random(seed)
    pixels = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(out, fmt)
    return out.getvalue()


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def items_for(
    images: Mapping[str, bytes], metadata: Mapping[str, dict[str, Any]] | None = None
) -> list[Item]:
    metadata = metadata or {}
    return [
        Item(describe(key, data, metadata.get(key, {})), lambda data=data: data)
        for key, data in images.items()
    ]


def build_store(
    path: Path, images: Mapping[str, bytes], metadata: Mapping[str, dict[str, Any]] | None = None
) -> Path:
    rebuild(path, items_for(images, metadata))
    return path


@pytest.fixture
def six_formats() -> dict[str, bytes]:
    """One image per supported format, keyed like files in nested folders."""
    return {
        f"{fmt.lower()}/img_{i}.{EXTENSIONS[fmt]}": make_image(fmt, (40 + i, 30), seed=i)
        for i, fmt in enumerate(FORMATS)
    }


PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder laid out like the project (params.yaml, data/incoming/), as the cwd."""
    (tmp_path / "data" / "incoming").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def put(folder: Path, files: Mapping[str, bytes | str]) -> None:
    """Write files under `folder`, creating subfolders."""
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        path.write_bytes(data)


STAGES = ("ingest", "pack", "validate", "stats")

# Modules whose every test runs real git and DVC, or a Ray cluster: `make test-fast`
# (the edit loop) leaves them to `make test`.
_MODULE_MARKS = {
    "test_remote": "dvc",
    "test_s3": "dvc",
    "test_consumer": "dvc",
    "test_kills": "dvc",
    "test_teamwork": "dvc",
    "test_dvc_pipeline": "dvc",
    "test_cluster_readers": "ray",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what `make test-fast` skips: a test using a real repository (`repo`) is
    `dvc`, one driving Chromium (`browser`, `page`) is `browser`."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "repo" in fixtures:
            item.add_marker(pytest.mark.dvc)
        if fixtures & {"browser", "page"}:
            item.add_marker(pytest.mark.browser)
        module = getattr(item, "module", None)
        mark = _MODULE_MARKS.get(module.__name__ if module is not None else "")
        if mark is not None:
            item.add_marker(getattr(pytest.mark, mark))


def command_line(*args: str) -> list[str]:
    """How a user runs a stage (`python pipeline/pack.py`, as dvc.yaml does) or a tool
    (`python -m imageshelf ls`)."""
    if args[0] in STAGES:
        return [sys.executable, str(PROJECT / "pipeline" / f"{args[0]}.py"), *args[1:]]
    return [sys.executable, "-m", "imageshelf", *args]


_scripts: dict[str, Any] = {}


def stage_script(name: str) -> Any:
    """The click command of pipeline/NAME.py, loaded from its file as DVC would run it."""
    if str(PROJECT / "pipeline") not in sys.path:
        sys.path.append(str(PROJECT / "pipeline"))  # as `python pipeline/NAME.py` has it
    if name not in _scripts:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            f"pipeline_{name}", PROJECT / "pipeline" / f"{name}.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _scripts[name] = getattr(module, name)
    return _scripts[name]


def stage(*args: str):
    """Run a stage script (ingest, pack, validate, stats) or a tool (ls, export, ...)
    in the current folder, in this process."""
    from click.testing import CliRunner

    from imageshelf.cli.main import cli

    if args[0] in STAGES:
        return CliRunner().invoke(stage_script(args[0]), list(args[1:]), catch_exceptions=False)
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ingest_and_pack(store: str = "data/images.lmdb") -> ImageStore:
    """Run ingest and pack in the current folder, as `dvc repro` would; the store."""
    for name in ("ingest", "pack"):
        result = stage(name)
        assert result.exit_code == 0, result.output
    return ImageStore(Path(store).resolve())  # this folder's, wherever the caller goes next


def data_of(store: ImageStore) -> list[tuple[Any, ...]]:
    """What a store holds, record by record: key, image info, metadata (as canonical
    JSON: 1 and 1.0 differ), split and paired images; not which fields came from
    tracked sources (`annotated`), which a store ingested elsewhere cannot know."""
    from imageshelf.store.format import canonical_json

    return [(r.key, r.info, canonical_json(r.metadata), r.split, r.paired) for r in store.records()]


def report(name: str) -> dict[str, Any]:
    import json

    return json.loads(Path("reports", f"{name}.json").read_text())


# ------------------------------------------------ the peers' loaders, as references

HF_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def hf_load(data_dir: Path, cache: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """split -> image path relative to data_dir -> the row's other columns, as datasets
    loads the folder. A row of several images (`file_names`) is listed under each."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(data_dir), cache_dir=str(cache))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    root = os.path.realpath(data_dir)
    for split, table in loaded.items():
        columns = {
            name: feature
            for name, feature in table.features.items()
            if isinstance(feature, datasets.Image)
            or (isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.Image))
        }
        for name in columns:
            feature = columns[name]
            table = table.cast_column(
                name,
                datasets.Image(decode=False)
                if isinstance(feature, datasets.Image)
                else datasets.List(datasets.Image(decode=False)),
            )
        rows = out.setdefault(HF_SPLITS[split], {})
        for row in table:
            images = []
            for name in columns:
                value = row.pop(name)
                images += value if isinstance(value, list) else [value]
            for image in images:
                rows[os.path.relpath(os.path.realpath(image["path"]), root)] = row
    return out


# ------------------------------------------------ real git and DVC, in a temp repository

SKELETON = [
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "data/remove.txt",
    "data/reviewed.jsonl",
    "data/incoming/.gitkeep",
    "data/annotations/README.md",
]


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
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
    return make_repo(tmp_path)


def make_repo(tmp_path: Path) -> Path:
    """The project's skeleton in tmp_path/repo, committed, its remote tmp_path/remote."""
    root = tmp_path / "repo"
    for rel in SKELETON:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / rel, root / rel)
    for code in ("pipeline", "imageshelf"):
        shutil.copytree(PROJECT / code, root / code, ignore=shutil.ignore_patterns("__pycache__"))
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, "dvc", "remote", "modify", "local", "url", str(tmp_path / "remote"))
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "skeleton")
    return root


def batch(first: int, count: int) -> dict[str, bytes]:
    fmts = ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP")
    return {
        f"set{first // 100}/{fmts[i % 6].lower()}/{i:04d}.img": make_image(fmts[i % 6], seed=i)
        for i in range(first, first + count)
    }


def commit(root: Path, message: str) -> None:
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", message)


def packed(root: Path, images: dict[str, bytes], message: str) -> None:
    """Drop images into data/incoming/, `dvc repro`, commit."""
    put(root / "data" / "incoming", images)
    sh(root, "dvc", "repro")
    commit(root, message)


def publish(root: Path, images: dict[str, bytes], message: str) -> None:
    """A user's round: drop images in, `dvc repro`, commit, `dvc push`."""
    packed(root, images, message)
    sh(root, "dvc", "push")


# What `dvc status` says when nothing changed: ingest runs on every `dvc repro`
# (always_changed), looking at data/incoming/ itself, so DVC never walks it.
UP_TO_DATE = "ingest:\n\talways changed"


def up_to_date(root: Path) -> bool:
    return sh(root, "dvc", "status").stdout.strip() == UP_TO_DATE


def lock_entry(root: Path, stage: str) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]


def stored(root: Path) -> dict[str, bytes]:
    with ImageStore(root / "data" / "images.lmdb") as store:
        return {key: store.get(key) for key in store}


def sharded_params(root: Path, shard_mb: int = 1) -> None:
    params = root / "params.yaml"
    text = params.read_text().replace("layout: single", "layout: sharded")
    text = text.replace("store: data/images.lmdb", "store: data/images")
    params.write_text(text.replace("shard_mb: 1024", f"shard_mb: {shard_mb}"))


def big_images(first: int, count: int) -> dict[str, bytes]:
    """About 20 KB each, like the benchmark's."""
    return {
        f"set{first // 1000}/{i:05d}.png": make_image("PNG", (80, 80), seed=i)
        for i in range(first, first + count)
    }
