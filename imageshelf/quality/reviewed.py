"""Findings reviewed as not a problem: the file dvc.yaml names as the stats stage's
`reviewed` (data/reviewed.jsonl), tracked by git, one decision a line, applied to an
audit's findings after the search (docs/QUALITY.md, "Reviewed: not a problem").

    {"kind": "dark", "keys": ["a.jpg"], "note": "a night shot"}    an issue on one image
    {"kind": "near_duplicates", "keys": ["a.jpg", "b.jpg"]}        not near duplicates
    {"kind": "exact_duplicates", "keys": ["a.jpg", "copy.jpg"]}    every key of the group
    {"kind": "leaks", "keys": ["a.jpg", "b.jpg"]}                   this pair across splits

Applied after the search, never in it: the near state and the parts' assessments in the
cache stay those of the whole store, so deleting a line brings its finding back on the
next run without a full search. A decision is read from the file alone and applied to
the findings alone: its cost is the file's, not the store's.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ShelfError
from ..project.decisions import DecisionError, read_text
from .findings import ISSUES, KINDS, Findings, Leak, NearGroup, Reviewed, chained

__all__ = ["Decision", "ReviewedError", "read_decisions", "set_aside"]

PAIRS = ("near_duplicates", "leaks")
FIELDS = ("kind", "keys", "note")
Pair = tuple[str, str]


class ReviewedError(ShelfError):
    """A line of the reviewed file that is no decision: the message names file:line."""


class Decision(NamedTuple):
    """One line of the file: its number, the finding's kind and the keys it names (as
    written), and its note (kept and shown, never interpreted)."""

    line: int
    kind: str
    keys: tuple[str, ...]
    note: str | None = None

    @property
    def identity(self) -> tuple[str, frozenset[str]]:
        """What makes two lines the same decision: the order of keys does not matter."""
        return self.kind, frozenset(self.keys)

    @property
    def pair(self) -> Pair:
        a, b = sorted(self.keys)
        return a, b

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"line": self.line, "kind": self.kind, "keys": list(self.keys)}
        if self.note is not None:
            found["note"] = self.note
        return found


def read_decisions(path: Path) -> list[Decision]:
    """The decisions of the file at `path`, each once (a line repeating an earlier one
    is left out); none if there is no file (a project from before reviews). Blank lines
    and lines starting with # are comments. ReviewedError names the first line that is
    no decision."""
    try:
        text = read_text(path)  # the viewer's writer reads it so too
    except DecisionError as exc:
        raise ReviewedError(str(exc)) from None
    decisions: dict[tuple[str, frozenset[str]], Decision] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            decision = _decision(line, number, f"{path}:{number}")
            decisions.setdefault(decision.identity, decision)
    return list(decisions.values())


def check_decision(kind: str, keys: list[str]) -> None:
    """Refuse (ReviewedError) a decision the file could not hold: what a writer (the
    viewer) checks before it appends one, as the reader will read it."""
    _decision(json.dumps({"kind": kind, "keys": keys}), 0, "this decision")


def _decision(line: str, number: int, where: str) -> Decision:
    """One line as a Decision, or ReviewedError saying, at `where`, what is wrong."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ReviewedError(f"{where}: not JSON ({exc}); a decision is one JSON object") from None
    if not isinstance(obj, dict):
        raise ReviewedError(f'{where}: a decision is a JSON object: {{"kind": ..., "keys": [...]}}')
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise ReviewedError(
            f"{where}: unknown field {unknown[0]!r} (a decision has kind, keys, note)"
        )
    kind, keys, note = obj.get("kind"), obj.get("keys"), obj.get("note")
    if kind not in KINDS:
        raise ReviewedError(f"{where}: kind {kind!r} is no finding; the kinds: {', '.join(KINDS)}")
    if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
        raise ReviewedError(f"{where}: keys must be a list of strings (the store's keys)")
    if len(set(keys)) != len(keys):
        raise ReviewedError(f"{where}: a key is named twice")
    least, most, said = _count(kind)
    if not least <= len(keys) <= (most or len(keys)):
        raise ReviewedError(f"{where}: a {kind} decision names {said} (got {len(keys)})")
    if note is not None and not isinstance(note, str):
        raise ReviewedError(f"{where}: note must be a string")
    return Decision(number, kind, tuple(keys), note)


def _count(kind: str) -> tuple[int, int | None, str]:
    """How many keys a decision on `kind` names: at least, at most (None: no limit), and
    that said in words."""
    if kind in ISSUES:
        return 1, 1, "one key"
    if kind in PAIRS:
        return 2, 2, "two keys"
    return 2, None, "every key of the group, two or more"  # exact_duplicates


def set_aside(
    found: Findings, decisions: Sequence[Decision], held: Container[str], file: str
) -> Findings:
    """`found` without what `decisions` set aside; `held` answers whether the store
    holds a key (a decision naming one it does not is stale, never an error)."""
    if not decisions:  # nothing reviewed (the usual case) costs nothing
        return replace(found, reviewed=Reviewed(file))
    applied: set[int] = set()
    flagged = _issues(found.flagged, decisions, applied)
    exact = _exact(found.exact, decisions, applied)
    first: dict[str, str] = {}  # a content's name in near pairs: its exact group's first key
    if any(d.kind == "near_duplicates" for d in decisions):
        first = {key: group[0] for group in found.exact for key in group}
    near, dropped = _near(found.near, found.exact, decisions, first, applied)
    leaks = _leaks(found.leaks, decisions, dropped, first, applied)
    stale = {d.line for d in decisions if not all(key in held for key in d.keys)}
    said = applied | stale
    record = Reviewed(
        file,
        tuple(d.as_json() for d in decisions if d.line in applied),
        tuple(d.as_json() for d in decisions if d.line in stale),
        tuple(d.as_json() for d in decisions if d.line not in said),
    )
    return replace(found, flagged=flagged, exact=exact, near=near, leaks=leaks, reviewed=record)


def _of(kind: str, decisions: Iterable[Decision]) -> Iterator[Decision]:
    return (decision for decision in decisions if decision.kind == kind)


def _issues(
    flagged: Mapping[str, tuple[str, ...]], decisions: Sequence[Decision], applied: set[int]
) -> dict[str, tuple[str, ...]]:
    """Each issue type's keys, less those reviewed for it."""
    kept = dict(flagged)
    for decision in (d for d in decisions if d.kind in ISSUES):
        (key,) = decision.keys
        keys = kept[decision.kind]
        if key in keys:
            kept[decision.kind] = tuple(k for k in keys if k != key)
            applied.add(decision.line)
    return kept


def _exact(
    groups: tuple[tuple[str, ...], ...], decisions: Sequence[Decision], applied: set[int]
) -> tuple[tuple[str, ...], ...]:
    """The exact groups, less those a decision names in full: a group with a key the
    decision does not name (a copy that arrived since) is a new finding, listed whole."""
    group_of = {key: group for group in groups for key in group}
    dropped = set()
    for decision in _of("exact_duplicates", decisions):
        named = set(decision.keys)
        for group in {group_of[key] for key in decision.keys if key in group_of}:
            if named.issuperset(group):
                dropped.add(group)
                applied.add(decision.line)
    return tuple(group for group in groups if group not in dropped)


def _content_pair(decision: Decision, first: Mapping[str, str]) -> Pair | None:
    """The near pair a decision names, as the findings name it (by each content's first
    key); None for two copies of one content, which are exact, never near."""
    a, b = (first.get(key, key) for key in decision.keys)
    return None if a == b else (min(a, b), max(a, b))


def _near(
    groups: tuple[NearGroup, ...],
    exact: tuple[tuple[str, ...], ...],
    decisions: Sequence[Decision],
    first: Mapping[str, str],
    applied: set[int],
) -> tuple[tuple[NearGroup, ...], set[Pair]]:
    """The near groups with the reviewed pairs taken out, formed again from the pairs
    left (a group may split, or go); and the pairs taken out."""
    wanted: dict[Pair, list[int]] = {}
    for decision in _of("near_duplicates", decisions):
        pair = _content_pair(decision, first)
        if pair is not None:
            wanted.setdefault(pair, []).append(decision.line)
    if not wanted:
        return groups, set()
    copies = {group[0]: group for group in exact}
    dropped: set[Pair] = set()
    formed: list[NearGroup] = []
    for group in groups:
        gone = {(a, b) for a, b, _ in group.pairs if (a, b) in wanted}
        if not gone:
            formed.append(group)
            continue
        dropped |= gone
        kept = [p for p in group.pairs if (p[0], p[1]) not in gone]
        formed += _joined(kept, copies)
    for pair in dropped:
        applied.update(wanted[pair])
    return tuple(sorted(formed)), dropped


def _joined(
    pairs: list[tuple[str, str, int]], copies: Mapping[str, tuple[str, ...]]
) -> list[NearGroup]:
    """The groups `pairs` chain (over contents' first keys), each with every key of its
    contents."""
    roots = chained(pairs)
    keys: dict[str, list[str]] = {}
    joined: dict[str, list[tuple[str, str, int]]] = {}
    for key, top in roots.items():
        keys.setdefault(top, []).extend(copies.get(key, (key,)))
    for pair in pairs:
        joined.setdefault(roots[pair[0]], []).append(pair)
    return [NearGroup(tuple(sorted(keys[top])), tuple(sorted(joined[top]))) for top in keys]


def _leaks(
    leaks: tuple[Leak, ...],
    decisions: Sequence[Decision],
    dropped: set[Pair],
    first: Mapping[str, str],
    applied: set[int],
) -> tuple[Leak, ...]:
    """The leaks, less the pairs reviewed as leaks and the near ones whose contents were
    reviewed as no near duplicates (two different pictures leak nothing). An exact
    group's review leaves its leaks: accepting copies is not accepting them across
    splits."""
    wanted: dict[Pair, list[int]] = {}
    for decision in _of("leaks", decisions):
        wanted.setdefault(decision.pair, []).append(decision.line)
    if not (wanted or dropped):
        return leaks
    kept = []
    for leak in leaks:
        pair = (min(leak.key_a, leak.key_b), max(leak.key_a, leak.key_b))
        if pair in wanted:
            applied.update(wanted[pair])
            continue
        a, b = first.get(leak.key_a, leak.key_a), first.get(leak.key_b, leak.key_b)
        if leak.kind == "near" and (min(a, b), max(a, b)) in dropped:
            continue
        kept.append(leak)
    return tuple(kept)
