"""The viewer's pages of what is wrong with the data (docs/QUALITY.md): a version's
findings (imageshelf/quality), found once per version opened and kept with it (a
store never changes; the workspace's, replaced by `dvc repro`, is opened again as a
new version), and each kind's items in the order a reader wants them, a page at a time
after a cursor, so no page holds more than a page's worth whatever the count of
findings. What decides each issue type, and its threshold, is shown with each image.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from ..errors import ShelfError
from ..project.params import PARAMS, QualityParams, load_params
from ..project.paths import Project
from ..quality.audit import FindingCondition, audit, keys_matching
from ..quality.findings import GROUPS, ISSUES, Findings, Leak, NearGroup, assess, rows_from_records
from ..store import ImageStore, Record
from .gallery import Chosen

PAGE_IMAGES = 60  # an issue type's images a page
PAGE_GROUPS = 10  # duplicate groups a page
PAGE_LEAKS = 30  # leaked pairs a page
SHOWN_IN_GROUP = 24  # a group's images on its page (the rest are counted)
SHOWN_PAIRS = 30  # a group's pairs listed, the closest first
# An image page finds its duplicates and leaks by auditing the version (every record
# read: about 4 s per 100,000 images on 2 busy cores) only up to this size; beyond,
# once a page that needs the audit anyway (Quality, a finding filter) has found them.
AUDIT_ON_IMAGE_PAGE = 20_000
_SELECTIONS = 8  # finding filters whose keys are kept per version (paging through one)

T = TypeVar("T")
Order = tuple[Any, ...]


class CursorError(ValueError):
    """A page cursor that these pages did not write."""


def project_params(path: Path = Path(PARAMS)) -> QualityParams:
    """The thresholds of params.yaml's `quality:` here; the defaults without one."""
    return load_params(QualityParams, path) if path.is_file() else QualityParams()


@dataclass(frozen=True)
class Ranked(Generic[T]):
    """Items in their page order, each with its place in it (a tuple of JSON scalars:
    the cursor of the page that follows it)."""

    orders: list[Order]
    items: list[T]

    @classmethod
    def of(cls, placed: Iterable[tuple[Order, T]]) -> Ranked[T]:
        ordered = sorted(placed, key=lambda pair: pair[0])
        return cls([order for order, _ in ordered], [item for _, item in ordered])

    def page(self, after: str | None, size: int) -> tuple[list[T], str | None]:
        """The `size` items after the cursor `after`, and the cursor of the next page."""
        start = 0 if not after else self._start(after)
        shown = self.items[start : start + size]
        more = start + size < len(self.items)
        return shown, orjson.dumps(self.orders[start + size - 1]).decode() if more else None

    def _start(self, after: str) -> int:
        try:
            place = orjson.loads(after)
        except orjson.JSONDecodeError:
            raise CursorError("not a page cursor") from None
        if not (isinstance(place, list) and all(_scalar(v) for v in place)):
            raise CursorError("not a page cursor")
        if self.orders and len(place) != len(self.orders[0]):
            raise CursorError("not a page cursor of this page")
        try:
            return bisect.bisect_right(self.orders, tuple(place))
        except TypeError:  # a cursor of another page's order
            raise CursorError("not a page cursor of this page") from None


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def number(value: object) -> str:
    """A measure as shown: at most 4 decimals, no trailing zeros (0.0627, 8, 0.3); any
    other value (a store is untrusted) as text."""
    if value is None:
        return "?"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    try:
        return str(value)
    except ValueError:  # an integer of more digits than Python converts
        return "(a number too long to show)"


def _prop(name: str) -> Callable[[Record], float | None]:
    def measure(record: Record) -> float | None:
        value = (record.props or {}).get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else None
        return None

    return measure


def _relative_contrast(record: Record) -> float | None:
    """What low_information judges (quality/findings.py): luma std over the distance of
    its mean from black or white."""
    contrast, mean = _prop("contrast")(record), _prop("mean")(record)
    if contrast is None or mean is None:
        return None
    return contrast / max(min(mean, 1 - mean), 0.02)


def _side(record: Record) -> float:
    return math.sqrt(record.info.width * record.info.height)


def _aspect(record: Record) -> float:
    width, height = record.info.width, record.info.height
    return min(width, height) / max(width, height, 1)


class Rule(NamedTuple):
    """How an issue type's page ranks and explains its images."""

    measure: str  # the name of what decides, as shown
    worst: int  # 1: the lowest value is the worst; -1: the highest; 0: by key
    value: Callable[[Record], float | None]
    limit: Callable[[QualityParams], str]  # beside each value: "< 0.3"
    threshold: Callable[[QualityParams], str]  # the rule, said once: "p99 < 0.3"


RULES: dict[str, Rule] = {
    "dark": Rule(
        "p99", 1, _prop("p99"), lambda p: f"< {number(p.dark)}", lambda p: f"p99 < {number(p.dark)}"
    ),
    "light": Rule(
        "p05",
        -1,
        _prop("p05"),
        lambda p: f"> {number(p.light)}",
        lambda p: f"p05 > {number(p.light)}",
    ),
    "blurry": Rule(
        "sharpness",
        1,
        _prop("sharpness"),
        lambda p: f"< {number(p.blurry_sharpness)}",
        lambda p: f"sharpness < {number(p.blurry_sharpness)} and edges < {number(p.blurry_edges)}",
    ),
    "low_information": Rule(
        "relative contrast",
        1,
        _relative_contrast,
        lambda p: f"< {number(p.low_information)}",
        lambda p: f"luma std / min(mean, 1 - mean) < {number(p.low_information)}",
    ),
    "grayscale": Rule(
        "chroma",
        1,
        _prop("chroma"),
        lambda p: f"<= {p.grayscale}",
        lambda p: f"a gray mode, or chroma <= {p.grayscale}",
    ),
    "odd_size": Rule(
        "sqrt(w x h)",
        1,
        _side,
        lambda p: f"< {p.odd_size} px",
        lambda p: f"sqrt(width x height) < {p.odd_size} px",
    ),
    "odd_aspect": Rule(
        "short / long side",
        1,
        _aspect,
        lambda p: f"< {number(p.odd_aspect)}",
        lambda p: f"short side / long side < {number(p.odd_aspect)}",
    ),
    "unreadable": Rule(
        "", 0, lambda _: None, lambda _: "", lambda _: "its pixels could not be decoded"
    ),
}
GROUP_RULES = {
    "exact_duplicates": lambda p: "the same bytes (SHA-256)",
    "near_duplicates": lambda p: (
        f"pHashes within {p.near_threshold} bits of 64, dHashes within {p.near_dhash}"
    ),
    "leaks": lambda p: (
        f"an exact or near pair (pHashes within {p.near_threshold} bits) in two splits"
    ),
}


def rule_of(kind: str, params: QualityParams) -> str:
    """What finds `kind`, with its threshold: `p99 < 0.3`."""
    if kind in RULES:
        return RULES[kind].threshold(params)
    return GROUP_RULES[kind](params)


class Judged(NamedTuple):
    """An image of an issue type as its page shows it."""

    key: str
    split: str | None
    value: float | None  # what decides (None: not measured)
    detail: str  # the other facts that matter: its size, mode, edges, error


def _detail(kind: str, record: Record) -> str:
    props = record.props or {}
    if kind in ("odd_size", "odd_aspect"):
        return f"{record.info.width} x {record.info.height} px"
    if kind == "blurry":
        return f"edges {number(_prop('edges')(record))}"
    if kind == "grayscale":
        mode = props.get("mode")
        return f"mode {mode}" if isinstance(mode, str) else ""
    if kind == "unreadable":
        error = props.get("error")
        return " ".join(str(error).split())[:300]
    return ""


def judged(kind: str, record: Record) -> tuple[Order, Judged]:
    """An image of issue type `kind`: its place on the page (the worst first; one not
    measured last) and what is shown."""
    rule = RULES[kind]
    value = rule.value(record)
    place = (1, 0.0) if value is None or not rule.worst else (0, rule.worst * value)
    found = Judged(record.key, record.effective_split, value, _detail(kind, record))
    return (*place, record.key), found


class Group(NamedTuple):
    """A duplicate group as its page shows it: its first keys, with their splits, how
    many it holds, and the pairs among the shown ones (closest first)."""

    keys: list[tuple[str, str | None]]
    size: int
    pairs: list[tuple[str, str, int]]
    more_pairs: int


class Named(NamedTuple):
    """What names one image: its issue types, and once the version is audited (None
    before), the other keys of its exact group, of its near group (with the distance
    of their pair with it, None when chained through others) and its leaks, each at
    most SHOWN_IN_GROUP, with how many there are."""

    issues: list[str]
    exact: list[str] | None = None
    exact_count: int = 0
    near: list[tuple[str, int | None]] | None = None
    near_count: int = 0
    leaks: list[Leak] | None = None
    leaks_count: int = 0


@dataclass
class Audited:
    """A version's findings with `params`, and what its pages derive from them, each
    derived once."""

    params: QualityParams
    findings: Findings
    metrics: dict[str, Any]
    reviewed: tuple[int, int] | None = None  # the reviewed file it read (reviewed_stamp)
    _derived: dict[Any, Any] = field(default_factory=dict)
    _chosen: OrderedDict[tuple[FindingCondition, ...], Chosen] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _once(self, name: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._derived:
                self._derived[name] = make()
            return self._derived[name]

    def groups(self, kind: str) -> Ranked[Group]:
        """Exact or near groups, the largest first."""
        return self._once(kind, lambda: Ranked.of(self._groups(kind)))

    def _groups(self, kind: str) -> Iterator[tuple[Order, Group]]:
        found = self.findings
        splits = found.splits
        groups: Iterable[NearGroup] = (
            found.near if kind == "near_duplicates" else (NearGroup(g, ()) for g in found.exact)
        )
        for group in groups:
            shown = group.keys[:SHOWN_IN_GROUP]
            inside = set(shown)
            pairs = sorted(
                (p for p in group.pairs if p[0] in inside and p[1] in inside),
                key=lambda p: (p[2], p[0], p[1]),
            )
            keys = [(key, splits.get(key)) for key in shown]
            item = Group(
                keys,
                len(group.keys),
                pairs[:SHOWN_PAIRS],
                len(group.pairs) - len(pairs[:SHOWN_PAIRS]),
            )
            yield (-len(group.keys), group.keys[0]), item

    def leaks(self, pair: str | None) -> Ranked[Leak]:
        """Leaked pairs (of one split pair, or all), by split pair, the closest first."""

        def make() -> Ranked[Leak]:
            chosen = (x for x in self.findings.leaks if pair is None or x.splits == pair)
            return Ranked.of(((x.splits, x.distance, x.key_a, x.key_b), x) for x in chosen)

        return self._once(("leaks", pair), make)

    def issue(self, store: ImageStore, kind: str) -> Ranked[Judged]:
        """The images of an issue type, the worst first: their records read once."""
        keys = self.findings.flagged[kind]
        make = lambda: Ranked.of(judged(kind, store.record(key)) for key in keys)  # noqa: E731
        return self._once(kind, make)

    def chosen(self, wanted: list[FindingCondition]) -> Chosen:
        """The keys finding conditions select (quality/audit.py's `keys_matching`, as
        `--where` in ls and export), kept for the next page of the same filter."""
        name = tuple(wanted)
        with self._lock:
            if name in self._chosen:
                self._chosen.move_to_end(name)
                return self._chosen[name]
        keys, inside = keys_matching(self.findings, wanted)
        made = Chosen(tuple(sorted(keys)), frozenset(keys), inside)
        with self._lock:
            self._chosen[name] = made
            while len(self._chosen) > _SELECTIONS:
                self._chosen.popitem(last=False)
        return made

    def _index(self) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            exact = {key: group for group in self.findings.exact for key in group}
            near = {key: group for group in self.findings.near for key in group.keys}
            leaks: dict[str, list[Leak]] = {}
            for leak in self.findings.leaks:
                leaks.setdefault(leak.key_a, []).append(leak)
                leaks.setdefault(leak.key_b, []).append(leak)
            return {"exact": exact, "near": near, "leaks": leaks}

        return self._once("index", make)

    def named(self, key: str, issues: list[str]) -> Named:
        """What names `key` (see Named), its issue types given."""
        index = self._index()
        copies = index["exact"].get(key, (key,))
        content = copies[0]  # a near pair names each content by its first key
        group: NearGroup | None = index["near"].get(key)
        near: list[tuple[str, int | None]] = []
        if group is not None:
            distance = {b if a == content else a: d for a, b, d in group.pairs if content in (a, b)}
            others = [k for k in group.keys if k != key]
            near = [(k, distance.get(index["exact"].get(k, (k,))[0])) for k in others]
            near.sort(key=lambda item: (item[1] is None, item[1] or 0, item[0]))
        exact = [k for k in copies if k != key]
        leaks = index["leaks"].get(key, [])
        most = SHOWN_IN_GROUP
        return Named(
            issues, exact[:most], len(exact), near[:most], len(near), leaks[:most], len(leaks)
        )


def audited(memo: dict[str, Any], store: ImageStore, params: QualityParams) -> Audited:
    """The version's findings with `params`, found on first use and kept in `memo` (the
    opened version's): one audit per version (and per change of params.yaml)."""
    lock = memo.setdefault("quality-lock", threading.Lock())  # setdefault: atomic
    with lock:
        found: Audited | None = memo.get("quality")
        stamp = reviewed_stamp()
        if found is None or found.params != params or found.reviewed != stamp:
            findings = audit(store, params, remember=False)  # the viewer writes nothing
            found = memo["quality"] = Audited(params, findings, findings.metrics(), stamp)
        return found


def reviewed_stamp() -> tuple[int, int] | None:
    """The reviewed file's (mtime, size): a finding marked "not a problem" on a page
    leaves the pages that follow (the version's audit is made again)."""
    try:
        found = os.stat(Project.load().reviewed)
    except (OSError, ShelfError):
        return None
    return found.st_mtime_ns, found.st_size


def named(memo: dict[str, Any], store: ImageStore, params: QualityParams, record: Record) -> Named:
    """What names `record`: its issue types from its own props (quality/findings.py's
    `assess`: no audit needed), and its duplicates and leaks from the version's audit,
    made for them only in a store of up to AUDIT_ON_IMAGE_PAGE images."""
    (row,) = rows_from_records([record])
    issues = [kind for kind in ISSUES if kind in assess(row, params).issues]
    found: Audited | None = memo.get("quality")
    if found is None or found.params != params or found.reviewed != reviewed_stamp():
        found = audited(memo, store, params) if len(store) <= AUDIT_ON_IMAGE_PAGE else None
    return Named(issues) if found is None else found.named(record.key, issues)


def pages(kind: str) -> str:
    """Which page template shows `kind`."""
    if kind in ("exact_duplicates", "near_duplicates"):
        return "quality_groups.html"
    return "quality_leaks.html" if kind == "leaks" else "quality_issue.html"


KINDS_SHOWN = (*GROUPS, *ISSUES)
COUNTED: Mapping[str, str] = {"exact_duplicates": "exact_groups", "near_duplicates": "near_groups"}
