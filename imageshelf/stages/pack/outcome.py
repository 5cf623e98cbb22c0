"""What a pack run tells its user: the summary line, the notes beside it (a store no
longer used, when to switch layouts, what matched nothing) and reports/pack.json, the
report for people and for validate (the images not packed, and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...project.params import PackParams
from ...store import Header
from ..result import StageResult
from .changes import Changes
from .inputs import PackPaths
from .plan import PackPlan


def plan_report(
    changes: Changes, params: PackParams, header: Header, written: bool
) -> dict[str, Any]:
    return {
        "written": written,
        "count": header.count,
        "total_bytes": header.total_bytes,
        "content_digest": header.content_digest,
        "added": len(changes.added),
        "replaced": len(changes.replaced),
        "relabeled": len(changes.relabeled),
        "moved": len(changes.moved),
        "retracked": len(changes.retracked),
        "measured": len(changes.measured),
        "unchanged": changes.unchanged,
        "removed": len(changes.removed),
        "resplit": len(changes.resplit),
        "fields_removed": dict(sorted(changes.fields_removed.items())),
        "unused_annotations": changes.unused_annotations,
        "split": dict(params.split),
        "on_conflict": params.on_conflict,
        "on_duplicate": params.on_duplicate,
        "conflicts": changes.conflicts,
        "duplicates": [{"key": k, "same_as": v} for k, v in sorted(changes.duplicates.items())],
        "removal_not_found": changes.removal_not_found,
        "removal_list": changes.removal_digest,
        "not_packed": dict(sorted(changes.not_packed.items())),
    }


# Past either, pack advises the sharded layout: the single file is rewritten whole.
SHARDED_FROM = 2_000_000_000  # bytes of images
SHARDED_FROM_IMAGES = 50_000  # images: each change rewrites every record (~7 s at 100,000)


@dataclass
class PackOutcome(StageResult):
    """What a pack run did: its plan, and the header of the store it left published."""

    plan: PackPlan
    header: Header
    params: PackParams
    where: PackPaths

    @property
    def written(self) -> bool:
        return self.plan.writes_store

    @property
    def converted_from(self) -> Path | None:
        return self.plan.source if self.plan.converting else None

    def report(self) -> dict[str, Any]:
        return plan_report(self.plan.changes, self.params, self.header, self.written)

    def notes(self) -> list[str]:
        """Lines for the user beyond the summary: a store no longer used, when to switch
        layouts, annotations and removals that matched nothing."""
        changes, where, notes = self.plan.changes, self.where, self._advice()
        if self.converted_from is not None:
            notes.insert(
                0,
                f"  {self.converted_from} is no longer used; delete it when you like "
                "(its versions stay in DVC's cache and remote)",
            )
        if changes.unused_annotations:
            notes.append(
                f"  {len(changes.unused_annotations)} annotation row(s) or file(s) in "
                f"{where.annotations} matched no image, first: {changes.unused_annotations[0]} "
                f"(all in {where.report})"
            )
        if changes.removal_not_found and self.plan.removals_changed:  # once, not every run
            notes.append(
                f"  {len(changes.removal_not_found)} key(s) in {where.remove_list} are not "
                f"in the store (see {where.report})"
            )
        return notes

    def _advice(self) -> list[str]:
        header = self.header
        large = header.total_bytes > SHARDED_FROM or header.count >= SHARDED_FROM_IMAGES
        if self.params.layout == "single" and self.written and large:
            return [
                f"  note: {self.where.store} holds {header.count:,} images "
                f"({header.total_bytes / 1e9:.1f} GB) and is rewritten (and pushed) whole on "
                "every change; the sharded layout writes only what changed: docs/PIPELINE.md, "
                '"Growing past a few GB"'
            ]
        return []

    def summary(self) -> str:
        changes = self.plan.changes
        duplicates = "duplicates " + ("kept" if self.params.on_duplicate == "keep" else "skipped")
        parts = [f"{len(changes.added)} added"]
        for count, what in (
            (len(changes.replaced), "replaced"),
            (len(changes.relabeled) - len(changes.moved), "relabeled"),
            (len(changes.moved), "moved to another split by data/annotations/"),
            (len(changes.retracked), "with the same fields, tracked otherwise (data/annotations/)"),
            (len(changes.measured), "measured (their pixels' properties, computed once)"),
            (len(changes.removed), "removed"),
            (len(changes.resplit), "moved to another split"),
            (changes.unchanged, "already there"),
            (len(changes.duplicates), duplicates),
            (len(changes.conflicts) - len(changes.replaced), "conflicts skipped"),
        ):
            if count:
                parts.append(f"{count} {what}")
        if changes.fields_removed:
            removed = sorted(changes.fields_removed.items())
            parts.append(
                "fields removed by data/annotations: "
                + ", ".join(f"{name} from {count}" for name, count in removed)
            )
        return (
            f"pack: {', '.join(parts)}; {self.where.store} holds {self.header.count} images "
            f"({self.header.total_bytes / 1e6:,.1f} MB), {self._state()}"
        )

    def _state(self) -> str:
        if self.converted_from is not None:
            return f"converted from {self.converted_from}"
        upgrade = self.plan.upgrade
        if upgrade is not None and not self.plan.changes.changes_store:
            return upgrade
        return "written" if self.written else "unchanged, not rewritten"
