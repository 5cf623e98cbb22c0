"""The README's promises point at tests that exist."""

from __future__ import annotations

import re

from conftest import PROJECT


def test_every_test_the_readme_names_exists():
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", (PROJECT / "README.md").read_text())
    assert len(named) >= 10
    missing = [f"{file}::{test}" for file, test in named
               if f"def {test}(" not in (PROJECT / "tests" / file).read_text()]
    assert missing == []
