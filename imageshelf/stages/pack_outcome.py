"""What a pack run tells its user: the summary line, the notes beside it (a store no
longer used, when to switch layouts, what matched nothing) and reports/pack.json, the
report for people and for validate (the images not packed, and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..params import PackParams
from ..store import Header
from .pack_changes import Changes
from .result import StageResult


def plan_report(plan: Changes, params: PackParams, header: Header, written: bool) -> dict[str, Any]:
    return {
        "written": written,
        "count": header.count,
        "total_bytes": header.total_bytes,
        "content_digest": header.content_digest,
        "added": len(plan.added),
        "replaced": len(plan.replaced),
        "relabeled": len(plan.relabeled),
        "retracked": len(plan.retracked),
        "unchanged": plan.unchanged,
        "removed": len(plan.removed),
        "resplit": len(plan.resplit),
        "fields_removed": dict(sorted(plan.fields_removed.items())),
        "unused_annotations": plan.unused_annotations,
        "split": dict(params.split),
        "on_conflict": params.on_conflict,
        "on_duplicate": params.on_duplicate,
        "conflicts": plan.conflicts,
        "duplicates": [{"key": k, "same_as": v} for k, v in sorted(plan.duplicates.items())],
        "removal_not_found": plan.removal_not_found,
        "removal_list": plan.removal_digest,
        "not_packed": dict(sorted(plan.not_packed.items())),
    }


# Past either, pack advises the sharded layout: the single file is rewritten whole.
SHARDED_FROM = 2_000_000_000  # bytes of images
SHARDED_FROM_IMAGES = 50_000  # images: each change rewrites every record (~7 s at 100,000)


@dataclass
class PackPaths:
    """The paths a pack run was given, for what it tells the user."""

    store: Path
    report: Path = Path("reports/pack.json")
    annotations: Path = Path("data/annotations")
    remove_list: Path = Path("data/remove.txt")


@dataclass
class PackOutcome(StageResult):
    """What a pack run did: the plan, the published header, and how it was written."""

    plan: Changes
    header: Header
    written: bool
    converted_from: Path | None
    params: PackParams
    where: PackPaths
    removals_changed: bool = True  # the removal list differs from the last run's
    upgraded: str | None = None  # why an unchanged store was written again

    def report(self) -> dict[str, Any]:
        return plan_report(self.plan, self.params, self.header, self.written)

    def notes(self) -> list[str]:
        """Lines for the user beyond the summary: a store no longer used, when to switch
        layouts, annotations and removals that matched nothing."""
        plan, where, notes = self.plan, self.where, self._advice()
        if self.converted_from is not None:
            notes.insert(
                0,
                f"  {self.converted_from} is no longer used; delete it when you like "
                "(its versions stay in DVC's cache and remote)",
            )
        if plan.unused_annotations:
            notes.append(
                f"  {len(plan.unused_annotations)} annotation row(s) or file(s) in "
                f"{where.annotations} matched no image, first: {plan.unused_annotations[0]} "
                f"(all in {where.report})"
            )
        if plan.removal_not_found and self.removals_changed:  # once, not every run
            notes.append(
                f"  {len(plan.removal_not_found)} key(s) in {where.remove_list} are not "
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
        plan = self.plan
        duplicates = "duplicates " + ("kept" if self.params.on_duplicate == "keep" else "skipped")
        parts = [f"{len(plan.added)} added"]
        for count, what in (
            (len(plan.replaced), "replaced"),
            (len(plan.relabeled), "relabeled"),
            (len(plan.retracked), "with the same fields, tracked otherwise (data/annotations/)"),
            (len(plan.removed), "removed"),
            (len(plan.resplit), "moved to another split"),
            (plan.unchanged, "already there"),
            (len(plan.duplicates), duplicates),
            (len(plan.conflicts) - len(plan.replaced), "conflicts skipped"),
        ):
            if count:
                parts.append(f"{count} {what}")
        if plan.fields_removed:
            removed = sorted(plan.fields_removed.items())
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
        if self.upgraded is not None and not self.plan.changes_store:
            return self.upgraded
        return "written" if self.written else "unchanged, not rewritten"
