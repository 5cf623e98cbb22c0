"""Progress bars on a terminal, silence otherwise (DVC logs, CI, pipes).

Library functions take any object with `reset(total=...)` and `update(n)` (a
`Progress`): a tqdm bar from `bar()`, or None for no reporting.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    def reset(self, total: float | None = None) -> None: ...

    def update(self, n: float | None = 1) -> bool | None: ...


def interactive() -> bool:
    return sys.stderr.isatty()


def bar(total: int | None, desc: str, unit: str = "img") -> Any:
    """A tqdm progress bar (a context manager) that draws only when stderr is a
    terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not interactive(),
        leave=False,
        dynamic_ncols=True,
    )


def per_item(progress: Progress) -> Callable[[object], None]:
    """An `on_item` callback that moves the bar one step per item."""

    def update(_item: object) -> None:
        progress.update()

    return update
