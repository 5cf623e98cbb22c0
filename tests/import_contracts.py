"""Import-linter contracts the built-in ones lack (the standard library is always
allowed in the first two):

- `externals`: a whitelist of the packages outside the project that a part of it may
  import.

      [[tool.importlinter.contracts]]
      type = "externals"
      source_modules = ["imageshelf.store"]
      allowed_externals = ["lmdb", "orjson"]

- `scripts`: what the stage scripts of a folder import. They are not a package, so
  grimp never sees them: each file is read here. A script imports `first` before any
  module outside the standard library (the project's environment, pipeline/_env.py),
  then only the modules `allowed` names, "{name}" standing for the script's own name.

      [[tool.importlinter.contracts]]
      type = "scripts"
      folder = "pipeline"
      first = "_env"
      allowed = ["click", "imageshelf.stages.{name}"]

- `dynamic`: no import grimp cannot see (`__import__`, `exec`, `eval`) in the source
  modules; the built-in `forbidden` contract keeps out `importlib` itself.

`make lint` registers them (`contract_types` in pyproject.toml) and runs them with
tests/ on the import path, from the project's folder.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class ExternalsContract(Contract):
    type_name = "externals"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_externals = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        root = self.session_options["root_packages"]
        roots = set(root if isinstance(root, list) else [root])
        allowed = set(self.allowed_externals) | set(sys.stdlib_module_names)  # type: ignore
        wrong = []
        for source in self.source_modules:  # type: ignore
            inside = {source.name, *graph.find_descendants(source.name)}
            for module in sorted(inside):
                for imported in sorted(graph.find_modules_directly_imported_by(module)):
                    top = imported.split(".")[0]
                    if top not in roots and top not in allowed:
                        wrong.append((module, imported))
        return ContractCheck(kept=not wrong, metadata={"wrong": wrong})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, imported in check.metadata["wrong"]:
            output.print_error(f"{module} imports {imported}, which is not allowed here")
            output.new_line()


def imports_of(path: Path) -> list[str]:
    """The modules a script imports, in the order written, at any depth of its code
    (`from a import b`: a)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return [name for _line, name in sorted(found)]


def _standard(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


class ScriptsContract(Contract):
    type_name = "scripts"

    folder = fields.StringField()
    first = fields.StringField()
    allowed = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        wrong = []
        for script in sorted(Path(str(self.folder)).glob("*.py")):
            allowed = [a.replace("{name}", script.stem) for a in self.allowed]  # type: ignore
            outside = [m for m in imports_of(script) if not _standard(m)]
            if script.stem != self.first and outside[:1] != [self.first]:
                wrong.append(f"{script} imports {(outside or ['nothing'])[0]} before {self.first}")
            for module in outside:
                if module != self.first and not any(
                    module == a or module.startswith(a + ".") for a in allowed
                ):
                    wrong.append(f"{script} imports {module}, which is not allowed here")
        return ContractCheck(kept=not wrong, metadata={"wrong": wrong})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["wrong"]:
            output.print_error(line)
            output.new_line()


DYNAMIC = ("__import__", "exec", "eval")


def _source_of(module: str) -> Path | None:
    """The file of a module of the project, found without importing anything."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)  # a top-level name: found, not imported
    if spec is None or not spec.origin:
        return None
    base = Path(spec.origin).parent.joinpath(*rest)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


class DynamicContract(Contract):
    type_name = "dynamic"

    source_modules = fields.ListField(subfield=fields.ModuleField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        wrong = []
        for source in self.source_modules:  # type: ignore
            for module in sorted({source.name, *graph.find_descendants(source.name)}):
                path = _source_of(module)
                if path is None:
                    continue
                tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
                for node in ast.walk(tree):
                    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in DYNAMIC:
                        wrong.append(f"{module} calls {node.func.id} (line {node.lineno})")  # type: ignore[attr-defined]
        return ContractCheck(kept=not wrong, metadata={"wrong": wrong})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["wrong"]:
            output.print_error(f"{line}: an import no contract can see")
            output.new_line()
