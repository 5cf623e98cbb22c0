"""Read and check params.yaml: one clear line for every mistake a user can make in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

DEFAULTS: dict[str, dict[str, Any]] = {
    "ingest": {"strict": False, "max_pixels": 89_478_485, "max_file_bytes": 256 << 20,
               "max_metadata_bytes": 1 << 20},
    "pack": {"on_conflict": "error", "on_duplicate": "skip",
             "split": {"train": 0.8, "val": 0.1, "test": 0.1},
             "layout": "single", "store": "data/images.lmdb", "shard_mb": 1024},
    "stats": {"thumbnail_px": 64, "thumbnails_per_label": 8, "max_labels": 20},
}
CHOICES = {
    ("pack", "on_conflict"): ("error", "replace", "skip"),
    ("pack", "on_duplicate"): ("keep", "skip"),
    ("pack", "layout"): ("single", "sharded"),
}


def load_params(section: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """The `section` of params.yaml, with defaults for missing keys, checked."""
    path = Path(path)
    values = dict(DEFAULTS[section])
    if path.exists():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise click.ClickException(f"{path}: not valid YAML{where}") from None
        given = document.get(section) or {}
        if not isinstance(given, dict):
            raise click.ClickException(f"{path}: '{section}' must be a mapping of settings")
        unknown = sorted(set(given) - set(values))
        if unknown:
            raise click.ClickException(
                f"{path}: unknown setting {section}.{unknown[0]}; known: {', '.join(values)}"
            )
        values.update(given)
    for key, default in DEFAULTS[section].items():
        value = values[key]
        choices = CHOICES.get((section, key))
        if choices and value not in choices:
            raise click.ClickException(
                f"{path}: {section}.{key} must be one of {', '.join(choices)} (got {value!r})"
            )
        if isinstance(default, bool) and not isinstance(value, bool):
            raise click.ClickException(f"{path}: {section}.{key} must be true or false")
        if isinstance(default, dict):
            from .splits import check_ratios

            problem = check_ratios(value)
            if problem:
                raise click.ClickException(f"{path}: {section}.{key} {problem}")
        if type(default) is int and (type(value) is not int or value <= 0):
            raise click.ClickException(
                f"{path}: {section}.{key} must be a positive whole number (got {value!r})"
            )
    if section == "pack":
        _check_layout(values, path)
    return values


def _check_layout(values: dict[str, Any], path: Path) -> None:
    store = values["store"]
    if not isinstance(store, str) or not store.strip():
        raise click.ClickException(f"{path}: pack.store must be a path, like data/images.lmdb")
    if values["layout"] == "single" and not store.endswith(".lmdb"):
        raise click.ClickException(
            f"{path}: pack.layout is single, so pack.store must be a file ending in .lmdb "
            f"(got {store!r}); for example data/images.lmdb")
    if values["layout"] == "sharded" and store.endswith(".lmdb"):
        raise click.ClickException(
            f"{path}: pack.layout is sharded, so pack.store must be a folder, not a .lmdb "
            f"file (got {store!r}); for example data/images")


def default_store(path: str | Path = "params.yaml") -> str:
    """The store's path as params.yaml sets it (pack.store), for every command's --store."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        store = (document.get("pack") or {}).get("store")
    except (OSError, yaml.YAMLError, AttributeError):
        store = None
    return store if isinstance(store, str) and store else DEFAULTS["pack"]["store"]
