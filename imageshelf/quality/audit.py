"""A store's findings as stats, `imageshelf audit`, the viewer and the filters ask for
them: found from its records (findings.py), less those the project's reviewed file sets
aside as not a problem (reviewed.py), the near-duplicate search limited to the
contents the last audit on this machine had not searched. What that audit searched (its
NearState: a pHash per content and the pairs among them) is kept in the cache, one per
threshold; a lost or damaged one costs a full search, never a wrong finding. The
records are read only in the store's parts no audit has seen (parts.py).

A filter names a finding as a field that is true or false for each image:
`leaks=false`, `near_duplicates=true`, `dark=true` (findings.KINDS). `finding_conditions`
takes those out of a selection; `keys_matching` answers them (`findings_filter`: both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..project.params import PARAMS, QualityParams, load_params
from ..project.paths import Project
from ..state import cache
from ..store import ImageStore
from .findings import ISSUES, KINDS, Assessed, Findings, NearState, UnknownFinding, find_assessed
from .parts import store_assessed
from .reviewed import read_decisions, set_aside

__all__ = [
    "FindingCondition",
    "audit",
    "finding_conditions",
    "findings_filter",
    "keys_matching",
    "quality_line",
]

# What --where and where= take (read/query.py's Filter, which this layer cannot import).
Filter = str | Iterable[str] | Mapping[str, Any] | None


def _state_name(params: QualityParams) -> str:
    return f"quality/near-{params.near_threshold}.json"


def audit(
    store: ImageStore, params: QualityParams, remember: bool = True, reviewed: Path | None = None
) -> Findings:
    """Everything found in `store` with `params`' thresholds (no image is read), less
    what the reviewed file (`reviewed`; else the one dvc.yaml here names) sets aside.
    remember=False reads the last state but never writes one: the viewer, which changes
    nothing on disk, and whose other versions would displace the workspace's state."""
    path = reviewed if reviewed is not None else Project.load().reviewed
    decisions = read_decisions(path)  # first: a wrong line stops before the store is read
    named = {key for decision in decisions for key in decision.keys}
    held: set[str] = set()
    name = _state_name(params)
    previous = NearState.from_json(cache.load(name))
    images = store_assessed(store, params, remember)
    if named:
        images = _noting(images, named, held)
    found = find_assessed(images, params, previous)
    if remember and found.state != previous:
        cache.save(name, found.state.to_json())
    return set_aside(found, decisions, held, str(path))


def _noting(images: Iterator[Assessed], named: set[str], held: set[str]) -> Iterator[Assessed]:
    """`images`, noting in `held` the keys of `named` among them: whether a decision is
    stale is learned on the pass the audit makes anyway, with no lookup in the store."""
    for image in images:
        if image.key in named:
            held.add(image.key)
        yield image


FindingCondition = tuple[str, bool]  # a finding's name, and whether an image must have it


def finding_conditions(
    conditions: Iterable[str],
) -> tuple[list[str], list[FindingCondition]]:
    """(the conditions on records, those on findings): `leaks=false` names a finding;
    `label=cat` does not. A finding compares only with true or false."""
    on_records, on_findings = [], []
    for condition in conditions:
        name, _, value = condition.partition("=")
        name = name.strip().rstrip("!")
        if name not in KINDS:
            on_records.append(condition)
            continue
        wanted = value.strip().lower()
        if wanted not in ("true", "false") or "!=" in condition:
            raise UnknownFinding(
                f"{condition!r}: a finding is selected with {name}=true or {name}=false"
            )
        on_findings.append((name, wanted == "true"))
    return on_records, on_findings


def keys_matching(findings: Findings, wanted: list[FindingCondition]) -> tuple[set[str], bool]:
    """(keys, inside): the images that satisfy every finding condition are those in
    `keys` if `inside`, else those not in it (`leaks=false`: every image but the leaked)."""
    inside: set[str] | None = None
    outside: set[str] = set()
    for name, has in wanted:
        keys = findings.keys_of(name)
        if has:
            inside = keys if inside is None else inside & keys
        else:
            outside |= keys
    if inside is None:
        return outside, False
    return inside - outside, True


KeyTest = Callable[[str], bool]


def findings_filter(
    store: ImageStore, where: Filter, params: QualityParams | None = None
) -> tuple[Filter, KeyTest | None]:
    """(the selection without its finding conditions, a test of a key for those; None
    if it names no finding). The store is audited only when a finding is named, with
    `params`' thresholds, or else params.yaml's here (the defaults where there is none)."""
    if where is None:
        return where, None
    if isinstance(where, Mapping):
        kept: Filter = {name: value for name, value in where.items() if name not in KINDS}
        wanted = [(name, _truth(name, value)) for name, value in where.items() if name in KINDS]
    else:
        kept, wanted = finding_conditions([where] if isinstance(where, str) else list(where))
    if not wanted:
        return where, None
    found = audit(store, params if params is not None else _project_params())
    keys, inside = keys_matching(found, wanted)
    return kept, (keys.__contains__ if inside else lambda key: key not in keys)


def _truth(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise UnknownFinding(f"{name}: a finding is selected with True or False, not {value!r}")
    return value


def _project_params() -> QualityParams:
    return load_params(QualityParams) if Path(PARAMS).is_file() else QualityParams()


def quality_line(metrics: dict[str, Any] | None) -> str:
    """What the findings say, in one line: each kind found, with its count of images."""
    if not metrics:
        return "quality: not audited"
    total = metrics["total"]
    said = []
    for kind, groups in (("exact_duplicates", "exact_groups"), ("near_duplicates", "near_groups")):
        if total[kind]:
            what = kind.replace("_", " ").removesuffix("s")
            said.append(f"{total[kind]} images in {total[groups]} {what} groups")
    if total["leaks"]:
        said.append(f"{total['leaks']} images leaked across splits")
    said += [f"{total[kind]} {kind.replace('_', ' ')}" for kind in ISSUES if total[kind]]
    if total["no_properties"]:
        said.append(f"{total['no_properties']} not measured")
    if metrics.get("reviewed"):
        said.append(f"{metrics['reviewed']} reviewed as not a problem")
    return f"quality: {', '.join(said) or 'nothing found'} (imageshelf audit; reports/quality.json)"
