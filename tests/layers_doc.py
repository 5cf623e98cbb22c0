"""docs/DEVELOPING.md's map of the library, drawn from what `make lint` checks:
pyproject.toml's layers contract (the order, from the top), each part's docstring (what
lives there) and the names of the contracts on what a part may import from outside the
project. A test compares the map in the doc with this drawing, so neither can drift.

    python tests/layers_doc.py --write    # redraw the map in docs/DEVELOPING.md
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tomllib

PROJECT = Path(__file__).resolve().parents[1]
DOC = PROJECT / "docs" / "DEVELOPING.md"
BEGIN = "<!-- layers: drawn by tests/layers_doc.py from pyproject.toml; do not edit -->"
END = "<!-- /layers -->"


def _contracts() -> list[dict]:
    config = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def _summary(name: str) -> str:
    """The first paragraph of a part's docstring (a folder's __init__, or a module)."""
    folder = PROJECT / "imageshelf" / name
    path = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split()).rstrip(":").replace("|", "\\|")


def render() -> str:
    contracts = _contracts()
    top = next(c for c in contracts if c.get("containers") == ["imageshelf"])
    rows = ["| layer, from the top | what lives there |", "|---|---|"]
    for layer in top["layers"]:
        names = [part.strip() for part in layer.split("|")]  # side by side
        for name in names:
            shown = f"`{name}/`" if (PROJECT / "imageshelf" / name).is_dir() else f"`{name}`"
            if name != names[0]:
                shown += f" (beside `{names[0]}`)"
            rows.append(f"| {shown} | {_summary(name)} |")
    outside = [f"- {c['name']}" for c in contracts if c.get("type") in ("externals", "forbidden")]
    lines = [BEGIN, *rows, "", "What a part may import from outside the project:", ""]
    return "\n".join([*lines, *outside, END])


def drawn_in_doc() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) : text.index(END) + len(END)]


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(DOC.read_text().replace(drawn_in_doc(), render()))
    else:
        print(render())
