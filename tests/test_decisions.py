"""The files a person's decisions are written to (imageshelf/project/decisions.py): what
is written reads back as the pipeline reads it, two writers at once lose nothing, and a
value a file could not carry is refused with nothing written."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from imageshelf.project import decisions
from imageshelf.stages.pack.inputs import read_removals

from conftest import ingest_and_pack, put, stage

KEYS = ["plain.png", "#hash.png", " spaced.png", "new\nline.png", '"quoted".png', "猫.png"]


def test_dropped_keys_read_back_as_pack_reads_them_each_once(tmp_path):
    listed = tmp_path / "remove.txt"
    listed.write_text("# keys to drop\nold.png")  # no newline at the end
    assert decisions.drop(listed, KEYS) == KEYS
    assert decisions.drop(listed, ["plain.png", "new\nline.png"]) == []  # there already
    assert read_removals(listed) == ["old.png", *KEYS]
    assert listed.read_text().startswith("# keys to drop\nold.png\n")


def test_rows_are_one_per_image_in_key_order_and_a_null_removes(tmp_path):
    table = tmp_path / "annotations" / "viewer.jsonl"
    decisions.set_fields(table, "b.png", {"label": "dog"})
    decisions.set_fields(table, "a.png", {"label": "cat", "score": 0.5})
    decisions.set_fields(table, "b.png", {"split": "val", "label": None})
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert rows == [
        {"file_name": "a.png", "label": "cat", "score": 0.5},
        {"file_name": "b.png", "label": None, "split": "val"},
    ]
    assert decisions.pending_row(table, "b.png") == {"label": None, "split": "val"}


def _write_many(table: str, first: int) -> None:
    for i in range(first, first + 40):
        decisions.set_fields(Path(table), f"{i:03d}.png", {"label": str(i)})


def test_two_writers_at_once_lose_no_row(tmp_path):
    table = tmp_path / "viewer.jsonl"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_many, args=(str(table), n)) for n in (0, 40)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert [row["file_name"] for row in rows] == [f"{i:03d}.png" for i in range(80)]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("label", "two\nlines", "one line"),
        ("label", "tab\there", "one line"),
        ("label", " padded", "spaces around"),
        ("label", "x" * 1001, "at most 1000"),
        ("sha256", "0" * 64, "the store's own field"),
        ("file_name", "a.png", "the store's own field"),
        ("", "x", "cannot be a field's name"),
        ("bad\nname", "x", "cannot be a field's name"),
        ("score", float("nan"), "not a value JSON can hold"),
        ("score", 10**400, "past 64 bits"),
    ],
)
def test_a_value_a_table_cannot_carry_is_refused_and_nothing_written(tmp_path, name, value, reason):
    table = tmp_path / "viewer.jsonl"
    with pytest.raises(decisions.DecisionError, match=reason):
        decisions.set_fields(table, "a.png", {name: value})
    assert not table.exists()


def test_a_hand_edited_line_stops_the_change_naming_it(tmp_path):
    table = tmp_path / "viewer.jsonl"
    table.write_text('{"file_name": "a.png", "label": "cat"}\nnot json\n')
    with pytest.raises(decisions.DecisionError, match=r"viewer.jsonl:2: not a row"):
        decisions.set_fields(table, "b.png", {"label": "dog"})
    assert table.read_text().endswith("not json\n")  # left as it was


ODD = ["#1 hash.jpg", "new\nline.jpg", 'quote".jpg', "猫/é.jpg"]  # keys a file may have


def test_what_the_viewer_writes_is_what_pack_applies(workspace):
    """The table's rows and the removal list, read by the pipeline itself, for keys
    with a #, a newline, a quote or letters beyond ASCII too."""
    from test_audit import encoded, scene

    names = [f"{n}.jpg" for n in range(3)] + ODD
    put(Path("data/incoming"), {name: encoded(scene(n)) for n, name in enumerate(names)})
    ingest_and_pack().close()
    table = Path("data/annotations") / decisions.VIEWER_TABLE
    decisions.set_fields(table, "0.jpg", {"label": "road", "objects": [{"bbox": [1, 2, 3, 4]}]})
    decisions.set_fields(table, "1.jpg", {"split": "test"})
    decisions.set_rows(table, {key: {"label": "odd"} for key in ODD[:2]})
    decisions.drop(Path("data/remove.txt"), ["2.jpg", *ODD[2:]])
    store = ingest_and_pack()
    assert store.metadata("0.jpg") == {"label": "road", "objects": [{"bbox": [1, 2, 3, 4]}]}
    assert store.record("1.jpg").effective_split == "test"
    assert [store.metadata(key) for key in ODD[:2]] == [{"label": "odd"}] * 2
    assert "2.jpg" not in store and not any(key in store for key in ODD[2:])
    assert stage("validate").exit_code == 0


def test_a_pipe_in_place_of_a_decisions_file_is_one_line_never_waited_on(tmp_path):
    """A FIFO where the table, the removal list or the reviewed file belongs: each
    change says so at once, and the viewer's pending view reads nothing."""
    for name in ("viewer.jsonl", "remove.txt", "reviewed.jsonl"):
        os.mkfifo(tmp_path / name)
    with pytest.raises(decisions.DecisionError, match="not a regular file"):
        decisions.set_fields(tmp_path / "viewer.jsonl", "a.png", {"label": "cat"})
    with pytest.raises(decisions.DecisionError, match="not a regular file"):
        decisions.drop(tmp_path / "remove.txt", ["a.png"])
    with pytest.raises(decisions.DecisionError, match="not a regular file"):
        decisions.review(tmp_path / "reviewed.jsonl", "dark", ["a.png"])
    assert decisions.pending_row(tmp_path / "viewer.jsonl", "a.png") == {}
