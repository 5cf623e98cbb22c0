"""Where everything of a project lives, and its settings: dvc.yaml says every path,
params.yaml every setting, and this is the one reader of both that the stage scripts and
the tools share.

dvc.yaml marks each output with DVC's own `type:` (`type: catalog`), and names in a
stage's `meta:` the paths that are no output (the incoming folder, which DVC must never
walk; pack's annotations and removal list, stats' reviewed findings, which their deps
list too). The store's path is
`${pack.store}` there, read from params.yaml and checked as the setting it is. Reading
both takes no DVC import: `imageshelf ls` stays fast.

    project = Project.load()            # the current folder's dvc.yaml and params.yaml
    project.store, project.catalog      # Path("data/images.lmdb"), Path("data/catalog")
    project.settings(PackParams)        # params.yaml's pack section, checked

A path given on the command line (`--store`) takes the place of dvc.yaml's. Where there
is no dvc.yaml (a repository that imported the store), or it marks no such output (one
written before outputs were typed), the template's paths (DEFAULTS) stand in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import ShelfError
from .params import PARAMS, SECTIONS, load_params

PIPELINE = "dvc.yaml"

# Each path by its name: the stage of dvc.yaml that declares it, and how (its output of
# that `type:`, or its `meta:` entry of that name).
WHERE: dict[str, tuple[str, str, str]] = {
    "incoming": ("ingest", "meta", "incoming"),
    "manifest": ("ingest", "type", "manifest"),
    "ingest_report": ("ingest", "type", "report"),
    "store": ("pack", "type", "store"),
    "catalog": ("pack", "type", "catalog"),
    "pack_report": ("pack", "type", "report"),
    "annotations": ("pack", "meta", "annotations"),
    "remove_list": ("pack", "meta", "remove_list"),
    "validate_report": ("validate", "type", "report"),
    "metrics": ("stats", "type", "metrics"),
    "plots": ("stats", "type", "plots"),
    "findings": ("stats", "type", "findings"),
    "reviewed": ("stats", "meta", "reviewed"),
}
# The template's dvc.yaml (test_project.py checks they agree), for a repository without one.
DEFAULTS: dict[str, str] = {
    "incoming": "data/incoming",
    "manifest": "data/staged.jsonl",
    "ingest_report": "reports/ingest.json",
    "store": "${pack.store}",
    "catalog": "data/catalog",
    "pack_report": "reports/pack.json",
    "annotations": "data/annotations",
    "remove_list": "data/remove.txt",
    "validate_report": "reports/validate.json",
    "metrics": "reports/stats.json",
    "plots": "reports/plots",
    "findings": "reports/quality.json",
    "reviewed": "data/reviewed.jsonl",
}
UNTRACKED = "incoming"  # the one path DVC never tracks: it may lie anywhere
_INTERPOLATION = re.compile(r"\$\{\s*([^}\s]+)\s*\}")
P = TypeVar("P")


class ProjectError(ShelfError):
    """A dvc.yaml whose paths cannot be read; the message names the file and the path."""


@dataclass(frozen=True)
class Project:
    """The paths and settings of the project at `root`. Paths are as dvc.yaml writes
    them, under `root` (Path("data/catalog") for the current folder)."""

    root: Path = Path(".")
    params_file: Path = Path(PARAMS)
    given: Mapping[str, Path] = field(default_factory=dict)  # from the command line
    _settings: dict[type, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(
        cls,
        root: str | os.PathLike[str] = ".",
        params: str | os.PathLike[str] | None = None,
        **given: str | os.PathLike[str] | None,
    ) -> Project:
        """The project at `root`: its dvc.yaml and params.yaml (or `params`), with the
        paths in `given` (by name: store=..., manifest=...; None: not given) in place of
        dvc.yaml's."""
        unknown = sorted(set(given) - set(WHERE))
        if unknown:
            raise TypeError(f"no path named {unknown[0]}; the paths: {', '.join(WHERE)}")
        root = Path(root)
        chosen = {name: Path(path) for name, path in given.items() if path is not None}
        return cls(root, Path(params) if params is not None else root / PARAMS, chosen)

    def settings(self, kind: type[P]) -> P:
        """A section of params.yaml (IngestParams, PackParams...), defaults filled in,
        checked (ParamsError, one line, if it cannot be used)."""
        if kind not in self._settings:
            self._settings[kind] = load_params(kind, self.params_file)
        found: P = self._settings[kind]
        return found

    def path(self, name: str) -> Path:
        """The path named `name` (a key of WHERE): given, else as dvc.yaml declares it."""
        if name in self.given:
            return self.given[name]
        stage, _how, what = WHERE[name]
        text = self._declared.get(name, DEFAULTS[name])
        value = _INTERPOLATION.sub(lambda found: self._setting(found[1]), text)
        if name != UNTRACKED and not _inside(value):
            raise ProjectError(
                f"{self._pipeline}: {stage}'s {what} must be a path inside the repository "
                f"(got {value!r}): DVC tracks it there"
            )
        return self.root / value

    @property
    def incoming(self) -> Path:
        return self.path("incoming")

    @property
    def manifest(self) -> Path:
        return self.path("manifest")

    @property
    def store(self) -> Path:
        return self.path("store")

    @property
    def catalog(self) -> Path:
        return self.path("catalog")

    @property
    def annotations(self) -> Path:
        return self.path("annotations")

    @property
    def remove_list(self) -> Path:
        return self.path("remove_list")

    @property
    def ingest_report(self) -> Path:
        return self.path("ingest_report")

    @property
    def pack_report(self) -> Path:
        return self.path("pack_report")

    @property
    def validate_report(self) -> Path:
        return self.path("validate_report")

    @property
    def metrics(self) -> Path:
        return self.path("metrics")

    @property
    def findings(self) -> Path:
        return self.path("findings")

    @property
    def plots(self) -> Path:
        return self.path("plots")

    @property
    def reviewed(self) -> Path:
        return self.path("reviewed")

    # -- reading dvc.yaml
    @property
    def _pipeline(self) -> Path:
        return self.root / PIPELINE

    @cached_property
    def _declared(self) -> dict[str, str]:
        """Each named path as dvc.yaml writes it (`${pack.store}` not yet filled in);
        those it does not declare are left out."""
        stages = _stages(self._pipeline)
        declared = {}
        for name, (stage, how, what) in WHERE.items():
            found = _declared_in(stages.get(stage), how, what)
            if found is not None:
                declared[name] = found
        return declared

    def _setting(self, name: str) -> str:
        """The value of `${name}` in dvc.yaml: a setting of params.yaml, checked."""
        section, _dot, key = name.partition(".")
        kind = SECTIONS.get(section)
        value = getattr(self.settings(kind), key, None) if kind is not None else None
        if not isinstance(value, str):
            raise ProjectError(
                f"{self._pipeline}: ${{{name}}} names no path setting of {self.params_file} "
                f"(imageshelf fills in {', '.join(f'${{{n}}}' for n in _PATH_SETTINGS)})"
            )
        return value


_PATH_SETTINGS = ("pack.store",)


def _inside(path: str) -> bool:
    """Whether `path` names a place inside the repository: relative, never up (..)."""
    parts = path.replace("\\", "/").split("/")
    return bool(path.strip()) and not (
        os.path.isabs(path) or path.startswith(("/", "\\")) or ".." in parts
    )


def _stages(path: Path) -> dict[str, Any]:
    """The stages of dvc.yaml by name; none where there is no dvc.yaml."""
    if not path.exists():
        return {}
    from ..base.yamlfile import YamlRefused, load_yaml  # PyYAML: reading a store never needs it

    try:
        document = load_yaml(path.read_text(encoding="utf-8"))
    except YamlRefused as exc:
        raise ProjectError(f"{path}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read: {exc}") from None
    stages = document.get("stages") if isinstance(document, dict) else None
    return stages if isinstance(stages, dict) else {}


def _declared_in(stage: Any, how: str, what: str) -> str | None:
    """The path a stage of dvc.yaml declares as its `meta:` entry `what`, or as its
    output (outs or metrics) of `type: what`."""
    if not isinstance(stage, dict):
        return None
    if how == "meta":
        meta = stage.get("meta")
        found = meta.get(what) if isinstance(meta, dict) else None
        return found if isinstance(found, str) else None
    for entry in [*_listed(stage.get("outs")), *_listed(stage.get("metrics"))]:
        if isinstance(entry, dict) and len(entry) == 1:
            (path, options), *_ = entry.items()
            if isinstance(options, dict) and options.get("type") == what:
                return str(path)
    return None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# -- another revision's paths, as DVC parses its dvc.yaml and dvc.lock


class Revision(Protocol):
    """What a revision's dvc.yaml and dvc.lock say, as DVC parses them (a
    dvcsource.Source: which is left to it, so no stage runs it)."""

    repo: str
    rev: str

    def typed(self, kind: str) -> str | None: ...

    def recorded_setting(self, stage: str, name: str) -> Any: ...


def revision_store(source: Revision) -> str:
    """Where a revision keeps its store: the output its dvc.yaml types `store` (DVC's
    parse, ${pack.store} filled in from that revision's params.yaml); in a revision from
    before outputs were typed, the pack.store its dvc.lock records pack ran with."""
    found = source.typed("store")
    if found is None:
        recorded = source.recorded_setting("pack", "pack.store")
        found = recorded if isinstance(recorded, str) and recorded else None
    if found is None:
        raise ProjectError(
            f"{source.repo} at {source.rev}: dvc.yaml types no output `store` and dvc.lock "
            "records no pack.store: name the store's path"
        )
    return found


def revision_catalog(source: Revision) -> str:
    """Where a revision keeps its catalog: the output its dvc.yaml types `catalog`, or,
    in a revision from before outputs were typed, where the template always had it."""
    return source.typed("catalog") or DEFAULTS["catalog"]


__all__ = ["DEFAULTS", "WHERE", "Project", "ProjectError", "revision_catalog", "revision_store"]
