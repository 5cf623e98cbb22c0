"""How the project is put together: what each stage runs, and what reading needs."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from imageshelf.store.writer import write_sharded

from conftest import PROJECT, build_store, items_for, make_image

STAGES = ("ingest", "pack", "validate", "stats")


def _module_file(name: str) -> Path | None:
    base = PROJECT.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def _imported(path: Path, package: str) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(parts + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def code_run_by(script: Path) -> set[str]:
    """The project files a stage script runs: itself and every imageshelf module it
    imports, transitively (parent packages' __init__ included)."""
    files = {script}
    todo = [(script, "")]
    while todo:
        path, package = todo.pop()
        for name in _imported(path, package):
            parts = name.split(".")
            if name == "_env":  # pipeline/_env.py, beside the scripts
                files.add(PROJECT / "pipeline" / "_env.py")
                continue
            if parts[0] != "imageshelf":
                continue
            for depth in range(1, len(parts) + 1):
                module = ".".join(parts[:depth])
                found = _module_file(module)
                if found is not None and found not in files:
                    files.add(found)
                    inside = module if found.name == "__init__.py" else module.rpartition(".")[0]
                    todo.append((found, inside))
    return {str(f.relative_to(PROJECT)) for f in files}


def test_every_stage_runs_its_script_and_declares_all_the_code_it_runs():
    """A code change must re-run the stages that run it: `dvc status` would otherwise
    call stale outputs up to date."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    assert list(stages) == list(STAGES)
    for name, stage in stages.items():
        assert stage["cmd"] == f"python pipeline/{name}.py"
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
        code = code_run_by(PROJECT / "pipeline" / f"{name}.py")
        assert len(code) > 5 and f"imageshelf/stages/{name}.py" in code
        uncovered = sorted(
            f for f in code if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
        )
        assert uncovered == [], f"{name} runs code its deps leave out: {uncovered}"


def test_every_stage_declares_the_params_it_reads():
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        source = (PROJECT / "pipeline" / f"{name}.py").read_text()
        reads = set()
        for section in ("ingest", "pack", "stats"):
            if f"load_params({section.capitalize()}Params" in source:
                reads.add(section)
        if "store_option" in source:  # --store defaults to pack.store
            reads.add("pack.store")
        declared = stage.get("params", [])
        missing = [r for r in reads if not any(r == d or r.startswith(d + ".") for d in declared)]
        assert reads and missing == [], f"{name} reads {sorted(reads)}, declares {declared}"


def test_stage_scripts_are_thin():
    """Options, one call into the library, a summary: the work lives in imageshelf."""
    for name in STAGES:
        tree = ast.parse((PROJECT / "pipeline" / f"{name}.py").read_text())
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert len(functions) == 1, name
        calls = [n for n in ast.walk(functions[0]) if isinstance(n, ast.Call)]
        assert any(getattr(c.func, "id", None) == "run" for c in calls), name
        body = functions[0].body[1:]  # after the docstring
        assert len(body) <= 10, f"pipeline/{name}.py does work the library should do"


BLOCKED = ("click", "dvc", "PIL", "tqdm", "torch", "yaml", "fcntl", "scmrepo")

READER = textwrap.dedent(
    """
    import sys

    BLOCKED = {blocked!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is not installed (blocked by the test)")
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):  # whatever the interpreter loaded at start-up
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]

    from imageshelf import ImageStore
    from imageshelf.dataset import ImageDataset
    from imageshelf.query import select

    for path in sys.argv[1:]:
        store = ImageStore(path)
        keys = store.keys()
        assert len(store) == len(keys) == 12, (path, len(store))
        assert all(store.get(k)[:4] == b"\\x89PNG" for k in keys)
        assert store.metadata(keys[0]) == {{"label": "a"}}
        assert len(list(select(store, "label=a"))) == 6
        dataset = ImageDataset(path, where={{"label": "b"}})
        image, meta = dataset[0]
        assert image == store.get(meta["key"]) and meta["label"] == "b"
    loaded = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
    print("loaded:", loaded)
    """
)


def test_reading_needs_only_the_core_and_no_fcntl(tmp_path):
    """A consumer reads a store with the core install: lmdb and orjson. Opening either
    layout, reading bytes, metadata and filtered records, and the training dataset
    import none of the pipeline's extras, and need no fcntl (which Windows lacks)."""
    images = {f"{'ab'[i % 2]}/{i:02d}.png": make_image("PNG", (8, 8), seed=i) for i in range(12)}
    meta = {key: {"label": key[0]} for key in images}
    single = build_store(tmp_path / "single.lmdb", images, meta)
    sharded = tmp_path / "sharded"
    write_sharded(sharded, items_for(images, meta), shard_bytes=2_000)
    script = tmp_path / "read.py"
    script.write_text(READER.format(blocked=BLOCKED))
    result = subprocess.run(
        [sys.executable, str(script), str(single), str(sharded)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"


def _lint_imports(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess:
    """`lint-imports` as `make lint` runs it, on a copy of the library with `line`
    added to `module` (a path under imageshelf/)."""
    copy = tmp_path / "project"
    shutil.copytree(
        PROJECT / "imageshelf", copy / "imageshelf", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(PROJECT / "pyproject.toml", copy)
    shutil.copytree(PROJECT / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "imageshelf" / module
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as code:
        code.write(f"\n{line}\n")
    lint = Path(sys.executable).parent / "lint-imports"
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": f"{copy}:{copy / 'tests'}"}
    return subprocess.run([str(lint)], cwd=copy, env=env, capture_output=True, text=True)


def test_the_import_contracts_hold_and_a_wrong_import_turns_them_red(tmp_path):
    assert _lint_imports(tmp_path / "as_is", "errors.py", "").returncode == 0
    upward = _lint_imports(tmp_path / "up", "store/format.py", "from ..cache import Table")
    assert upward.returncode != 0 and "imageshelf.store.format -> imageshelf.cache" in upward.stdout
    outside = _lint_imports(tmp_path / "out", "store/format.py", "import yaml")
    assert outside.returncode != 0
    assert "imageshelf.store.format imports yaml, which is not allowed" in outside.stdout
    unplaced = _lint_imports(tmp_path / "new", "webhooks.py", "from . import store")
    assert unplaced.returncode != 0 and "imageshelf.webhooks" in unplaced.stdout
    sideways = _lint_imports(tmp_path / "formats", "annotations/coco.py", "from .yolo import Yolo")
    assert sideways.returncode != 0
    assert "imageshelf.annotations.coco -> imageshelf.annotations.yolo" in sideways.stdout


LONGEST = 60  # lines of code in a function, its docstring aside


def test_no_function_is_longer_than_a_reader_can_hold():
    long = []
    for path in [*PROJECT.joinpath("imageshelf").rglob("*.py"), *PROJECT.glob("pipeline/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = node.body[0]
                if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                    lines -= doc.end_lineno - doc.lineno + 1
                if lines > LONGEST:
                    long.append(f"{path.relative_to(PROJECT)}: {node.name} ({lines} lines)")
    assert not long, long
