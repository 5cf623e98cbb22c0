"""How the project is put together: what each stage runs, and what reading needs."""

from __future__ import annotations

import ast
import dataclasses
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from imageshelf.project.params import SECTIONS
from imageshelf.project.paths import DEFAULTS, WHERE, Project
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
        own = (f"imageshelf/stages/{name}.py", f"imageshelf/stages/{name}/__init__.py")
        assert len(code) > 5 and any(path in code for path in own)
        uncovered = sorted(
            f for f in code if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
        )
        assert uncovered == [], f"{name} runs code its deps leave out: {uncovered}"


def test_no_stage_declares_code_it_does_not_run():
    """The converse, folder by folder: a stage declares a library folder only if it runs
    code in it, and the command line and the stages file by file (another command or
    another stage is not its code). So a change to code a stage never runs (the
    viewer's CSS, another stage) leaves it up to date: `dvc repro` does not redo it."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        code = code_run_by(PROJECT / "pipeline" / f"{name}.py")
        for dep in stage["deps"]:
            if not dep.startswith(("imageshelf", "pipeline")):
                continue
            path = PROJECT / dep
            if path.is_dir():
                assert any(c.startswith(dep + "/") for c in code), f"{name}: {dep} runs no code"
                assert dep.split("/")[1] not in ("cli", "viewer"), f"{name}: {dep} whole"
                assert dep.count("/") > 1 or dep != "imageshelf/stages", f"{name}: {dep} whole"
            else:
                assert dep in code, f"{name} declares {dep}, which it does not run"


def test_every_stage_declares_the_params_it_reads():
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        source = (PROJECT / "pipeline" / f"{name}.py").read_text()
        reads = set()
        for section in ("ingest", "pack", "stats", "quality"):
            if f"settings({section.capitalize()}Params" in source:
                reads.add(section)
        if "project.store" in source:  # ${pack.store} in dvc.yaml
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
    from imageshelf.read.dataset import ImageDataset
    from imageshelf.read.query import select

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


def test_reading_an_image_by_key_builds_no_value_class(tmp_path):
    """The first image in a fresh process imports neither dataclasses nor typing (the
    two exceptions imageshelf/store/__init__.py measures); a record then brings the
    value classes, as a plain program would."""
    images = {f"a/{i}.png": make_image("PNG", (8, 8), seed=i) for i in range(3)}
    path = build_store(tmp_path / "s.lmdb", images)
    code = textwrap.dedent(
        f"""
        import sys
        from imageshelf import ImageStore
        store = ImageStore({str(path)!r})
        assert store.get("a/1.png")[:4] == b"\\x89PNG"
        avoided = ("dataclasses", "typing", "imageshelf.store.values")
        print(sorted(m for m in avoided if m in sys.modules))
        assert store.record("a/1.png").info.format == "png" and len(store) == 3
        print("imageshelf.store.values" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]


def _lint_imports(tmp_path: Path, changes: dict[str, str]) -> str:
    """What `lint-imports` says, run as `make lint` runs it, on a copy of the library and
    the stage scripts with each line of `changes` added to its file (a path in the
    project; a line ending in a newline goes first in the file, others last); "" if
    every contract holds."""
    copy = tmp_path / "project"
    for folder in ("imageshelf", "pipeline", "tests"):
        shutil.copytree(
            PROJECT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT / "pyproject.toml", copy)
    for rel, line in changes.items():
        target = copy / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        code = target.read_text() if target.exists() else ""
        target.write_text(line + code if line.endswith("\n") else f"{code}\n{line}\n")
    lint = Path(sys.executable).parent / "lint-imports"
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": f"{copy}:{copy / 'tests'}"}
    result = subprocess.run([str(lint)], cwd=copy, env=env, capture_output=True, text=True)
    return "" if result.returncode == 0 else " ".join(result.stdout.split())


WRONG_IMPORTS = {  # a file, a line added to it, what lint-imports says of it
    "imageshelf/store/format.py": (
        "from ..state.cache import Table\nimport yaml\nfrom . import writer",
        [
            "imageshelf.store.format -> imageshelf.state.cache",
            "imageshelf.store.format imports yaml, which is not allowed",
            # inside the store: the format every reader and writer shares importing the
            # writer (a loop), a reader importing upwards, a module no layer names
            "imageshelf.store.format -> imageshelf.store.writer",
        ],
    ),
    "imageshelf/store/file.py": (
        "from .reader import ImageStore",
        ["imageshelf.store.file -> imageshelf.store.reader"],
    ),
    "imageshelf/store/cache.py": ("from . import format", ["imageshelf.store.cache"]),
    # annotations: each format's module stands beside the others, never on one
    "imageshelf/annotations/coco.py": (
        "from .yolo import Yolo",
        ["imageshelf.annotations.coco -> imageshelf.annotations.yolo"],
    ),
    "imageshelf/webhooks.py": ("from . import store", ["imageshelf.webhooks"]),
    # importlib, and the imports no contract could see
    "imageshelf/store/reader.py": (
        'import importlib\n__import__("imageshelf.cli.main")',
        ["imageshelf.store.reader -> importlib", "imageshelf.store.reader calls __import__"],
    ),
    # the stage scripts, which are no package
    "pipeline/pack.py": (
        "from imageshelf.stages.ingest import run as x",
        ["pipeline/pack.py imports imageshelf.stages.ingest, which is not allowed"],
    ),
    "pipeline/stats.py": ("import yaml", ["pipeline/stats.py imports yaml, which is not allowed"]),
    "pipeline/validate.py": (
        "import click\n",
        ["pipeline/validate.py imports click before _env"],
    ),
}


def test_the_import_contracts_hold_and_a_wrong_import_turns_them_red(tmp_path):
    assert _lint_imports(tmp_path / "as_is", {}) == ""
    said = _lint_imports(tmp_path / "wrong", {f: line for f, (line, _) in WRONG_IMPORTS.items()})
    missed = [says for _, (_, lines) in WRONG_IMPORTS.items() for says in lines if says not in said]
    assert said and missed == [], said


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


def test_every_setting_has_its_checker():
    """A setting is declared with its default and the check a value given in
    params.yaml must pass (params.setting): none is accepted unchecked."""
    for section, kind in SECTIONS.items():
        for spec in dataclasses.fields(kind):
            assert callable(spec.metadata.get("check")), f"{section}.{spec.name} has no checker"
            default = (
                spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
            )
            given = list(default) if isinstance(default, tuple) else default
            assert spec.metadata["check"](given) is None, f"{section}.{spec.name}: its default"


def test_params_yaml_states_every_default():
    """Every knob lives in params.yaml, at the value the dataclass gives a repository
    that has no params.yaml (a consumer that imported the store): the two agree."""
    document = yaml.safe_load((PROJECT / "params.yaml").read_text())
    assert list(document) == list(SECTIONS)
    for section, kind in SECTIONS.items():
        stated = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in document[section].items()
        }
        defaults = {spec.name: getattr(kind(), spec.name) for spec in dataclasses.fields(kind)}
        assert stated == defaults, section


def test_the_project_reads_every_path_as_dvc_does(tmp_path):
    """Project finds each path in dvc.yaml where DVC's own parse of it puts it: each
    output by its `type:` (the store with ${pack.store} filled in), each other path in
    its stage's meta: (a dep of that stage, but for the folder DVC must never walk).
    Every output is typed, so a new one cannot be taken for another."""
    from dvc.repo import Repo

    project = Project.load(PROJECT)
    with Repo(str(PROJECT)) as repo:
        stages = {stage.name: stage for stage in repo.index.stages}
        for name, (stage, how, what) in WHERE.items():
            found = stages[stage]
            if how == "meta":
                declared = found.meta[what]
                deps = {dep.def_path for dep in found.deps}
                assert name == "incoming" or declared in deps, f"{stage}: {what} is no dep"
            else:
                typed = [out.def_path for out in found.outs if out.annot.type == what]
                assert len(typed) == 1, (stage, what, typed)
                declared = typed[0]
            assert project.path(name) == PROJECT / declared, name
        untyped = [
            (s.name, o.def_path) for s in stages.values() for o in s.outs if not o.annot.type
        ]
    assert untyped == []


def test_a_repository_without_dvc_yaml_has_the_template_s_paths(tmp_path):
    """A repository that imported the store has no dvc.yaml: the defaults stand in, and
    they are the template's, typed once in project/paths.py."""
    bare = Project.load(tmp_path)
    ours = Project.load(PROJECT)
    for name in WHERE:
        assert bare.path(name).relative_to(tmp_path) == ours.path(name).relative_to(PROJECT)
    assert DEFAULTS["store"] == "${pack.store}"


PATHS = [
    "data/catalog",
    "reports/pack.json",
    "data/staged.jsonl",
    "data/incoming",
    "data/images.lmdb",
]


def test_every_path_is_typed_in_one_place():
    """dvc.yaml says where things are; the library and the stage scripts read it there
    (project/paths.py keeps the template's, for a repository without one). The store's path is
    a setting, pack.store: its default is project/params.py's."""
    typed = {}
    for path in [*PROJECT.joinpath("imageshelf").rglob("*.py"), *PROJECT.glob("pipeline/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in PATHS:
                typed.setdefault(node.value, set()).add(str(path.relative_to(PROJECT)))
    homes = {path: {"imageshelf/project/paths.py"} for path in PATHS[:4]}
    assert typed == {**homes, "data/images.lmdb": {"imageshelf/project/params.py"}}


def test_a_path_dvc_yaml_gives_that_cannot_be_used_is_one_line(tmp_path):
    """dvc.yaml is read as DVC reads it, and what it says is checked before use: a path
    outside the repository, a ${...} that is no path setting, YAML that does not parse."""
    from imageshelf.errors import ShelfError

    template = (PROJECT / "dvc.yaml").read_text()
    for changed, says in [
        (
            template.replace("- data/catalog:", "- ../catalog:"),
            "pack's catalog must be a path inside",
        ),
        (
            template.replace("${pack.store}", "${pack.shard_mb}"),
            "${pack.shard_mb} names no path setting",
        ),
        ("stages: [\n", "dvc.yaml: not valid YAML"),
    ]:
        (tmp_path / "dvc.yaml").write_text(changed)
        with pytest.raises(ShelfError) as caught:
            {name: Project.load(tmp_path).path(name) for name in WHERE}
        message = str(caught.value)
        assert says in message and "\n" not in message, message
    (tmp_path / "dvc.yaml").write_text(
        template.replace("incoming: data/incoming", "incoming: /srv/in")
    )
    assert Project.load(tmp_path).incoming == Path("/srv/in")  # DVC never tracks it


def test_the_map_of_layers_in_developing_md_is_the_one_make_lint_checks():
    """docs/DEVELOPING.md's table of folders is drawn from pyproject.toml's contracts and
    each folder's docstring: `python tests/layers_doc.py --write` redraws it."""
    import layers_doc

    assert layers_doc.drawn_in_doc() == layers_doc.render()
