"""Findings reviewed as not a problem: a decision is a line of data/reviewed.jsonl, and
the next stats or audit stops listing what it names, counts it as reviewed, and lists
it again once the line is deleted. A line that is no decision stops both in one line
naming file:line; a decision naming a key the store does not hold is reported as stale,
never an error."""

from __future__ import annotations

import json
from pathlib import Path

from test_audit import INCOMING, encoded, planted, scene, split_of

from imageshelf.project.params import QualityParams
from imageshelf.quality.findings import Assessed, find_assessed
from imageshelf.quality.reviewed import read_decisions, set_aside

from conftest import ingest_and_pack, put, report, stage

REVIEWED = Path("data/reviewed.jsonl")
HEADER = "# reviewed findings\n\n"


def decide(*decisions: dict) -> None:
    REVIEWED.write_text(HEADER + "".join(json.dumps(d) + "\n" for d in decisions))


def findings() -> dict:
    return json.loads(Path("reports/quality.json").read_text())


def stats() -> dict:
    result = stage("stats")
    assert result.exit_code == 0, result.output
    return report("stats")["quality"]


def test_a_reviewed_dark_image_is_no_longer_flagged_until_its_line_is_deleted(workspace):
    put(INCOMING, planted())
    ingest_and_pack().close()
    assert stats()["reviewed"] == 0 and "issues/dark.jpg" in findings()["issues"]["dark"]
    note = "a night shot, as intended"
    decide({"kind": "dark", "keys": ["issues/dark.jpg"], "note": note})
    counts = stats()
    assert counts["reviewed"] == 1 and counts["total"]["dark"] == 0
    assert findings()["issues"]["dark"] == []
    applied = findings()["reviewed"]["applied"]
    assert applied == [{"line": 3, "kind": "dark", "keys": ["issues/dark.jpg"], "note": note}]
    assert stage("ls", "--where", "dark=true").stdout == ""  # the filters agree
    shown = stage("audit")
    assert "dark:" not in shown.stdout
    assert "reviewed: 1 set aside as not a problem (data/reviewed.jsonl)" in shown.stdout

    REVIEWED.write_text(HEADER)  # un-reviewed: the line deleted
    counts = stats()
    assert counts["reviewed"] == 0 and counts["total"]["dark"] == 1
    assert findings()["issues"]["dark"] == ["issues/dark.jpg"]


def test_a_reviewed_near_pair_and_a_reviewed_leak_are_no_longer_listed(workspace):
    (workspace / ".dvc").mkdir()  # the cache: what the search found is kept unfiltered
    put(INCOMING, planted())
    ingest_and_pack().close()
    before = stats()
    assert before["leak_pairs"] == {"test-train": 2}
    decide(
        {"kind": "near_duplicates", "keys": ["near/train.jpg", "clean/2.jpg"]},  # any order
        {"kind": "leaks", "keys": ["clean/0.jpg", "exact/test.jpg"]},
        {"kind": "leaks", "keys": ["exact/test.jpg", "clean/0.jpg"]},  # the same, again
    )
    counts = stats()
    found = findings()
    near = [group["keys"] for group in found["near_duplicates"]]
    assert ["clean/2.jpg", "near/train.jpg"] not in near and [
        "clean/1.jpg",
        "near/test.png",
    ] in near
    assert counts["total"]["near_groups"] == before["total"]["near_groups"] - 1
    leaked = {(leak["key_a"], leak["key_b"]) for leak in found["leaks"]}
    assert leaked == {("near/test.png", "clean/1.jpg")} and counts["leak_pairs"] == {
        "test-train": 1
    }
    assert found["exact_duplicates"] == [["clean/0.jpg", "exact/test.jpg"]]  # copies all the same
    assert counts["reviewed"] == 2 and [d["line"] for d in found["reviewed"]["applied"]] == [3, 4]

    decide()  # every line deleted: back, with no full search (the state is not filtered)
    assert stats() == before


def test_two_pictures_reviewed_as_no_near_duplicates_leak_nothing(workspace):
    put(INCOMING, planted())
    ingest_and_pack().close()
    decide({"kind": "near_duplicates", "keys": ["clean/1.jpg", "near/test.png"]})
    found = json.loads(stage("audit", "--json").stdout)
    assert ["clean/1.jpg", "near/test.png"] not in [g["keys"] for g in found["near_duplicates"]]
    assert [leak["kind"] for leak in found["leaks"]] == ["exact"]
    assert found["reviewed"]["applied"][0]["keys"] == ["clean/1.jpg", "near/test.png"]


def test_a_reviewed_exact_group_comes_back_when_a_new_copy_arrives(workspace):
    put(INCOMING, planted())
    store = ingest_and_pack()
    copy = store.get("clean/0.jpg")
    store.close()
    decide({"kind": "exact_duplicates", "keys": ["exact/test.jpg", "clean/0.jpg"]})
    found = json.loads(stage("audit", "--json", "--kind", "exact_duplicates").stdout)
    assert found["exact_duplicates"] == [] and len(found["reviewed"]["applied"]) == 1
    put(INCOMING, {"again/0.jpg": copy, **split_of("again/0.jpg", "train")})
    ingest_and_pack().close()
    found = json.loads(stage("audit", "--json", "--kind", "exact_duplicates").stdout)
    assert found["exact_duplicates"] == [["again/0.jpg", "clean/0.jpg", "exact/test.jpg"]]
    assert found["reviewed"]["applied"] == [] and found["reviewed"]["unmatched"] != []


def test_a_decision_on_keys_the_store_does_not_hold_is_stale_not_an_error(workspace):
    put(INCOMING, {"a.jpg": encoded(scene(1)), "b.jpg": encoded(scene(2))})
    ingest_and_pack().close()
    decide({"kind": "dark", "keys": ["gone.jpg"]}, {"kind": "leaks", "keys": ["a.jpg", "x.jpg"]})
    counts = stats()
    assert counts["reviewed"] == 0
    stale = findings()["reviewed"]["stale"]
    assert [(d["line"], d["keys"]) for d in stale] == [(3, ["gone.jpg"]), (4, ["a.jpg", "x.jpg"])]
    shown = stage("audit")
    assert shown.exit_code == 0
    assert "stale: line 3 names a key the store does not hold: gone.jpg" in shown.stdout


def test_a_line_that_is_no_decision_stops_stats_and_audit_in_one_line(workspace):
    put(INCOMING, {"a.jpg": encoded(scene(1))})
    ingest_and_pack().close()
    wrong = {
        "{not json": "not JSON",
        '["dark", "a.jpg"]': "a JSON object",
        '{"kind": "darkish", "keys": ["a.jpg"]}': "'darkish' is no finding",
        '{"kind": "dark", "keys": "a.jpg"}': "a list of strings",
        '{"kind": "dark", "keys": [1]}': "a list of strings",
        '{"kind": "dark", "keys": ["a.jpg", "b.jpg"]}': "names one key (got 2)",
        '{"kind": "leaks", "keys": ["a.jpg"]}': "names two keys (got 1)",
        '{"kind": "exact_duplicates", "keys": ["a.jpg"]}': "two or more (got 1)",
        '{"kind": "dark", "keys": ["a.jpg"], "by": "me"}': "unknown field 'by'",
    }
    for line, said in wrong.items():
        REVIEWED.write_text(HEADER + line + "\n")
        for run in (stage("stats"), stage("audit"), stage("ls", "--where", "dark=false")):
            assert run.exit_code == 1, (line, run.output)
            assert "Traceback" not in run.output and len(run.stderr.splitlines()) == 1, line
            assert "data/reviewed.jsonl:3: " in run.stderr and said in run.stderr, run.stderr


def test_a_group_of_three_splits_where_its_middle_pair_is_reviewed(tmp_path):
    """a near b near c, a not near c: reviewing a-b leaves b and c (with their copies),
    and a alone is no group; the same decision twice, keys in any order, counts once."""
    params = QualityParams()  # near_threshold 8: a-b 6 bits, b-c 6, a-c 12
    images = [
        Assessed("a", "1" * 64, None, frozenset(), 0x0, True),
        Assessed("b", "2" * 64, None, frozenset(), 0x3F, True),
        Assessed("b2", "2" * 64, None, frozenset(), 0x3F, True),  # an exact copy of b
        Assessed("c", "3" * 64, None, frozenset(), 0xFFF, True),
    ]
    found = find_assessed(images, params)
    assert [group.keys for group in found.near] == [("a", "b", "b2", "c")]
    file = tmp_path / "reviewed.jsonl"
    same = '{"kind": "near_duplicates", "keys": ["b", "a"]}\n'
    file.write_text('{"kind": "near_duplicates", "keys": ["a", "b"]}\n' + same)
    decisions = read_decisions(file)
    assert len(decisions) == 1
    left = set_aside(found, decisions, {"a", "b", "b2", "c"}, str(file))
    assert [(group.keys, group.pairs) for group in left.near] == [
        (("b", "b2", "c"), (("b", "c", 6),))
    ]
    assert left.metrics()["reviewed"] == 1 and left.state == found.state
    assert read_decisions(tmp_path / "none.jsonl") == []  # no file: nothing reviewed
