"""Run a stage in the project's environment, whichever `python` DVC found.

dvc.yaml runs `python pipeline/NAME.py`. With DVC installed outside the project's
environment (pipx, the system's package manager), `python` may be one without the
project's packages. Then this re-runs the stage with the project's `.venv`, or, if
there is none, stops with one line that says what to do. Standard library only: it
runs before anything else is imported.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

NEEDED = ("imageshelf", "click", "yaml", "PIL", "tqdm", "lmdb", "orjson")
PROJECT = Path(__file__).resolve().parent.parent
VENV = PROJECT / ".venv"


def _missing() -> str | None:
    return next((name for name in NEEDED if importlib.util.find_spec(name) is None), None)


def ensure() -> None:
    missing = _missing()
    if missing is None:
        return
    python = VENV / "bin" / "python"
    here = Path(sys.prefix).resolve()
    if python.exists() and here != VENV.resolve() and not os.environ.get("IMAGESHELF_REEXEC"):
        os.environ["IMAGESHELF_REEXEC"] = "1"  # once: never a loop
        os.execv(str(python), [str(python), *sys.argv])
    sys.exit(
        f"Error: {sys.executable} lacks the project's packages (no module {missing!r}); "
        "run `make setup` in the project, then `dvc repro` again"
    )


ensure()
