"""params.yaml, read and checked: one dataclass per stage, one clear line per mistake."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from .errors import ShelfError
from .splits import check_ratios

PARAMS = "params.yaml"
DEFAULT_STORE = "data/images.lmdb"

OnConflict = Literal["error", "replace", "skip"]
OnDuplicate = Literal["keep", "skip"]
LayoutName = Literal["single", "sharded"]
Verify = Literal["header", "decode"]


class ParamsError(ShelfError):
    """A setting in params.yaml that cannot be used; the message names it."""


@dataclass(frozen=True)
class IngestParams:
    strict: bool = False
    max_pixels: int = 89_478_485
    max_file_bytes: int = 256 << 20
    max_metadata_bytes: int = 1 << 20
    verify: Verify = "header"


# Files that ship with datasets and are neither images nor annotations.
DEFAULT_IGNORE = (
    "README*",
    "LICENSE*",
    "LICENCE*",
    "CHANGELOG*",
    "CITATION*",
    "*.md",
    "*.rst",
    "*.ipynb",
    "*.py",
    "*.sh",
    "*.pdf",
    ".git*",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "__MACOSX",
    "*.cache",  # ultralytics' label caches (labels/train.cache)
)


@dataclass(frozen=True)
class AnnotationsParams:
    # The class folder, per dataset folder (annotations/folders.py): auto, as Hugging
    # Face's imagefolder infers it; true, as torchvision's ImageFolder; N: the Nth folder
    # under the place; false: none. label_from_folder_in: the same, per folder.
    label_from_folder: bool | int | str = "auto"
    label_from_folder_in: Mapping[str, bool | int | str] = field(default_factory=dict)
    split_from_folder: bool = False
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    # any annotation file (a dataset's table or COCO file: COCO 2017's largest is 448 MB)
    max_file_bytes: int = 2 << 30
    # the class names of masks whose dataset ships none: the index is the id (classes.py)
    mask_classes: tuple[str, ...] = ()
    # the column that names the image in a table that has it (tables without one of
    # Hugging Face's or the older names): annotations/imagetables.py
    image_column: str = ""


@dataclass(frozen=True)
class PackParams:
    layout: LayoutName = "single"
    store: str = DEFAULT_STORE
    shard_mb: int = 1024
    on_conflict: OnConflict = "error"
    on_duplicate: OnDuplicate = "keep"
    split: Mapping[str, float] = field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    index: tuple[str, ...] = ("label", "split")

    @property
    def shard_bytes(self) -> int:
        return self.shard_mb * 1_000_000


@dataclass(frozen=True)
class StatsParams:
    thumbnail_px: int = 64
    thumbnails_per_label: int = 8
    max_labels: int = 20


SECTIONS: dict[str, type] = {
    "ingest": IngestParams,
    "annotations": AnnotationsParams,
    "pack": PackParams,
    "stats": StatsParams,
}
CHOICES: dict[str, tuple[str, ...]] = {
    "ingest.verify": get_args(Verify),
    "pack.layout": get_args(LayoutName),
    "pack.on_conflict": get_args(OnConflict),
    "pack.on_duplicate": get_args(OnDuplicate),
}
# Settings whose cost grows with their value: the contact sheet is
# labels x thumbnails x pixels^2 (20,000 px thumbnails took 76 s and 14 GB for two images).
UPPER = {
    "stats.thumbnail_px": 1024,
    "stats.thumbnails_per_label": 100,
    "stats.max_labels": 200,
}
P = TypeVar("P")


def _document(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    from .yamlfile import YamlRefused, load_yaml  # PyYAML: reading a store never needs it

    try:
        document = load_yaml(path.read_text(encoding="utf-8")) or {}
    except YamlRefused as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read: {exc}") from None
    if not isinstance(document, dict):
        raise ParamsError(f"{path}: must be a mapping of sections (ingest, pack, stats)")
    return document


def load_params(kind: type[P], path: str | os.PathLike[str] = PARAMS) -> P:
    """The section of params.yaml that `kind` describes, defaults filled in, checked.
    A section or a setting nobody reads (a typo: `packk:`) is refused, naming it and
    the nearest known one."""
    path = Path(path)
    section = next(name for name, cls in SECTIONS.items() if cls is kind)
    document = _document(path)
    _check_sections(path, document)
    given = document.get(section) or {}
    if not isinstance(given, dict):
        raise ParamsError(f"{path}: '{section}' must be a mapping of settings")
    fields = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted((name for name in given if name not in fields), key=str)
    if unknown:
        raise ParamsError(
            f"{path}: unknown setting {section}.{_shown(unknown[0])}"
            f"{_nearest(unknown[0], fields, section + '.')}; known: {', '.join(fields)}"
        )
    for name, value in given.items():
        _check(path, f"{section}.{name}", fields[name], value)
        if isinstance(value, list):
            given[name] = tuple(value)
    values = kind(**given)
    if isinstance(values, PackParams):
        _check_layout(values, path)
    return values


def _shown(name: object) -> str:
    """A name from the file, for a one-line message: as it is when plain, else quoted."""
    text = name if isinstance(name, str) and name.isprintable() else repr(name)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text):,} characters)"


def _nearest(name: object, known: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(str(name)[:100], list(known), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _check_sections(path: Path, document: dict[Any, Any]) -> None:
    """Every top-level section is one of this project's, or one a stage of the dvc.yaml
    beside it reads (a team's own training stage keeps its settings here too). DVC
    itself writes no section of its own: `dvc exp run -S` and Hydra set what a user
    names."""
    unknown = sorted((name for name in document if name not in SECTIONS), key=str)
    if not unknown:
        return
    others = _sections_stages_read(path)
    if others is None:  # a stage reads the whole file
        return
    for name in unknown:
        if name not in others:
            raise ParamsError(
                f"{path}: unknown section {_shown(name)}"
                f"{_nearest(name, [*SECTIONS, *sorted(others)])}: neither imageshelf "
                f"({', '.join(SECTIONS)}) nor a stage of dvc.yaml (its params:) reads it"
            )


_INTERPOLATED = re.compile(r"\$\{\s*([^\s.\[}]+)")  # ${train.epochs} in dvc.yaml reads train


def _sections_stages_read(path: Path) -> set[str] | None:
    """The top-level sections of `path` that the stages of dvc.yaml beside it read (their
    params:, vars: and ${...}); None if one reads the whole file. Nothing is read where
    there is no dvc.yaml or DVC could not parse it either (DVC says why)."""
    from .yamlfile import YamlRefused, load_yaml

    try:
        text = (path.parent / "dvc.yaml").read_text(encoding="utf-8")
        pipeline = load_yaml(text)
    except (OSError, UnicodeDecodeError, YamlRefused):
        return set()
    if not isinstance(pipeline, dict):
        return set()
    read: set[str] = set()
    if path.name == PARAMS:  # ${...} interpolates from params.yaml, DVC's default
        read |= set(_INTERPOLATED.findall(text))
    entries: list[Any] = list(_listed(pipeline.get("vars")))
    stages = pipeline.get("stages")
    for stage in stages.values() if isinstance(stages, dict) else ():
        stage = stage.get("do", stage) if isinstance(stage, dict) else {}
        if isinstance(stage, dict):
            entries += [*_listed(stage.get("params")), *_listed(stage.get("vars"))]
    for entry in entries:
        sections = _sections_of(entry, path.name)
        if sections is None:
            return None
        read |= sections
    return read


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _sections_of(entry: Any, name: str) -> set[str] | None:
    """The sections of the params file `name` that one params: or vars: entry reads
    ("train.lr", {"params.yaml": ["train"]}, "params.yaml:train,eval"); None: all."""
    if isinstance(entry, str):
        file, colon, keys = entry.rpartition(":") if ":" in entry else ("", "", entry)
        if colon and os.path.normpath(file) == name:  # a vars: entry, file:keys
            return {key.split(".")[0] for key in keys.split(",") if key}
        if os.path.normpath(entry) == name:  # a vars: entry naming the whole file
            return None
        return {entry.split(".")[0]} if name == PARAMS else set()
    if isinstance(entry, dict):
        for file, keys in entry.items():
            if isinstance(file, str) and os.path.normpath(file) == name:
                if not keys:
                    return None  # {params.yaml: } tracks every parameter in it
                return {str(key).split(".")[0] for key in _listed(keys)}
    return set()


def _check(path: Path, name: str, spec: dataclasses.Field[Any], value: Any) -> None:
    if spec.default_factory is not dataclasses.MISSING:
        default = spec.default_factory()
    else:
        default = spec.default
    choices = CHOICES.get(name, ())
    if choices and value not in choices:
        raise ParamsError(f"{path}: {name} must be one of {', '.join(choices)} (got {value!r})")
    if name.startswith("annotations.label_from_folder"):
        _check_label_rules(path, name, value)
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParamsError(f"{path}: {name} must be true or false")
    elif type(default) is int:
        if type(value) is not int or value <= 0:
            raise ParamsError(f"{path}: {name} must be a positive whole number (got {value!r})")
        if name in UPPER and value > UPPER[name]:
            raise ParamsError(
                f"{path}: {name} must be at most {UPPER[name]:,} (got {value:,}): the "
                "contact sheet's time and memory grow with it"
            )
    elif isinstance(default, Mapping):
        problem = check_ratios(value)
        if problem:
            raise ParamsError(f"{path}: {name} {problem}")
    elif isinstance(default, tuple) and not (
        isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    ):
        what = {"pack.index": "field names", "annotations.mask_classes": "class names"}.get(
            name, "patterns"
        )
        raise ParamsError(f"{path}: {name} must be a list of {what} (got {value!r})")
    elif name == "pack.index" and any("\0" in v or len(v.encode()) > 100 for v in value):
        raise ParamsError(f"{path}: {name}: field names must be short text")
    elif name == "annotations.image_column" and not isinstance(value, str):
        raise ParamsError(f'{path}: {name} must be a column\'s name, or "" (got {value!r})')


LABEL_RULES = "auto, true, false or a folder depth such as 2"


def _check_label_rules(path: Path, name: str, value: Any) -> None:
    """annotations.label_from_folder, or label_from_folder_in: folders to such rules."""
    rules = [value]
    if name.endswith("_in"):
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k.strip("/") and ".." not in k.split("/") for k in value
        ):
            raise ParamsError(
                f"{path}: {name} must map folders of data/incoming/ to {LABEL_RULES}, such "
                f"as {{scans: false}} (got {value!r})"
            )
        rules = list(value.values())
    for rule in rules:
        if not (isinstance(rule, bool) or rule == "auto" or (type(rule) is int and 0 < rule < 100)):
            raise ParamsError(f"{path}: {name} must be {LABEL_RULES} (got {rule!r})")


def _check_layout(values: PackParams, path: Path) -> None:
    store = values.store
    if not isinstance(store, str) or not store.strip():
        raise ParamsError(f"{path}: pack.store must be a path, like data/images.lmdb")
    parts = store.replace("\\", "/").split("/")
    if os.path.isabs(store) or store.startswith(("/", "\\")) or ".." in parts:
        raise ParamsError(
            f"{path}: pack.store must be a path inside the repository, like "
            f"data/images.lmdb (got {store!r}): DVC tracks it, and pack writes nowhere else"
        )
    if values.layout == "single" and not store.endswith(".lmdb"):
        raise ParamsError(
            f"{path}: pack.layout is single, so pack.store must be a file ending in .lmdb "
            f"(got {store!r}); for example data/images.lmdb"
        )
    if values.layout == "sharded" and store.endswith(".lmdb"):
        raise ParamsError(
            f"{path}: pack.layout is sharded, so pack.store must be a folder, not a .lmdb "
            f"file (got {store!r}); for example data/images"
        )


def default_store(path: str | os.PathLike[str] = PARAMS) -> str:
    """The store's path as params.yaml sets it (pack.store), for every tool's --store;
    data/images.lmdb where there is no params.yaml (a repository that imports the
    store) or it does not say."""
    try:
        store = (_document(Path(path)).get("pack") or {}).get("store")
    except (ShelfError, AttributeError):
        store = None
    return store if isinstance(store, str) and store else DEFAULT_STORE
