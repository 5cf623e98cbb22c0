"""`imageshelf sql` (imageshelf/sql): each answer compared with the same question
answered by reading every record of the store."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from imageshelf.store import ImageStore

from conftest import commit, ingest_and_pack, make_image, make_repo, put, sh, stage

SHAPES = ("circle", "square", "triangle")


def dataset() -> dict[str, bytes | str]:
    """30 images in three labels and two splits, with 0 to 3 boxes each, a score."""
    files: dict[str, bytes | str] = {}
    for i in range(30):
        name = f"set/{i:02d}.png"
        files[name] = make_image("PNG", (20 + i, 20), seed=i)
        boxes = [{"bbox": [j, j, 5, 5], "category": SHAPES[(i + j) % 3]} for j in range(i % 4)]
        meta = {"label": SHAPES[i % 3], "split": "val" if i % 5 == 0 else "train"}
        files[f"set/{i:02d}.json"] = json.dumps({**meta, "objects": boxes, "score": i / 10})
    return files


def rows(*args: str) -> list[dict[str, str]]:
    result = stage("sql", "--format", "csv", *args)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_answers_are_what_reading_every_record_gives(workspace):
    put(Path("data/incoming"), dataset())
    store = ingest_and_pack()
    records = list(store.records())

    counted = rows("SELECT split, label, count(*) AS n FROM images GROUP BY ALL")
    by_sql = {(r["split"], r["label"]): int(r["n"]) for r in counted}
    assert by_sql == Counter((r.effective_split, r.metadata["label"]) for r in records)

    boxes = rows(
        "SELECT split, o.category AS category, count(*) AS n "
        "FROM images, UNNEST(objects) AS t(o) GROUP BY ALL"
    )
    expected = Counter(
        (r.effective_split, box["category"]) for r in records for box in r.metadata["objects"]
    )
    assert {(r["split"], r["category"]): int(r["n"]) for r in boxes} == expected

    crowded = rows("SELECT key FROM images WHERE len(objects) >= 3 AND score > 1 ORDER BY key")
    wanted = sorted(
        r.key for r in records if len(r.metadata["objects"]) >= 3 and r.metadata["score"] > 1
    )
    assert [r["key"] for r in crowded] == wanted

    as_json = stage("sql", "--format", "json", "SELECT key, width, props.p99 AS p99 FROM images")
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {line["key"]: line["width"] for line in lines} == {r.key: r.info.width for r in records}
    assert all(line["p99"] == r.props["p99"] for line, r in zip(lines, records, strict=False))


def test_a_wrong_question_is_one_line(workspace):
    put(Path("data/incoming"), dataset())
    ingest_and_pack().close()
    wrong = stage("sql", "SELECT nope FROM images")
    assert wrong.exit_code == 1 and "nope" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
    outside = Path("outside.csv").resolve()
    for question in (
        f"COPY (SELECT key FROM images) TO '{outside}'",  # a file written elsewhere
        "SELECT * FROM read_csv('/etc/passwd')",  # a file read that is no catalog
        "SET enable_external_access = true",
    ):
        refused = stage("sql", question)
        assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert not outside.exists()


@pytest.mark.dvc
def test_a_revision_is_asked_as_it_was_committed(tmp_path):
    repo = make_repo(tmp_path)
    put(repo / "data" / "incoming", dataset())
    sh(repo, "dvc", "repro")
    commit(repo, "thirty")
    table = repo / "data" / "annotations" / "fix.csv"
    table.write_text("file_name,label\nset/00.png,hexagon\n")
    sh(repo, "dvc", "repro")
    question = "SELECT label FROM images WHERE key = 'set/00.png'"
    now = sh(repo, "imageshelf", "sql", "--format", "csv", question)
    then = sh(repo, "imageshelf", "sql", "--rev", "HEAD", "--format", "csv", question)
    assert now.stdout.splitlines() == ["label", "hexagon"]
    assert then.stdout.splitlines() == ["label", "circle"]
    with ImageStore(repo / "data" / "images.lmdb") as store:
        assert store.metadata("set/00.png")["label"] == "hexagon"
    # Two versions side by side: what changed, by a join.
    changed = sh(
        repo,
        "imageshelf",
        "sql",
        "--rev",
        "before=HEAD",
        "--format",
        "csv",
        "SELECT key, b.label AS was, i.label AS now FROM images i JOIN before b USING (key) "
        "WHERE i.label IS DISTINCT FROM b.label",
    )
    assert changed.stdout.splitlines() == ["key,was,now", "set/00.png,circle,hexagon"]
    twice = sh(repo, "imageshelf", "sql", "--rev", "HEAD", "--rev", "HEAD", "SELECT 1", check=False)
    assert twice.returncode == 1 and "two versions named images" in twice.stderr
    newline = sh(repo, "imageshelf", "sql", "--rev", "a\nb=HEAD", "SELECT 1", check=False)
    assert newline.returncode == 1 and len(newline.stderr.strip().splitlines()) == 1


def test_the_columnar_form_is_checked_never_trusted_silently(workspace):
    """A stale or damaged Parquet file: the answer comes from the records and says so;
    validate refuses it; pack writes it again once it is deleted."""
    put(Path("data/incoming"), dataset())
    ingest_and_pack().close()
    question = "SELECT count(*) AS n FROM images WHERE label = 'circle'"
    assert rows(question) == [{"n": "10"}]
    assert stage("validate").exit_code == 0
    columns = Path("data/catalog/images.parquet")
    good = columns.read_bytes()

    Path("stale.parquet").write_bytes(good)  # the records change; the file does not
    table = Path("data/annotations/fix.csv")
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("file_name,label\nset/01.png,circle\n")
    ingest_and_pack().close()
    assert columns.read_bytes() != good  # pack wrote the new records' file
    Path("stale.parquet").replace(columns)
    stale = stage("sql", "--format", "csv", question)
    assert stale.stdout.splitlines() == ["n", "11"]  # from the JSON Lines
    assert "images.parquet is missing or not of the store's records" in stale.stderr
    refused = stage("validate")
    assert refused.exit_code == 1 and "images.parquet does not hold" in refused.output

    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF  # the footer still names the right records
    columns.write_bytes(bytes(damaged))
    assert stage("validate").exit_code == 1
    columns.write_bytes(b"PAR1" + bytes(64) + (2**31 - 1).to_bytes(4, "little") + b"PAR1")
    forged = stage("sql", "--format", "csv", question)  # a footer of 2 GB: never read
    assert forged.stdout.splitlines() == ["n", "11"] and "not of the store's" in forged.stderr
    from imageshelf.read.columnar import select_columnar

    with ImageStore(Path("data/images.lmdb").resolve()) as opened:
        assert select_columnar(opened, "label=circle") is None
    columns.unlink()
    assert "missing" in stage("validate").output
    ingest_and_pack().close()
    assert stage("validate").exit_code == 0
    assert rows(question) == [{"n": "11"}]


def test_fields_of_mixed_types_are_json_and_meta_is_whole(workspace):
    files = dataset()
    files["set/00.json"] = json.dumps(
        {"label": 7, "objects": [], "score": 1, "Score": 2, "empty": {}}
    )
    put(Path("data/incoming"), files)
    ingest_and_pack().close()
    kinds = {r["column_name"]: r["column_type"] for r in rows("DESCRIBE images")}
    assert kinds["label"] == "JSON" and kinds["meta"] == "JSON" and kinds["width"] == "BIGINT"
    assert "score" not in kinds and "Score" not in kinds  # named alike but for case: in meta
    assert kinds["empty"] == "JSON"  # a struct of no fields: Parquet writes none
    found = rows(
        "SELECT key, label, meta->>'Score' AS big, meta->>'score' AS small FROM images "
        "WHERE key IN ('set/00.png', 'set/01.png') ORDER BY key"
    )
    assert found == [
        {"key": "set/00.png", "label": "7", "big": "2", "small": "1"},
        {"key": "set/01.png", "label": '"square"', "big": "", "small": "0.1"},
    ]


def test_stats_counts_objects_as_sql_and_the_records_do(workspace):
    """Boxes per category per split, and images by how many boxes they hold: the stats
    stage's metrics and plots, SQL's answer and the records' agree."""
    put(Path("data/incoming"), dataset())
    store = ingest_and_pack()
    records = list(store.records())
    assert stage("stats").exit_code == 0
    by_records = Counter(
        (r.effective_split, box["category"]) for r in records for box in r.metadata["objects"]
    )
    metrics = json.loads(Path("reports/stats.json").read_text())["objects"]
    by_stats = {
        (split, category): n
        for split, counts in metrics["by_split"].items()
        for category, n in counts.items()
    }
    by_sql = {
        (r["split"], r["category"]): int(r["n"])
        for r in rows(
            "SELECT split, o.category AS category, count(*) AS n "
            "FROM images, UNNEST(objects) AS t(o) GROUP BY ALL"
        )
    }
    assert by_stats == by_sql == by_records
    assert metrics["total"] == sum(by_records.values()) and metrics["max_per_image"] == 3
    plotted = list(csv.DictReader(io.StringIO(Path("reports/plots/objects.csv").read_text())))
    assert {(r["split"], r["category"]): int(r["objects"]) for r in plotted} == by_records
    per_image = Counter(len(r.metadata["objects"]) for r in records)
    sql_per_image = rows("SELECT len(objects) AS n, count(*) AS images FROM images GROUP BY 1")
    assert {int(r["n"]): int(r["images"]) for r in sql_per_image} == per_image
    lines = Path("reports/plots/objects_per_image.csv").read_text().splitlines()
    assert lines == ["objects,images", *(f"{n},{per_image[n]}" for n in sorted(per_image))]
    store.close()


@pytest.mark.timeout(60)
def test_a_pipe_where_a_catalog_file_belongs_is_one_line_never_a_wait(workspace):
    import os

    put(Path("data/incoming"), dataset())
    ingest_and_pack().close()
    question = "SELECT count(*) AS n FROM images"
    columns, lines = Path("data/catalog/images.parquet"), Path("data/catalog/images.jsonl")
    columns.unlink()
    os.mkfifo(columns)
    assert rows(question) == [{"n": "30"}]  # from the JSON Lines, said on stderr
    assert stage("validate").exit_code == 1
    lines.rename("lines.jsonl")
    os.mkfifo(lines)
    piped = stage("sql", question)
    assert piped.exit_code == 1 and "not a regular file" in piped.stderr
    assert len(piped.stderr.strip().splitlines()) == 1
    lines.unlink()
    Path("lines.jsonl").rename(lines)
    ingest_and_pack().close()  # pack replaces the pipe with the file
    assert columns.is_file() and stage("validate").exit_code == 0
