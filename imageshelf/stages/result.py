"""What every stage's `run` returns, so that each stage script ends the same way
(`commands.finish`): the summary line, the notes a user should read beside it, then
`check`, which raises the stage's error only after the user has seen what happened."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class StageResult(ABC):
    @abstractmethod
    def summary(self) -> str:
        """One line: what the stage did."""

    def notes(self) -> list[str]:
        """Lines beside the summary (to stderr): rejects, advice, what matched nothing."""
        return []

    @abstractmethod
    def report(self) -> dict[str, Any]:
        """The report the stage wrote (its JSON file, or DVC metrics)."""

    def check(self) -> None:
        """Raise the stage's error (a ShelfError) if the stage failed."""
        return None
