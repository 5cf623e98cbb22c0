"""The one base of every error the library raises for a person to read."""

from __future__ import annotations


class ShelfError(Exception):
    """Something a user can fix: the message is one line that says what is wrong and,
    where there is one, the command that fixes it. Command-line front ends print it as
    it is, without a traceback."""
