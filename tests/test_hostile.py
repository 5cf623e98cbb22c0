"""Hostile input, round two: files a user or a teammate can hand us (a committed catalog,
an index.json, remove.txt, params.yaml, annotation files, images) give a one-line error
or a reject with its reason: never a traceback, a signal, a hang, unbounded memory, a
silent loss or a write outside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imageshelf.store import ImageStore

from conftest import build_store, command_line, commit, make_image, put, report, sh, stage

INCOMING = Path("data/incoming")


def run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        command_line(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode in (1, 2), (result.returncode, result.stderr[-2000:])  # no signal
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ one file, one reject


SEEK_TOO_LARGE = bytes.fromhex("49492b0008000000ffffffffffffff80")  # Pillow's seek_too_large.tif


def test_a_file_a_decoder_trips_on_is_rejected_and_the_rest_staged(workspace):
    put(INCOMING, {"seek_too_large.tif": SEEK_TOO_LARGE, "good.png": make_image(seed=1)})
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    ingest = report("ingest")
    assert ingest["staged"] == 1
    assert [r["path"] for r in ingest["rejects"]] == ["seek_too_large.tif"]


# ------------------------------------------------------------------ no hang, no signal


@pytest.mark.timeout(120)
def test_a_fifo_in_place_of_a_shard_index_or_catalog_file_is_an_error_not_a_hang(workspace):
    params = Path("params.yaml")
    text = params.read_text().replace("layout: single", "layout: sharded")
    params.write_text(text.replace("store: data/images.lmdb", "store: data/images"))
    put(INCOMING, {f"{i}.png": make_image(seed=i) for i in range(3)})
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    shard = next(Path("data/images").glob("shard-*.lmdb"))
    catalog = next(Path("data/catalog").glob("shard-*.jsonl"))
    for victim in (shard, catalog, Path("data/images/index.json")):
        keep = victim.read_bytes()
        victim.unlink()
        os.mkfifo(victim)
        try:
            for args in (["ls"], ["validate", "--manifest", "/dev/null"]):
                if victim == catalog and args[0] == "ls":
                    continue  # ls reads no catalog
                one_line_error(run(workspace, *args, timeout=30), str(victim.name))
        finally:
            victim.unlink()
            victim.write_bytes(keep)


def test_a_yaml_alias_bomb_is_refused_in_a_moment(workspace):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)}]\n"
        for i in range(8)
    )
    put(
        INCOMING,
        {
            "data.yaml": bomb + "names: *i\n",
            "images/a.png": make_image(seed=1),
            "labels/a.txt": "0 0.5 0.5 0.1 0.1\n",
        },
    )
    result = run(workspace, "ingest", timeout=30)
    one_line_error(result, "data.yaml", "alias")


@pytest.mark.parametrize(
    "setting, value",
    [
        ("thumbnail_px", 20000),
        ("thumbnail_px", 1e9),
        ("thumbnails_per_label", 100000),
        ("max_labels", -1),
    ],
)
def test_params_that_would_cost_without_bound_are_one_line_errors(workspace, setting, value):
    put(INCOMING, {"a.png": make_image(seed=1)})
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    params = Path("params.yaml")
    text = params.read_text()
    default = {"thumbnail_px": "64", "thumbnails_per_label": "8", "max_labels": "20"}[setting]
    params.write_text(text.replace(f"{setting}: {default}", f"{setting}: {value}"))
    one_line_error(run(workspace, "stats", timeout=30), f"stats.{setting}")


def test_a_jsonl_line_over_the_metadata_limit_is_refused_with_bounded_memory(workspace):
    params = Path("params.yaml")
    params.write_text(
        params.read_text().replace("max_metadata_bytes: 1048576", "max_metadata_bytes: 1000")
    )
    line = json.dumps({"file_name": "a.png", "text": "x" * 50_000_000})
    put(INCOMING, {"a.png": make_image(seed=1), "metadata.jsonl": line + "\n"})
    result, peak_kb = with_peak_memory(workspace, *command_line("ingest"))
    error = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert result.returncode == 1 and error and "metadata.jsonl:1" in error[0], result.stderr
    assert peak_kb < 250_000, f"{peak_kb / 1024:.0f} MiB for a 50 MB line"


def with_peak_memory(cwd: Path, *command: str) -> tuple[subprocess.CompletedProcess, int]:
    """Run a command; its result and its peak resident memory in KiB."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(r.returncode)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *command], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    return result, int(result.stderr.strip().splitlines()[-1])


# ------------------------------------------------------------------ files teammates commit


CATALOG_LINES = {
    "not JSON": b"{not json\n",
    "a list": b"[1, 2]\n",
    "no key": b'{"meta": {}, "sha256": "00", "size": 1}\n',
    "not UTF-8": b'{"key": "\xff\xfe"}\n',
    "nested deep": b"[" * 100_000 + b"]" * 100_000 + b"\n",
}


@pytest.mark.slow
def test_a_catalog_that_is_not_records_is_one_line_in_diff_and_validate(repo):
    put(repo / "data" / "incoming", {f"{i}.png": make_image(seed=i) for i in range(3)})
    sh(repo, "dvc", "repro")
    commit(repo, "three images")
    catalog = repo / "data" / "catalog" / "images.jsonl"
    good = catalog.read_bytes()
    for what, line in CATALOG_LINES.items():
        catalog.write_bytes(good + line)
        for args in (["diff"], ["validate", "--manifest", "/dev/null"]):
            error = one_line_error(run(repo, *args), "images.jsonl")
            assert "line 4" in error, (what, error)
    catalog.unlink()
    catalog.mkdir()
    for args in (["diff"], ["validate", "--manifest", "/dev/null"]):
        one_line_error(run(repo, *args), "images.jsonl")


@pytest.mark.parametrize(
    "index",
    [
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(
            {
                "format": "lmdb-image-store-sharded",
                "version": "1.0",
                "count": 1e20,
                "total_bytes": 0,
                "content_digest": "x",
                "shards": [],
            }
        ).encode(),
        json.dumps(
            {
                "format": "lmdb-image-store-sharded",
                "version": "1.0",
                "shards": [
                    {
                        "name": "shard-0000000000000000.lmdb",
                        "count": 10**30,
                        "total_bytes": 1,
                        "content_digest": "0" * 64,
                        "first_key": "a",
                        "last_key": "b",
                    }
                ],
            }
        ).encode(),
        json.dumps(  # a content digest names files of the cache: no path may pass as one
            {
                "format": "lmdb-image-store-sharded",
                "version": "1.0",
                "shards": [
                    {
                        "name": "shard-0000000000000000.lmdb",
                        "count": 1,
                        "total_bytes": 1,
                        "content_digest": "../../../../../../tmp/imageshelf-escaped",
                        "first_key": "a",
                        "last_key": "a",
                    }
                ],
            }
        ).encode(),
    ],
)
def test_an_index_json_that_is_not_an_index_is_one_line_everywhere(workspace, index):
    Path("data/images").mkdir(parents=True)
    Path("data/images/index.json").write_bytes(index)
    for args in (
        ["ls", "--store", "data/images"],
        ["export", "--store", "data/images", "--out", "out"],
        ["stats", "--store", "data/images"],
        ["validate", "--store", "data/images", "--manifest", "/dev/null"],
    ):
        one_line_error(run(workspace, *args), "index.json")
    assert_library_raises_store_error(workspace, "data/images")


def assert_library_raises_store_error(workspace: Path, store: str) -> None:
    """The library, asked for the keys, raises StoreError (one line, no crash)."""
    code = f"from imageshelf import ImageStore\nImageStore({store!r}).keys()\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=workspace, capture_output=True, text=True, timeout=60
    )
    assert result.stderr.strip().splitlines()[-1].startswith("imageshelf.store.format.StoreError")


def test_a_store_header_claiming_an_absurd_count_is_one_line(workspace):
    import lmdb

    path = build_store(Path("data/images.lmdb"), {"a.png": make_image(seed=1)})
    env = lmdb.open(str(path), subdir=False, lock=False, max_dbs=5)
    with env.begin(write=True) as txn:
        meta = env.open_db(b"meta", txn)
        header = json.loads(txn.get(b"header", db=meta))
        header["count"] = 10**20
        txn.put(b"header", json.dumps(header).encode(), db=meta)
    env.close()
    for args in (["ls"], ["export", "--out", "out"]):
        one_line_error(run(workspace, *args), "damaged store header")
    assert_library_raises_store_error(workspace, "data/images.lmdb")


def test_a_remove_txt_line_that_is_no_text_is_one_line(workspace):
    put(INCOMING, {"a.png": make_image(seed=1)})
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    Path("data/remove.txt").write_text('"\\ud800"\n')
    one_line_error(run(workspace, "pack"), "remove.txt:1:", "not a key")


def test_a_store_path_outside_the_repository_is_refused(workspace, tmp_path):
    put(INCOMING, {"a.png": make_image(seed=1)})
    assert stage("ingest").exit_code == 0
    params = Path("params.yaml")
    good = params.read_text()
    for store in ("../escape.lmdb", str(tmp_path / "abs.lmdb"), "/escape.lmdb"):
        params.write_text(good.replace("store: data/images.lmdb", f"store: {store}"))
        one_line_error(run(workspace, "pack"), "pack.store")
        assert not (workspace.parent / "escape.lmdb").exists()
        assert not Path("/escape.lmdb").exists() and not (tmp_path / "abs.lmdb").exists()


# ------------------------------------------------------------------ nothing lost silently


def test_export_never_counts_what_it_did_not_write(workspace, tmp_path):
    """Names that collide on the target (one key in two shards; on a case-insensitive
    disk, Case.PNG and case.png) are found before anything is written."""
    from imageshelf.export import ExportError, export_files

    store_path = Path("data/images.lmdb")
    images = {
        "Case.PNG": make_image(seed=1),
        "case.png": make_image(seed=2),
        "caf\u00e9.png": make_image(seed=3),
        "cafe\u0301.png": make_image(seed=4),
    }
    build_store(store_path, images)
    store = ImageStore(store_path)
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="collide"):
        export_files(store, list(store.records()), out, case_insensitive=True)
    assert not out.exists() or not any(out.iterdir())
    twice = next(iter(store.records()))  # one key in two shards: listed twice
    with pytest.raises(ExportError, match="twice"):
        export_files(store, [twice, twice], tmp_path / "out3", case_insensitive=False)
    assert not any((tmp_path / "out3").iterdir())
    exported = export_files(store, list(store.records()), tmp_path / "out2")
    assert sorted(p.name for p in (tmp_path / "out2").iterdir() if p.suffix != ".jsonl") == sorted(
        images
    )
    assert exported.image_bytes == sum(map(len, images.values()))


def test_merge_hashes_what_it_takes_from_a_store_from_elsewhere(workspace, tmp_path):
    """A teammate's store is untrusted: a record that claims another image's SHA-256 is
    refused by merge, which hashes every image it takes, and nothing is merged."""
    from test_untrusted import _craft

    from imageshelf.project.params import PackParams
    from imageshelf.tools.merge import MergeError, merge

    put(INCOMING, {"a.png": make_image(seed=1)})
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    before = Path("data/images.lmdb").read_bytes()
    other = tmp_path / "theirs.lmdb"
    build_store(other, {"c0/000.png": make_image(seed=2)})
    with ImageStore(other) as store:
        claimed = store.record("c0/000.png").to_json()
    claimed["sha256"] = "0" * 64  # claims bytes it does not hold
    _craft(
        other,
        records={"forged.png": json.dumps(claimed).encode()},
        images={"forged.png": make_image(seed=2)},
    )
    with pytest.raises(MergeError, match="forged.png"):
        merge(Path("data/images.lmdb"), ImageStore(other), PackParams(), Path("data/catalog"))
    assert Path("data/images.lmdb").read_bytes() == before


def test_a_content_digest_that_is_a_path_writes_nothing_outside_the_cache(workspace):
    """A part's content digest names files of the cache (its hashes, header, stats): a
    store from elsewhere whose header gives a path as its digest is refused before any
    is made (stats used to write its figures there)."""
    import lmdb

    (workspace / ".dvc").mkdir()  # a cache folder, as in a DVC project
    put(INCOMING, {f"{i}.png": make_image(seed=i) for i in range(3)})
    assert stage("ingest").exit_code == 0 and stage("pack").exit_code == 0
    store = Path("data/images.lmdb")
    env = lmdb.open(str(store), subdir=False, max_dbs=8, lock=False)
    meta = env.open_db(b"meta")
    with env.begin(db=meta) as txn:
        header = json.loads(txn.get(b"header"))
    env.close()
    header["content_digest"] = "../../../../escaped"
    copy = workspace / "copy.lmdb"  # a new file, as `dvc pull` would bring
    copy.write_bytes(store.read_bytes())
    env = lmdb.open(str(copy), subdir=False, max_dbs=8, lock=False)
    meta = env.open_db(b"meta")
    with env.begin(write=True, db=meta) as txn:
        txn.put(b"header", json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    env.close()
    store.unlink()
    os.replace(copy, store)
    for args in (["stats"], ["ls", "--store", str(store)]):
        one_line_error(run(workspace, *args), "header")
    assert not list(workspace.glob("escaped*")), list(workspace.glob("escaped*"))
