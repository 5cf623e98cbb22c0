"""params.yaml, read and checked: one dataclass per stage, each setting declared with its
default and its checker (`setting`), one clear line per mistake."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from ..errors import ShelfError
from ..records.splits import check_ratios

PARAMS = "params.yaml"

OnConflict = Literal["error", "replace", "skip"]
OnDuplicate = Literal["keep", "skip"]
LayoutName = Literal["single", "sharded"]
Verify = Literal["header", "decode"]

# What a value from params.yaml must be: the rest of the sentence "{file}: {setting} ...",
# or None when the value is fine.
Check = Callable[[Any], "str | None"]


class ParamsError(ShelfError):
    """A setting in params.yaml that cannot be used; the message names it."""


def setting(check: Check, default: Any = None, factory: Callable[[], Any] | None = None) -> Any:
    """A field of a params section: its default (`factory` for a mutable one) and the
    check a value given in params.yaml must pass, kept in the field's metadata."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"check": check})
    return dataclasses.field(default=default, metadata={"check": check})


# ------------------------------------------------------------------ the checkers


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def whole(at_most: int | None = None, because: str = "") -> Check:
    """A whole number above 0 (bool is no number here), at most `at_most`."""

    def check(value: Any) -> str | None:
        if type(value) is not int or value <= 0:
            return f"must be a positive whole number (got {value!r})"
        if at_most is not None and value > at_most:
            return f"must be at most {at_most:,} (got {value:,}): {because}"
        return None

    return check


def between(low: float, high: float | None, what: str = "a number") -> Check:
    """A finite number from `low` to `high` (None: no bound), both included; `what`
    ("a whole number" takes ints only; bool is no number here)."""
    kinds: tuple[type, ...] = (int,) if what.startswith("a whole") else (int, float)

    def check(value: Any) -> str | None:
        if (
            type(value) not in kinds
            or not math.isfinite(value)
            or value < low
            or (high is not None and value > high)
        ):
            bounds = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
            return f"must be {what} {bounds} (got {value!r})"
        return None

    return check


def one_of(choices: Any) -> Check:
    """One of the strings of a Literal type."""
    names: tuple[str, ...] = get_args(choices)

    def check(value: Any) -> str | None:
        return None if value in names else f"must be one of {', '.join(names)} (got {value!r})"

    return check


def texts(what: str, max_bytes: int | None = None) -> Check:
    """A list of non-empty strings (`what`: patterns, class names...), each at most
    `max_bytes` of UTF-8 and without NUL if given."""

    def check(value: Any) -> str | None:
        if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
            return f"must be a list of {what} (got {value!r})"
        if max_bytes is not None and any("\0" in v or len(v.encode()) > max_bytes for v in value):
            return f"must be a list of {what} of at most {max_bytes} bytes each, without NUL"
        return None

    return check


def column(value: Any) -> str | None:
    return None if isinstance(value, str) else f'must be a column\'s name, or "" (got {value!r})'


def ratios(value: Any) -> str | None:
    return check_ratios(value)  # records/splits.py: the split table's own rules


LABEL_RULES = "auto, true, false or a folder depth such as 2"


def label_rule(value: Any) -> str | None:
    """How a folder gives a label: auto, true, false or a depth from 1 to 99."""
    if isinstance(value, bool) or value == "auto" or (type(value) is int and 0 < value < 100):
        return None
    return f"must be {LABEL_RULES} (got {value!r})"


def label_rules(value: Any) -> str | None:
    """Folders of data/incoming/ (no .., not empty) to label rules."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k.strip("/") and ".." not in k.split("/") for k in value
    ):
        return (
            f"must map folders of data/incoming/ to {LABEL_RULES}, such as {{scans: false}} "
            f"(got {value!r})"
        )
    return next(filter(None, map(label_rule, value.values())), None)


def repo_path(value: Any) -> str | None:
    """A path inside the repository, relative: DVC tracks it, and nothing writes outside."""
    if not isinstance(value, str) or not value.strip():
        return "must be a path, like data/images.lmdb"
    parts = value.replace("\\", "/").split("/")
    if os.path.isabs(value) or value.startswith(("/", "\\")) or ".." in parts:
        return (
            "must be a path inside the repository, like data/images.lmdb (got "
            f"{value!r}): DVC tracks it, and pack writes nowhere else"
        )
    return None


# ------------------------------------------------------------------ the sections

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
class IngestParams:
    strict: bool = setting(flag, False)
    max_pixels: int = setting(whole(), 89_478_485)
    max_file_bytes: int = setting(whole(), 256 << 20)
    max_metadata_bytes: int = setting(whole(), 1 << 20)
    verify: Verify = setting(one_of(Verify), "header")
    # Each new image's pixels measured once (images/properties.py): what stats' findings
    # read. False: a faster first build; only exact duplicates are found.
    measure: bool = setting(flag, True)


@dataclass(frozen=True)
class AnnotationsParams:
    # The class folder, per dataset folder (annotations/folders.py): auto, as Hugging
    # Face's imagefolder infers it; true, as torchvision's ImageFolder; N: the Nth folder
    # under the place; false: none. label_from_folder_in: the same, per folder.
    label_from_folder: bool | int | str = setting(label_rule, "auto")
    label_from_folder_in: Mapping[str, bool | int | str] = setting(label_rules, factory=dict)
    split_from_folder: bool = setting(flag, False)
    ignore: tuple[str, ...] = setting(texts("patterns"), DEFAULT_IGNORE)
    # any annotation file (a dataset's table or COCO file: COCO 2017's largest is 448 MB)
    max_file_bytes: int = setting(whole(), 2 << 30)
    # the class names of masks whose dataset ships none: the index is the id (classes.py)
    mask_classes: tuple[str, ...] = setting(texts("class names"), ())
    # the column that names the image in a table that has it (tables without one of
    # Hugging Face's or the older names): annotations/imagetables.py
    image_column: str = setting(column, "")


@dataclass(frozen=True)
class PackParams:
    layout: LayoutName = setting(one_of(LayoutName), "single")
    store: str = setting(repo_path, "data/images.lmdb")
    shard_mb: int = setting(whole(), 1024)
    on_conflict: OnConflict = setting(one_of(OnConflict), "error")
    on_duplicate: OnDuplicate = setting(one_of(OnDuplicate), "keep")
    split: Mapping[str, float] = setting(
        ratios, factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    index: tuple[str, ...] = setting(texts("field names", max_bytes=100), ("label", "split"))

    @property
    def shard_bytes(self) -> int:
        return self.shard_mb * 1_000_000

    def check(self) -> str | None:
        """The one rule across settings: the store's path fits its layout."""
        if self.layout == "single" and not self.store.endswith(".lmdb"):
            return (
                "pack.layout is single, so pack.store must be a file ending in .lmdb "
                f"(got {self.store!r}); for example data/images.lmdb"
            )
        if self.layout == "sharded" and self.store.endswith(".lmdb"):
            return (
                "pack.layout is sharded, so pack.store must be a folder, not a .lmdb "
                f"file (got {self.store!r}); for example data/images"
            )
        return None


# The contact sheet is labels x thumbnails x pixels^2 (20,000 px thumbnails took 76 s
# and 14 GB for two images).
CONTACT_SHEET = "the contact sheet's time and memory grow with it"


@dataclass(frozen=True)
class StatsParams:
    thumbnail_px: int = setting(whole(1024, CONTACT_SHEET), 64)
    thumbnails_per_label: int = setting(whole(100, CONTACT_SHEET), 8)
    max_labels: int = setting(whole(200, CONTACT_SHEET), 20)


@dataclass(frozen=True)
class QualityParams:
    """The findings' thresholds (imageshelf/quality/findings.py): near duplicates and
    each issue type, as measured on planted corpora (see the findings module)."""

    # bits of 64 in which two pHashes differ; past 32, unrelated hashes are as likely
    # near as not
    near_threshold: int = setting(between(0, 32, "a whole number of bits"), 8)
    # ...and dHashes at most this many bits apart: the second opinion (findings.py)
    near_dhash: int = setting(between(0, 64, "a whole number of bits"), 20)
    odd_size: int = setting(whole(), 32)
    odd_aspect: float = setting(between(0, 1, "a fraction"), 0.35)
    low_information: float = setting(between(0, None), 0.07)
    dark: float = setting(between(0, 1, "a fraction"), 0.30)
    light: float = setting(between(0, 1, "a fraction"), 0.75)
    grayscale: int = setting(between(0, 255, "a whole number"), 3)
    blurry_sharpness: float = setting(between(0, None), 0.40)
    blurry_edges: float = setting(between(0, 255), 26.0)


SECTIONS: dict[str, type] = {
    "ingest": IngestParams,
    "annotations": AnnotationsParams,
    "pack": PackParams,
    "stats": StatsParams,
    "quality": QualityParams,
}
P = TypeVar("P")


def _document(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    from ..base.yamlfile import YamlRefused, load_yaml  # PyYAML: reading a store never needs it

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
    across = getattr(values, "check", None)  # a rule across settings (PackParams.check)
    problem = across() if across is not None else None
    if problem:
        raise ParamsError(f"{path}: {problem}")
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
    from ..base.yamlfile import YamlRefused, load_yaml

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
    problem = spec.metadata["check"](value)
    if problem:
        raise ParamsError(f"{path}: {name} {problem}")
