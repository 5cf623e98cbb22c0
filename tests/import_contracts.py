"""An import-linter contract the built-in ones lack: a whitelist of the packages outside
the project that a part of it may import (the standard library is always allowed).

    [[tool.importlinter.contracts]]
    type = "externals"
    source_modules = ["imageshelf.store"]
    allowed_externals = ["lmdb", "orjson"]

`make lint` registers it (`contract_types` in pyproject.toml) and runs it with
tests/ on the import path.
"""

from __future__ import annotations

import sys

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
