"""Text from a store written into an export's files so that each file stays well-formed
and reads back as the same text: keys and labels may hold any character (a line break,
a control character, a lone surrogate from a JSON escape), and each file format carries
only some of them.

- JSON: every character has an escape; text that UTF-8 cannot encode (a lone surrogate)
  is written ASCII-escaped, as the same value.
- XML 1.0 has no form at all for most control characters (not even `&#1;`): text holding
  one is refused, with the reason, for the caller to report; tabs and line breaks are
  written as character references, which attribute-value normalization would
  otherwise turn into spaces.
- YAML: a double-quoted scalar with `\\u` / `\\U` escapes, which PyYAML reads back as
  the same text (a JSON-escaped surrogate pair it would read as two characters).
- Line lists (YOLO's `train.txt`): one key a line, read by `str.splitlines`: a key
  holding any line boundary or control character cannot be one line.
"""

from __future__ import annotations

import json
from typing import Any

# Where str.splitlines (ultralytics' reader) ends a line, beside \n and \r.
LINE_BOUNDARIES = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def shown(text: str) -> str:
    """Text for a note on the terminal: as it is, or quoted with escapes if it holds a
    character that is not printable (a line break would forge a line of its own)."""
    return text if text.isprintable() else repr(text)


def json_bytes(value: Any, **options: Any) -> bytes:
    """UTF-8 JSON of `value` (sorted keys unless told): non-ASCII as itself where UTF-8
    can encode it, else the whole document ASCII-escaped, which parses to the same."""
    options.setdefault("sort_keys", True)
    try:
        return json.dumps(value, ensure_ascii=False, **options).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, **options).encode("ascii")


def _xml_char(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
XML_ESCAPES.update({"\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})


def xml_attribute(text: str) -> str:
    """`text` escaped for a double-quoted XML attribute; ValueError (the reason) if XML
    1.0 cannot carry one of its characters."""
    bad = next((c for c in text if not _xml_char(ord(c))), None)
    if bad is not None:
        raise ValueError(f"holds the character U+{ord(bad):04X}, which XML cannot carry")
    return "".join(XML_ESCAPES.get(c, c) for c in text)


def yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar, in ASCII: PyYAML reads back the same."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def line_problem(text: str) -> str | None:
    """Why `text` cannot be one line of a line list, or None if it can."""
    if any(c in LINE_BOUNDARIES for c in text):
        return "holds a line break"
    if not text.isprintable() and any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text):
        return "holds a control character"
    if text != text.rstrip():  # the last line's would be lost to the reader's strip()
        return "ends with a space"
    return None
