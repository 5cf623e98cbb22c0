"""The Numbers page: what a version holds, counted over the catalog's columnar form by
the same SQL `imageshelf sql` runs (imageshelf/sql), each table shown with its question
so that it can be asked again, changed, on the command line.

Images and bytes per split; objects per category in each split; images by how many
objects they hold; the commonest sizes; formats and their file sizes. Nothing reads an
image, and a version's tables are counted once per store opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sql import SqlError, Version, answer, workspace_version
from ..store import ImageStore
from ..versions.catalog import catalog_at

QUESTIONS = {
    "splits": "SELECT split, count(*) AS images, sum(size) AS bytes\n"
    "FROM images GROUP BY ALL ORDER BY images DESC, split",
    "objects": "SELECT o.category AS category, split, count(*) AS objects\n"
    "FROM images, UNNEST(objects) AS t(o) GROUP BY ALL",
    "per_image": "SELECT coalesce(len(objects), 0) AS objects, count(*) AS images\n"
    "FROM images GROUP BY ALL ORDER BY objects",
    "sizes": "SELECT width, height, count(*) AS images\n"
    "FROM images GROUP BY ALL ORDER BY images DESC, width, height LIMIT 12",
    "formats": "SELECT format, count(*) AS images, min(size) AS smallest,\n"
    "  median(size)::BIGINT AS median, max(size) AS largest\n"
    "FROM images GROUP BY ALL ORDER BY images DESC, format",
}


@dataclass
class Table:
    question: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class Numbers:
    """The tables, and why one could not be counted (no DuckDB, no objects)."""

    tables: dict[str, Table]
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    def objects_by_split(self) -> tuple[list[str], list[tuple[str, list[int], int]]]:
        """The objects table as a grid: the splits, and per category (most first) its
        count in each split and in all."""
        table = self.tables.get("objects")
        if table is None:
            return [], []
        splits = sorted({str(split) for _category, split, _n in table.rows})
        counts: dict[str, dict[str, int]] = {}
        for category, split, n in table.rows:
            counts.setdefault(str(category), {})[str(split)] = n
        grid = [
            (category, [by.get(s, 0) for s in splits], sum(by.values()))
            for category, by in counts.items()
        ]
        return splits, sorted(grid, key=lambda row: (-row[2], row[0]))


def counted(version: str, store: ImageStore, catalog: Path, workspace: bool) -> Numbers:
    """The numbers of `version`: the workspace's catalog read in place (its columnar
    files checked against `store`), or a revision's through DVC."""
    if workspace:
        source = workspace_version(catalog, store)
    else:
        source = Version("images", catalog_at(version, None))
    numbers = Numbers({})
    try:
        columns, rows = answer("DESCRIBE images", [source])
        kinds = {row[0]: str(row[1]) for row in rows}
        for name, question in QUESTIONS.items():
            if name in ("objects", "per_image") and not _has_objects(kinds):
                continue
            found = Table(question)
            found.columns, found.rows = answer(question, [source])
            numbers.tables[name] = found
    except SqlError as exc:
        numbers.problem = str(exc)
    numbers.notes = source.notes
    return numbers


def _has_objects(kinds: dict[str, str]) -> bool:
    """Whether `objects` is a list of structs with a category (not JSON: values of
    several types, which the question cannot unnest)."""
    kind = kinds.get("objects", "")
    return kind.startswith("STRUCT(") and kind.endswith("[]") and "category " in kind
