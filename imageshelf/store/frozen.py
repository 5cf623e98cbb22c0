"""Small immutable value classes for the reading path, without `dataclasses`.

Importing dataclasses (it imports inspect) would add about 28 ms to a fresh process's
first read (see the package's docstring). Each class lists its
fields in `__slots__` and sets them in its own `__init__` (through `_init`); this base
gives equality, hashing, repr, pickling and `replace`, as a frozen dataclass would.
"""

from __future__ import annotations

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from typing import Any, TypeVar

    F = TypeVar("F", bound="Frozen")


class Frozen:
    __slots__: tuple[str, ...] = ()

    def _init(self, *values: Any) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), self._values()

    def replace(self: F, **changes: Any) -> F:
        """A copy with some fields changed (dataclasses.replace)."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = {name: getattr(self, name) for name in self.__slots__}
        return type(self)(**{**values, **changes})
