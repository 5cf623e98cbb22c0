"""Progress bars on a terminal, silence otherwise (DVC logs, CI, pipes)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def interactive() -> bool:
    return sys.stderr.isatty()


def bar(total: int | None, desc: str, unit: str = "img") -> tqdm:
    """A progress bar that draws only when stderr is a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not interactive(), leave=False,
                dynamic_ncols=True)


def track(items: Iterable[T], total: int | None, desc: str, unit: str = "img") -> Iterator[T]:
    with bar(total, desc, unit) as progress:
        for item in items:
            yield item
            progress.update(1)
