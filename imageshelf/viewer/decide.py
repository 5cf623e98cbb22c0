"""What a person decides on the viewer's pages, written as files (project/decisions.py):
a label or field, a split, an object's category or its removal, an image dropped, a
finding reviewed. Nothing else on disk changes; `dvc repro` applies them, `git checkout`
of a file undoes them, and /decisions shows the `git diff` to come.

Only a POST changes anything, and only one that carries this run's token (in every
form the pages print), comes from this viewer's own pages (its Origin header), reaches
it by a Host it answers to (app.py's guard), and comes from this machine (loopback).
`imageshelf view --read-only` prints no form and refuses every POST. Decisions are about
the workspace's store: a page of another version has no forms.
"""

from __future__ import annotations

import hmac
import os
import secrets
import subprocess
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import Flask, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ..project import decisions
from ..quality.reviewed import ReviewedError, check_decision
from ..store import ImageStore, Record
from .hosts import is_loopback
from .stores import WORKSPACE, Versions

SAID_KEPT = 64  # messages of the last decisions, kept for the page they lead to
GIT_TIMEOUT = 10.0  # seconds for `git diff` of the three files


@dataclass
class Desk:
    """Where decisions go, and this run's token. `read_only`: no forms, no writes."""

    table: Path  # data/annotations/viewer.jsonl
    remove_list: Path  # data/remove.txt
    reviewed: Path  # data/reviewed.jsonl
    root: Path = Path(".")  # the project: where `git diff` runs
    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    said: OrderedDict[str, str] = field(default_factory=OrderedDict)

    @classmethod
    def nowhere(cls) -> Desk:
        """No decisions: a read-only viewer (a test's app, a page of a store alone)."""
        return cls(Path(os.devnull), Path(os.devnull), Path(os.devnull), read_only=True)

    @property
    def files(self) -> tuple[Path, Path, Path]:
        return (self.table, self.remove_list, self.reviewed)

    def remember(self, message: str) -> str:
        """An id for `message`, shown by the page a decision leads to."""
        said = secrets.token_urlsafe(8)
        self.said[said] = message
        while len(self.said) > SAID_KEPT:
            self.said.popitem(last=False)
        return said


def register(app: Flask) -> None:
    @app.post("/decide")
    def decide() -> Response:
        desk = _desk()
        _refuse_unless_ours(desk)
        form = request.form
        action, key = form.get("action", ""), form.get("key", "")
        store: ImageStore = _versions().store(WORKSPACE)
        act = ACTIONS.get(action)
        if act is None and action != "many":
            abort(400, f"no decision is called {action!r}")
        try:
            if act is None:
                message = _many(desk, store, form)
            else:
                message = act(desk, store, _record(store, key), form)
        except decisions.DecisionError as exc:
            abort(400, str(exc))
        back = form.get("back", "")
        target = back if _local(back) else url_for("pending")
        return redirect(_saying(target, desk.remember(message)), 303)

    @app.get("/decisions")
    def pending() -> str:
        desk = _desk()
        return render_template("decisions.html", files=[_diff(desk, path) for path in desk.files])

    @app.context_processor
    def forms() -> dict[str, Any]:
        desk = _desk()
        said = desk.said.get(request.args.get("said") or "")
        return {"desk": None if desk.read_only else desk, "said": said}


def _desk() -> Desk:
    desk: Desk = current_app.config["desk"]
    return desk


def _versions() -> Versions:
    versions: Versions = current_app.config["versions"]
    return versions


def _refuse_unless_ours(desk: Desk) -> None:
    """A POST from anywhere but this viewer's own pages, on this machine, changes
    nothing (403, with the reason)."""
    if desk.read_only:
        abort(403, "this viewer is read-only (imageshelf view --read-only)")
    if not is_loopback(request.remote_addr or ""):
        abort(403, "decisions are taken on this machine only (the viewer's loopback address)")
    if request.headers.get("Origin") != request.host_url.rstrip("/"):
        abort(403, "a decision must come from this viewer's own page (its Origin)")
    token = request.form.get("_token", "")
    if not hmac.compare_digest(token.encode(), desk.token.encode()):
        abort(403, "this page is out of date (its form token is not this run's): reload it")


def _record(store: ImageStore, key: str) -> Record:
    try:
        return store.record(key)
    except KeyError:
        abort(400, f"no image {key!r} in the workspace's store")


def _saying(target: str, said: str) -> str:
    """The page to go back to, showing the message `said` (and no earlier one)."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "said"]
    return parts._replace(query=urlencode([*query, ("said", said)])).geturl()


def _local(path: str) -> bool:
    """A path on this viewer (never another site's: //host, /\\host)."""
    return path.startswith("/") and not path.startswith(("//", "/\\"))


def pending_fields(desk: Desk, key: str) -> dict[str, Any]:
    """The fields the viewer's table sets for `key`, not yet applied by `dvc repro`."""
    return decisions.pending_row(desk.table, key)


# -------------------------------------------------------------------- the decisions


def _fields(desk: Desk, store: ImageStore, record: Record, form: Any) -> str:
    name = form.get("name", "").strip()
    text = form.get("value", "").strip()
    current = {**record.metadata, **pending_fields(desk, record.key)}.get(name)
    value: Any = None if form.get("remove") else typed(text, current)
    decisions.set_fields(desk.table, record.key, {name: value})
    done = f"removed {name}" if value is None else f"{name} = {text}"
    return f"{record.key}: {done} (in {desk.table}; dvc repro applies it)"


def typed(text: str, current: Any) -> Any:
    """The text of a form as the field's value: a number where the field holds one
    (so a score stays comparable), else text."""
    if isinstance(current, list | dict):
        raise decisions.DecisionError(
            "this field holds a list or an object: an image's objects are changed one by "
            "one on its page, other such fields in data/annotations/"
        )
    if isinstance(current, bool) or not isinstance(current, int | float):
        return text
    try:
        return int(text) if isinstance(current, int) else float(text)
    except ValueError:
        kind = "whole number" if isinstance(current, int) else "number"
        raise decisions.DecisionError(f"{text!r} is not a {kind}, as the field holds") from None


def _split(desk: Desk, store: ImageStore, record: Record, form: Any) -> str:
    split = form.get("split", "").strip()
    if not split:
        raise decisions.DecisionError("a split has a name")
    decisions.set_fields(desk.table, record.key, {"split": split})
    return f"{record.key}: moved to {split} (in {desk.table}; dvc repro applies it)"


def _drop(desk: Desk, store: ImageStore, record: Record, form: Any) -> str:
    decisions.drop(desk.remove_list, [record.key])
    return f"{record.key}: dropped from the next version (in {desk.remove_list})"


def _keep_one(desk: Desk, store: ImageStore, record: Record, form: Any) -> str:
    """A duplicate group: keep `record`, drop the others the form names."""
    others = [k for k in form.getlist("other") if k != record.key]
    for key in others:
        _record(store, key)
    added = decisions.drop(desk.remove_list, others)
    return f"kept {record.key}; dropped {len(added)} other(s) (in {desk.remove_list})"


def _object(desk: Desk, store: ImageStore, record: Record, form: Any) -> str:
    objects = {**record.metadata, **pending_fields(desk, record.key)}.get("objects")
    try:
        index = int(form.get("index", ""))
    except ValueError:
        index = -1
    if not isinstance(objects, list) or not 0 <= index < len(objects):
        raise decisions.DecisionError(f"{record.key} has no object {form.get('index')!r}")
    objects = list(objects)
    if form.get("delete"):
        del objects[index]
        done = f"object {index + 1} deleted"
    else:
        category = form.get("category", "").strip()
        objects[index] = recategorised(objects[index], category, objects)
        done = f"object {index + 1} is now {category}"
    decisions.set_fields(desk.table, record.key, {"objects": objects})
    return f"{record.key}: {done} (in {desk.table}; dvc repro applies it)"


def recategorised(obj: Any, category: str, objects: list[Any]) -> dict[str, Any]:
    """An object with another category: its id follows where another object of the
    image has that category with an id; otherwise the old id goes (never a wrong one)."""
    if not isinstance(obj, dict) or not category:
        raise decisions.DecisionError("an object (with a category) is changed by a category")
    changed = {**obj, "category": category}
    ids = [o.get("category_id") for o in objects if isinstance(o, dict)]
    same = [i for o, i in zip(objects, ids, strict=True) if o.get("category") == category]
    if same and same[0] is not None:
        changed["category_id"] = same[0]
    else:
        changed.pop("category_id", None)
    return changed


def _review(desk: Desk, store: ImageStore, record: Record, form: Any) -> str:
    kind = form.get("kind", "")
    keys = [record.key, *(k for k in form.getlist("other") if k != record.key)]
    for key in keys[1:]:
        _record(store, key)
    try:
        check_decision(kind, keys)
    except ReviewedError as exc:
        raise decisions.DecisionError(str(exc)) from None
    decisions.review(desk.reviewed, kind, keys)
    what = kind.replace("_", " ")
    return f"{' and '.join(keys)}: {what} reviewed, not a problem (in {desk.reviewed})"


def _move(desk: Desk, store: ImageStore, record: Record, form: Any) -> str:
    """A leak: move `record` into the split of the image it leaks with."""
    other = _record(store, form.get("other", ""))
    split = other.effective_split
    if not split:
        raise decisions.DecisionError(f"{other.key} is in no split")
    decisions.set_fields(desk.table, record.key, {"split": split})
    return f"{record.key}: moved to {split}, beside {other.key} (in {desk.table})"


def _many(desk: Desk, store: ImageStore, form: Any) -> str:
    """The gallery's ticked images: each given one label or split, or dropped."""
    keys = list(dict.fromkeys(form.getlist("other")))
    if not keys:
        raise decisions.DecisionError("no image is ticked")
    for key in keys:
        _record(store, key)
    do, value = form.get("do", ""), form.get("value", "").strip()
    if do == "drop":
        added = decisions.drop(desk.remove_list, keys)
        return f"{len(added)} image(s) dropped from the next version (in {desk.remove_list})"
    if do not in ("label", "split") or not value:
        raise decisions.DecisionError("a label or a split to give the ticked images")
    decisions.set_rows(desk.table, {key: {do: value} for key in keys})
    return f"{len(keys)} image(s): {do} = {value} (in {desk.table}; dvc repro applies it)"


Action = Callable[[Desk, ImageStore, Record, Any], str]
ACTIONS: dict[str, Action] = {
    "field": _fields,
    "split": _split,
    "drop": _drop,
    "keep": _keep_one,
    "object": _object,
    "review": _review,
    "move": _move,
}


# -------------------------------------------------------------------- what is pending


@dataclass(frozen=True)
class FileDiff:
    path: Path
    text: str  # the diff to come, or the file as it is where there is no git
    how: str  # "git diff", "new file" or "no git"


def _diff(desk: Desk, path: Path) -> FileDiff:
    """What the file changes against the last commit, as `git diff` shows it. Only a
    regular file is shown (git would wait on a pipe); anything else says what it is."""
    if not path.exists():
        return FileDiff(path, "", "none")
    try:
        text = decisions.read_text(path)
    except decisions.DecisionError as exc:
        return FileDiff(path, str(exc), "no file")
    git = ["git", "-C", str(desk.root)]
    try:
        tracked = _run([*git, "ls-files", "--error-unmatch", "--", str(path)]).returncode == 0
        if tracked:
            found = _run([*git, "diff", "--no-color", "--", str(path)])
            return FileDiff(path, found.stdout, "git diff")
        found = _run([*git, "diff", "--no-color", "--no-index", "--", "/dev/null", str(path)])
        return FileDiff(path, found.stdout, "new file")
    except (OSError, subprocess.TimeoutExpired):
        return FileDiff(path, text, "no git")


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, errors="replace", timeout=GIT_TIMEOUT
    )
