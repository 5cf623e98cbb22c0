"""A store from elsewhere is untrusted input: crafted and damaged files.

Each command that reads a store must answer a damaged one with one line naming what is
damaged: never a signal, a traceback, a hang, or damage left unnoticed. Each test here
is named in docs/GUARANTEES.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import random
import shutil
import struct
import subprocess
import traceback
from pathlib import Path
from typing import Any

import lmdb
import pytest

from imageshelf.errors import ShelfError
from imageshelf.stages.validate import validate_store
from imageshelf.store import ImageStore
from imageshelf.store.format import CHUNK_KEY, LOCATION
from imageshelf.store.index import INDEX_NAME

from conftest import build_store, command_line, make_image

PAGE = 4096
READERS = (
    ["ls"],
    ["export", "--out", "out"],
    ["export", "--out", "wds", "--as", "webdataset"],
    ["stats"],
    ["validate", "--manifest", "/dev/null"],
)


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command_line(*args), cwd=cwd, capture_output=True, text=True, timeout=120)


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not a signal
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _craft(
    path: Path, records: dict[str, bytes] | None = None, images: dict[str, bytes] | None = None
) -> None:
    """Write entries into a store the way someone with their own LMDB code could: the
    file stays structurally sound, only its content is hostile. A crafted key's image
    lies where c0/000.png's does (format 2.0: `images` gives those bytes, which are
    already there)."""
    records, images = records or {}, images or {}
    env = lmdb.open(str(path), subdir=False, lock=False, max_dbs=5)
    with env.begin(write=True) as txn:
        db, places = env.open_db(b"records", txn), env.open_db(b"locations", txn)
        for key, raw in records.items():
            raw_key = key.encode("utf-8", "surrogateescape")
            txn.put(raw_key, raw, db=db)
        for key, data in images.items():
            raw_key = key.encode("utf-8", "surrogateescape")
            place = txn.get(b"c0/000.png", db=places)
            chunk, at, size = LOCATION.unpack_from(place)
            chunks = env.open_db(b"blobs", txn)
            assert txn.get(CHUNK_KEY.pack(chunk), db=chunks)[at : at + size] == data
            txn.put(raw_key, place, db=places)
    env.close()


def _images(count: int = 12) -> dict[str, bytes]:
    out = {f"c{i % 3}/{i:03d}.png": make_image("PNG", (20 + i, 16), seed=i) for i in range(count)}
    out["big/large.bmp"] = make_image("BMP", (80, 80), seed=99)  # a value on overflow pages
    return out


@pytest.fixture
def project_store(workspace) -> Path:
    images = _images()
    return build_store(
        workspace / "data" / "images.lmdb", images, {k: {"label": k[:2]} for k in images}
    )


# ------------------------------------------------------------------ memory outside the map


def _claim_2_gb(path: Path) -> bytes:
    """The store's bytes with the node of the chunk holding every image claiming 2 GB."""
    raw = bytearray(path.read_bytes())
    key = CHUNK_KEY.pack(0)  # the chunk that holds every image's bytes
    length = ImageStore(path).header.total_bytes
    patched = 0
    at = raw.find(key, 8)
    while at >= 0:
        node = at - 8
        lo, hi, flags, ksize = struct.unpack_from("<HHHH", raw, node)
        if flags & 1 and ksize == len(key) and lo | hi << 16 == length:  # F_BIGDATA
            struct.pack_into("<HH", raw, node, 0xFFFF, 0x7FFF)  # claims 2 GB
            patched += 1
        at = raw.find(key, at + 1)
    assert patched == 1
    return bytes(raw)


def _write_in_place(path: Path, at: int, data: bytes) -> os.stat_result:
    """Write `data` into the file at `at` as a hand edit or an in-place tool would, then
    set its mtime back: the same inode, size and mtime as before (only ctime tells)."""
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    return after


def _every_reader_refuses_it(workspace: Path) -> None:
    for args in (*READERS, ["validate", "--manifest", "/dev/null", "--full"]):
        expected = "(lmdb)" if args[0] == "validate" else "damaged store file"
        _one_line_error(_run(workspace, *args), expected, "overflow")
    code = (
        "from imageshelf.read.dataset import ImageDataset\n"
        "ds = ImageDataset('data/images.lmdb')\n"
        "ds[0]\n"
    )
    result = subprocess.run(
        [command_line("ls")[0], "-c", code], cwd=workspace, capture_output=True, text=True
    )
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        "imageshelf.store.format.StoreError:"
    ), result.stderr  # an exception training code can catch; a signal would kill the worker
    assert "damaged store file" in result.stderr


def test_a_value_claiming_2_gb_is_an_error_in_every_reader_not_a_crash(workspace, project_store):
    raw = _claim_2_gb(project_store)
    project_store.unlink()
    project_store.write_bytes(raw)
    _every_reader_refuses_it(workspace)


def test_a_verified_store_changed_in_place_with_its_mtime_set_back_is_refused(
    workspace, project_store
):
    """The same damage written into the file this library wrote and trusts (same inode,
    same size, mtime set back: a hand edit, a tool that writes in place): its ctime
    changed, so it is verified again, and every reader refuses it instead of dying by
    SIGBUS."""

    assert _run(workspace, "ls").returncode == 0  # read and trusted as written
    _write_in_place(project_store, 0, _claim_2_gb(project_store))
    _every_reader_refuses_it(workspace)


def test_a_forged_marker_in_the_trust_cache_is_not_trusted(workspace, monkeypatch, tmp_path):
    """A marker is a file named after a file's identity, holding its ctime: one another
    user could write (a folder others can write to, or a marker they own) counts for
    nothing."""
    import os

    from imageshelf.store import trust

    cache = tmp_path / "shared-cache"
    monkeypatch.setenv("IMAGESHELF_CACHE_DIR", str(cache))
    store = workspace / "data" / "images.lmdb"
    store.write_bytes(_claim_2_gb(build_store(tmp_path / "good.lmdb", _images())))
    marker = Path(trust._marker(os.stat(store)))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.parent.chmod(0o777)  # a folder anyone can write to
    marker.write_text(f"{os.stat(store).st_ctime_ns}\n")
    assert not trust.is_trusted(os.stat(store))
    _every_reader_refuses_it(workspace)
    marker.parent.chmod(0o700)
    if os.getuid() == 0:  # a marker another user owns, in a private folder
        os.chown(marker, 65534, 65534)
        assert not trust.is_trusted(os.stat(store))
    # the library's own folder is private, whatever the umask
    umask = os.umask(0o002)
    try:
        private = tmp_path / "private-cache"
        monkeypatch.setenv("IMAGESHELF_CACHE_DIR", str(private))
        trust.remember(os.stat(tmp_path / "good.lmdb"))
    finally:
        os.umask(umask)
    assert (private / "verified").stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------ damage validate must see


def _branch_separators(raw: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each separator key in the file's B-tree branch pages."""
    found = []
    page = 2
    while page < len(raw) // PAGE:
        base = page * PAGE
        flags = struct.unpack_from("<H", raw, base + 10)[0]
        page += struct.unpack_from("<I", raw, base + 12)[0] if flags & 4 else 1  # P_OVERFLOW
        if not flags & 1:  # P_BRANCH
            continue
        lower = struct.unpack_from("<H", raw, base + 12)[0]
        for i in range(1, (lower - 16) // 2):  # node 0 has no key
            node = base + struct.unpack_from("<H", raw, base + 16 + 2 * i)[0]
            found.append((node + 8, struct.unpack_from("<H", raw, node + 6)[0]))
    return found


def test_a_flipped_bit_in_a_branch_separator_never_passes_validate_with_keys_unreachable(tmp_path):
    image = make_image("PNG", (8, 8))
    keys = [f"class_{i % 7}/{'long_name_' * 4}{i:05d}.png" for i in range(2000)]
    good = build_store(tmp_path / "good.lmdb", dict.fromkeys(keys, image))
    raw = good.read_bytes()
    separators = _branch_separators(raw)
    assert len(separators) > 100
    rng = random.Random(5)
    outcomes = {"refused": 0, "validate failed": 0, "harmless": 0}
    for offset, length in rng.sample(separators, 40):
        damaged = bytearray(raw)
        damaged[offset + rng.randrange(length)] ^= 1 << rng.randrange(8)
        path = tmp_path / "damaged.lmdb"
        path.unlink(missing_ok=True)
        path.write_bytes(bytes(damaged))
        try:
            with ImageStore(path) as store:
                reachable = sum(key in store for key in keys)
        except ShelfError:
            outcomes["refused"] += 1
            continue
        passed = not validate_store(ImageStore(path), full=True).failures
        if passed:
            assert reachable == len(keys), "validate passed, yet keys are unreachable by lookup"
            outcomes["harmless"] += 1
        else:
            outcomes["validate failed"] += 1
    assert outcomes["validate failed"] > 0, outcomes  # damage only a lookup shows was seen


def test_an_edited_key_range_in_index_json_is_refused(workspace):
    images = _images(30)
    folder = workspace / "data" / "images"
    from imageshelf.store.writer import write_sharded

    from conftest import items_for

    keys = sorted(images)
    for start in (0, 10, 20):
        write_sharded(folder, items_for({k: images[k] for k in keys[start : start + 10]}))
    index = json.loads((folder / INDEX_NAME).read_text())
    index["shards"][1]["first_key"] = keys[15]  # hides keys[10..14] from lookups
    (folder / INDEX_NAME).write_text(json.dumps(index))
    with ImageStore(folder) as store, pytest.raises(ShelfError, match="index.json gives"):
        _ = keys[12] in store
    result = validate_store(ImageStore(folder), full=True)
    assert result.failures and "index.json gives" in json.dumps(result.failures)


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../shard-0123456789abcdef.lmdb", "sub/shard-0123456789abcdef.lmdb"],
)
def test_a_shard_name_that_is_a_path_is_refused(workspace, name):
    folder = workspace / "data" / "images"
    from imageshelf.store.writer import write_sharded

    from conftest import items_for

    write_sharded(folder, items_for(_images(4)))
    index = json.loads((folder / INDEX_NAME).read_text())
    index["shards"][0]["name"] = name
    (folder / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(ShelfError, match="damaged shard entry"):
        _ = ImageStore(folder).parts
    (workspace / "params.yaml").write_text(
        (workspace / "params.yaml").read_text().replace("data/images.lmdb", "data/images")
    )
    _one_line_error(_run(workspace, "ls", "--store", "data/images"), "damaged shard entry")


# ------------------------------------------------------------------ hostile content


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[1, 2, 3]", "a JSON list, not an object"),
        (b'{"sha256": "00"}', "no field"),
        (b"{not json", "not valid JSON"),
        (
            b'{"meta": {}, "sha256": "' + b"0" * 64 + b'", "size": -1, "format": "png",'
            b' "width": 1, "height": 1}',
            "not a whole number",
        ),
    ],
)
def test_a_damaged_record_is_one_line_in_every_command(workspace, project_store, raw, problem):
    _craft(project_store, records={"c0/000.png": raw})
    for args in READERS:
        result = _run(workspace, *args)
        _one_line_error(result, "c0/000.png")
    report = json.loads((workspace / "reports" / "validate.json").read_text())
    assert any(problem in f["problem"] for f in report["failures"]), report


def test_a_damaged_header_is_one_line_in_every_command(workspace, project_store):
    env = lmdb.open(str(project_store), subdir=False, lock=False, max_dbs=3)
    with env.begin(write=True) as txn:
        txn.put(
            b"header",
            b'{"format": "lmdb-image-store", "version": "1.2"}',
            db=env.open_db(b"meta", txn),
        )
    env.close()
    for args in READERS:
        _one_line_error(_run(workspace, *args), "header")


@pytest.mark.parametrize("key", ["../../x.png", "/abs/x.png", "a//b.png", "bad\udcff.png"])
def test_a_key_that_is_not_a_clean_relative_path_is_refused(workspace, project_store, key):
    record = ImageStore(project_store).raw_record("c0/000.png")
    data = ImageStore(project_store).get("c0/000.png")
    _craft(project_store, records={key: record}, images={key: data})
    for args in READERS:
        _one_line_error(_run(workspace, *args), "damaged store")
    assert not (workspace / "x.png").exists() and not Path("/abs/x.png").exists()
    assert not any((workspace / "out").rglob("*.png")) if (workspace / "out").exists() else True


def test_a_key_that_is_also_a_folder_is_refused_by_export_before_it_writes(
    workspace, project_store
):
    record = ImageStore(project_store).raw_record("c0/000.png")
    data = ImageStore(project_store).get("c0/000.png")
    _craft(project_store, records={"c1": record}, images={"c1": data})  # and c1/001.png
    result = _run(workspace, "export", "--out", "out")
    _one_line_error(result, "'c1' would be a file and a folder")
    out = workspace / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.rglob("*"))
    assert _run(workspace, "export", "--out", "wds", "--as", "webdataset").returncode == 0


# ------------------------------------------------------------------ fuzz


def _probe(path: str, keys: list[str], answer: Any) -> None:
    try:
        store = ImageStore(path)
        seen = {}
        for record in store.records():
            seen[record.key] = (record.encode(), hashlib.sha256(store.get(record.key)).digest())
        looked = {}
        for key in keys:
            if key in store:
                looked[key] = (store.record(key).encode(), hashlib.sha256(store.get(key)).digest())
        passed = not validate_store(ImageStore(path), full=True).failures
        digest = hashlib.sha256(repr((sorted(seen.items()), sorted(looked.items()))).encode())
        answer.send(("read", passed, digest.hexdigest()))
    except ShelfError as exc:
        answer.send(("refused", "\n" not in str(exc), str(exc)[:200]))
    except BaseException:  # noqa: BLE001 - a traceback is what this test looks for
        answer.send(("traceback", False, traceback.format_exc()[-1500:]))


def _read_in_a_child(path: Path, keys: list[str]) -> tuple[str, Any, Any]:
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe(duplex=False)
    child = context.Process(target=_probe, args=(str(path), keys, theirs))
    child.start()
    theirs.close()
    got = ours.recv() if ours.poll(60) else ("hang", None, None)
    child.join(10)
    if child.is_alive():
        child.kill()
        return ("hang", None, None)
    if child.exitcode:
        return ("signal", child.exitcode, None)
    return got


@pytest.mark.slow
def test_fuzz_bit_flips_and_truncations_are_harmless_or_reported(tmp_path):
    images = _images(40)
    good = build_store(tmp_path / "good.lmdb", images, {k: {"label": k[:2]} for k in images})
    raw = good.read_bytes()
    reference = _read_in_a_child(good, list(images))
    assert reference[:2] == ("read", True), reference
    rng = random.Random(2026)
    tally: dict[str, int] = {}
    for case in range(300):
        damaged = bytearray(raw)
        how = rng.choice(("bits", "bits", "header bits", "truncate"))
        if how == "bits":
            for _ in range(rng.randint(1, 8)):
                damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        elif how == "header bits":  # page headers and node headers, where structure lives
            page = rng.randrange(len(damaged) // PAGE)
            damaged[page * PAGE + rng.randrange(64)] ^= 1 << rng.randrange(8)
        else:
            del damaged[rng.randrange(len(damaged)) :]
        path = tmp_path / f"case{case}.lmdb"
        path.write_bytes(bytes(damaged))
        outcome, flag, detail = _read_in_a_child(path, list(images))
        assert outcome in ("read", "refused"), (case, how, outcome, flag, detail)
        if outcome == "refused":
            assert flag, (case, detail)  # one line
            tally["refused"] = tally.get("refused", 0) + 1
        elif flag:  # validate passed: then every record and byte is as it was
            assert detail == reference[2], (case, how, "damage unnoticed by validate")
            tally["harmless"] = tally.get("harmless", 0) + 1
        else:
            tally["validate failed"] = tally.get("validate failed", 0) + 1
        path.unlink()
    assert tally.get("refused", 0) > 50 and tally.get("validate failed", 0) > 50, tally
    shutil.rmtree(tmp_path, ignore_errors=True)


# ------------------------------------------------------------------ decoding without bound


def _scan_bomb() -> bytes:
    """A progressive JPEG whose last scan is repeated 3,000 times: tiny, under every
    pixel limit, and minutes per decode at photo sizes."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    end, last = data.rfind(b"\xff\xd9"), data.rfind(b"\xff\xda")
    return data[:end] + data[last:end] * 3000 + b"\xff\xd9"


def _strip_bomb(rows: int = 300_000) -> bytes:
    """A 1-pixel-wide grey TIFF with one strip per row: every strip's offset is parsed
    into memory by a header read."""
    entries = []
    offsets_at = 8 + 2 + 8 * 12 + 4
    counts_at = offsets_at + 4 * rows
    pixels_at = counts_at + 4 * rows
    for tag, kind, count, value in (
        (256, 3, 1, 1),  # ImageWidth
        (257, 4, 1, rows),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 1),  # BlackIsZero
        (273, 4, rows, offsets_at),  # StripOffsets
        (278, 3, 1, 1),  # RowsPerStrip
        (279, 4, rows, counts_at),  # StripByteCounts
    ):
        entries.append(struct.pack("<HHII", tag, kind, count, value))
    head = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + b"".join(entries)
    head += struct.pack("<I", 0)
    offsets = struct.pack(f"<{rows}I", *range(pixels_at, pixels_at + rows))
    return head + offsets + struct.pack(f"<{rows}I", *([1] * rows)) + b"\x80" * rows


def test_ingest_refuses_images_whose_decoding_would_cost_without_bound(workspace):
    from conftest import put, report, stage

    put(workspace / "data" / "incoming", {"scans.jpg": _scan_bomb(), "strips.tif": _strip_bomb()})
    assert stage("ingest").exit_code == 0
    rejects = {r["path"]: r for r in report("ingest")["rejects"]}
    assert (
        rejects["scans.jpg"]["code"] == "too_costly"
        and "3010 scans" in (rejects["scans.jpg"]["reason"])
    )
    assert (
        rejects["strips.tif"]["code"] == "too_costly"
        and "300,000 strips" in (rejects["strips.tif"]["reason"])
    )


def test_decoders_refuse_a_decoding_bomb_from_a_store_from_elsewhere(workspace):
    from imageshelf.images.decoding import DecodeCostError
    from imageshelf.read.dataset import ImageDataset, decode_image
    from imageshelf.store import ImageInfo, Record
    from imageshelf.store.writer import Item, rebuild

    bomb = _scan_bomb()
    good = make_image("PNG", (16, 16))
    items = [
        Item(
            Record(key, ImageInfo(hashlib.sha256(d).hexdigest(), len(d), fmt, 64, 64), {}),
            lambda d=d: d,
            trusted=True,
        )
        for key, d, fmt in (("a/bomb.jpg", bomb, "jpeg"), ("b/good.png", good, "png"))
    ]
    rebuild(workspace / "data" / "images.lmdb", items)
    dataset = ImageDataset(workspace / "data" / "images.lmdb", decode="RGB")
    with pytest.raises(DecodeCostError, match="3010 scans"):
        dataset[0]
    assert dataset[1][0].size == (16, 16)
    from test_faults import _png_declaring

    with pytest.raises(DecodeCostError, match="pixel limit"):
        decode_image(_png_declaring(20_000, 20_000), "RGB")  # 400 Mpx: 1.2 GB decoded
    assert _run(workspace, "stats").returncode == 0  # the bomb's thumbnail is a "?" tile
    assert ImageDataset(workspace / "data" / "images.lmdb")[0][0] == bomb  # bytes untouched


# ------------------------------------------------------------------ injection


def test_labels_cannot_inject_markup_or_formulas_into_the_plots(workspace):
    from imageshelf.store.writer import rebuild

    from conftest import items_for

    images = {f"img/{i}.png": make_image("PNG", (8, 8), seed=i) for i in range(4)}
    labels = ["</script><script>alert(1)</script>", '=HYPERLINK("http://x")', "-1", "cat"]
    metadata = {key: {"label": label} for key, label in zip(images, labels, strict=True)}
    rebuild(workspace / "data" / "images.lmdb", items_for(images, metadata))
    assert _run(workspace, "stats").returncode == 0
    text = (workspace / "reports" / "plots" / "labels.csv").read_text()
    assert "<" not in text and ">" not in text
    rows = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert not [row for row in rows if row.lstrip('"').startswith(("=", "+", "@"))]
    assert "-1" in rows and "cat" in rows  # numbers and plain labels stay as they are
    assert "‹/script›‹script›alert(1)‹/script›" in rows


# ------------------------------------------------------------------ hostile annotations


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("labels.csv", "path,label\na.png," + "x" * (200 << 10) + "\n"),
        ("metadata.jsonl", '{"file_name": "a.png", "score": 1e999}\n'),
        ("metadata.jsonl", '{"file_name": "a.png", "deep": ' + "[" * 5000 + "]" * 5000 + "}\n"),
        ("metadata.jsonl", '{"file_name": "a.png", "label": "\\ud800"}\n'),
        ("a.png.json", '{"deep": ' + "{" * 3000 + "}" * 3000 + "}"),
        ("a.png.json", '{"label": "\\udfff"}'),
        ("data.yaml", "names: " + "[" * 5000 + "]" * 5000 + "\n"),
        ("labels/a.txt", "0 0.5 0.5 1e999 0.2\n"),
    ],
)
def test_hostile_annotation_files_give_a_reason_not_a_traceback(workspace, name, content):
    from conftest import put

    put(workspace / "data" / "incoming", {"a.png": make_image("PNG"), name: content})
    result = _run(workspace, "ingest")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode in (0, 1), result.stderr
    if result.returncode:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    else:
        report = json.loads((workspace / "reports" / "ingest.json").read_text())
        assert report["rejects"] or report["unused_metadata"] or report["staged"] == 1


def test_annotations_are_matched_in_linear_time(tmp_path):
    """A million-row labels file against 100,000 images: each row is one hash lookup
    (a list lookup here made this 23 minutes; it now takes seconds)."""
    from imageshelf.annotations import KeyIndex, read_place

    keys = [f"c{i % 100}/{i:07d}.png" for i in range(100_000)]
    rows = "".join(f"c{i % 100}/{i % 150_000:07d}.png,l{i % 7}\n" for i in range(1_000_000))
    (tmp_path / "labels.csv").write_text("path,label\n" + rows)
    found = read_place(str(tmp_path), ["labels.csv"], KeyIndex(keys))
    assert found.for_image(keys[5], 1, 1) == {"label": "l1"}  # its last row: i = 900,005
    assert len(found.unused) == 300_000  # rows naming no image, each reported


# ------------------------------------------------------------------ nothing skipped silently


def test_images_named_like_junk_files_are_reported_not_skipped(workspace):
    from conftest import put, report, stage

    put(
        workspace / "data" / "incoming",
        {
            ".DS_Store": make_image("PNG", seed=1),
            "Thumbs.db": make_image("JPEG", seed=2),
            "desktop.ini": "[.ShellClassInfo]\n",  # a real one: ignored, as it should be
            "__MACOSX/photo.png": make_image("PNG", seed=3),
            "__pycache__/x.png": make_image("PNG", seed=4),
            "ok.png": make_image("PNG", seed=5),
        },
    )
    assert stage("ingest").exit_code == 0
    found = report("ingest")
    assert {r["path"]: r["code"] for r in found["rejects"]} == {
        ".DS_Store": "ignored_image",
        "Thumbs.db": "ignored_image",
        "__MACOSX": "ignored_image",
    }
    assert "desktop.ini" in found["ignored"]
    assert found["staged"] == 2  # ok.png and __pycache__/x.png: a folder name is no reason


def test_keys_starting_with_a_hash_or_a_space_can_be_removed(workspace):
    from imageshelf.store import ImageStore

    from conftest import put, stage

    names = ["#1.png", " spaced.png", "plain.png"]
    put(
        workspace / "data" / "incoming", {n: make_image("PNG", seed=i) for i, n in enumerate(names)}
    )
    assert stage("ingest").exit_code == 0 and stage("pack").exit_code == 0
    (workspace / "data" / "remove.txt").write_text('# comment\n"#1.png"\n" spaced.png"\n')
    for name in names[:2]:
        (workspace / "data" / "incoming" / name).unlink()
    assert stage("ingest").exit_code == 0
    result = stage("pack")
    assert result.exit_code == 0, result.output
    assert ImageStore(workspace / "data" / "images.lmdb").keys() == ["plain.png"]
    (workspace / "data" / "remove.txt").write_text('"#1.png\n')
    result = stage("pack")
    assert result.exit_code == 1 and "remove.txt:1: a line starting with a quote" in result.output


def test_webdataset_member_names_never_collide():
    from imageshelf.export import sample_name

    taken: set[str] = set()
    first = [sample_name(k, taken) for k in ("x.png", "x.jpg", "x", "a.b.png", "a_b.png")]
    # A key crafted to be the name the hash gives another key, exported before it.
    crafted = sorted(taken - {"x", "a_b"})
    taken2: set[str] = set()
    names = [sample_name(k, taken2) for k in [*(c + ".png" for c in crafted), "x.png", "x.jpg"]]
    assert len(set(first)) == len(first) and len(set(names)) == len(names)


def test_a_file_changed_through_the_file_system_is_verified_again(tmp_path, monkeypatch):
    """Trust is by device, inode, size, mtime and ctime: a hand edit that sets the mtime
    back changes the ctime, so the file is verified again; so is a file DVC chmods
    (once: then it is remembered as it is now)."""
    import os

    from imageshelf.store import trust

    monkeypatch.setenv("IMAGESHELF_CACHE_DIR", str(tmp_path / "cache"))
    path = build_store(tmp_path / "s.lmdb", _images(3))
    assert trust.is_trusted(os.stat(path))  # written here: remembered as it was published
    after = _write_in_place(path, os.stat(path).st_size - 100, b"\xff" * 4)
    assert not trust.is_trusted(after)
    path.chmod(0o444)  # what DVC's unprotect does to a store it leaves alone
    assert not trust.is_trusted(os.stat(path))
    trust.check(str(path), os.stat(path))  # verified again: those bytes are none LMDB reads
    assert trust.is_trusted(os.stat(path))


def test_a_store_dvc_only_chmods_is_hashed_again_not_verified(tmp_path, monkeypatch):
    """DVC chmods every file of an output before its stage runs: the bytes are the same,
    only the ctime moved. A store of small records is then trusted by its SHA-256, taken
    when it was written, instead of a walk of every page (20x the time at 270 bytes an
    image); the same chmod after an in-place edit with the mtime set back is verified."""
    import os

    from imageshelf.store import trust

    monkeypatch.setenv("IMAGESHELF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(trust, "_distrust", [False])  # as a stage starts (not validate --full)
    verified: list[str] = []
    real = trust.problems
    monkeypatch.setattr(trust, "problems", lambda path: verified.append(str(path)) or real(path))
    path = build_store(tmp_path / "s.lmdb", _images(3))
    trust.remember_path(path)  # validate's proof of the same file keeps the hash taken
    for mode in (0o444, 0o644):  # two stage runs
        path.chmod(mode)
        trust._remembered.clear()  # another process: only the marker on disk counts
        trust.check(str(path), os.stat(path))
    assert verified == []
    assert trust.is_trusted(os.stat(path))
    _write_in_place(path, os.stat(path).st_size - 100, b"\xff" * 4)
    path.chmod(0o444)
    trust._remembered.clear()
    trust.check(str(path), os.stat(path))  # those bytes are none LMDB reads: it passes
    assert verified == [str(path)]
