"""Hostile input, round three, for ingest's readers: a metadata.parquet that decodes to
gigabytes or whose schema and cells lie, Label Studio numbers no float holds, sparse and
crafted tar members, and an archive replaced between ingest and pack. Each gives a
one-line error or a reject with its reason; never a traceback, a hang, an allocation
past a cap, or bytes that differ from what `tar x` extracts."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from imageshelf.records.manifest import read_manifest_keys
from imageshelf.store import ImageStore

from conftest import command_line, ingest_and_pack, make_image, put, report, stage

INCOMING = Path("data/incoming")
MEMORY = 1 << 30  # the address space a stage run in a process of its own may take
# pack and validate map the store: LMDB's map alone is 1 GiB of address space
MEMORY_WITH_STORE = 3 << 30


def run_capped(
    cwd: Path, *args: str, timeout: float = 120, memory: int = MEMORY
) -> tuple[subprocess.CompletedProcess, int]:
    """Run a stage in a process of its own, its address space capped at `memory` and its
    time at `timeout` (then it is killed: exit 124); its result and its peak resident
    memory in MiB."""
    code = (
        "import resource, subprocess, sys\n"
        f"cap, timeout = {memory}, {timeout}\n"
        "limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap))\n"
        "try:\n"
        "    r = subprocess.run(sys.argv[1:], capture_output=True, text=True,\n"
        "                       preexec_fn=limit, timeout=timeout)\n"
        "    sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); code = r.returncode\n"
        "except subprocess.TimeoutExpired:\n"
        "    sys.stderr.write(f'killed after {timeout} s\\n'); code = 124\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *command_line(*args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    return result, int(result.stderr.strip().splitlines()[-1]) // 1024


def one_line_error(output: str, *words: str) -> str:
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ metadata.parquet


def _dictionary_bomb() -> bytes:
    """448 bytes: 1,500 rows whose caption is one 1 MiB string, stored once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 1500
    caption = pa.DictionaryArray.from_arrays(
        pa.array([0] * rows, pa.int32()), pa.array(["A" * (1 << 20)])
    )
    table = pa.table({"file_name": ["a.png"] * rows, "caption": caption})
    out = io.BytesIO()
    pq.write_table(table, out, compression="brotli", store_schema=False)
    return out.getvalue()


def _run_length_bomb() -> bytes:
    """A few KB: one row whose tags are a million run-length-encoded copies of 1 KB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    count = 1_000_000
    tag = pa.DictionaryArray.from_arrays(pa.array([0] * count, pa.int32()), pa.array(["B" * 1024]))
    tags = pa.ListArray.from_arrays(pa.array([0, count], pa.int32()), tag)
    out = io.BytesIO()
    pq.write_table(pa.table({"file_name": ["a.png"], "tags": tags}), out, compression="brotli")
    return out.getvalue()


def _compression_bomb() -> bytes:
    """A few hundred bytes: one 80 MB caption, plain, compressed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"file_name": ["a.png"], "caption": ["C" * (80 << 20)]})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", use_dictionary=False)
    return out.getvalue()


@pytest.mark.parametrize("bomb", [_dictionary_bomb, _run_length_bomb, _compression_bomb])
def test_a_parquet_file_that_decodes_to_gigabytes_is_refused_before_it_is_decoded(workspace, bomb):
    data = bomb()
    assert len(data) < 8192
    put(INCOMING, {"a.png": make_image(seed=1), "metadata.parquet": data})
    result, peak_mib = run_capped(workspace, "ingest")
    assert result.returncode == 1, result.stderr[-3000:]
    one_line_error(result.stderr, "metadata.parquet", "compression bomb", "JSON Lines")
    assert peak_mib < 600, f"{peak_mib} MiB to refuse a {len(data):,}-byte file"


def test_a_repetitive_parquet_table_within_the_bound_reads_whole(workspace):
    """The bound is on what rows decode to, not on repetition: 20,000 rows sharing one
    caption of 1 KB (20 MB as JSON from a file of about 60 KB) read as they are."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"img/{i}.png" for i in range(20_000)]
    table = pa.table({"file_name": names, "caption": ["same words " * 100] * len(names)})
    pq.write_table(table, INCOMING / "metadata.parquet")
    put(INCOMING, {"img/7.png": make_image(seed=7)})
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    assert report("ingest")["staged"] == 1
    assert len(report("ingest")["unused_metadata"]) == 19_999


def _parquet_with(schema_entry: bytes | None, cells: list[object]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = {b"imageshelf.json_columns": schema_entry} if schema_entry is not None else None
    table = pa.table(
        {"file_name": [f"{i}.png" for i in range(len(cells))], "objects": cells}
    ).replace_schema_metadata(metadata)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@pytest.mark.parametrize(
    "entry",
    [b"123", b"not json", b'[["objects"]]', b'"objects"', b'{"objects": 1}', b"[1, 2]"],
)
def test_a_json_columns_entry_that_is_not_a_list_of_names_is_one_line(workspace, entry):
    cells = ['[{"bbox": [1, 2, 3, 4]}]', "[]"]
    put(INCOMING, {"0.png": make_image(seed=1), "metadata.parquet": _parquet_with(entry, cells)})
    result = stage("ingest")
    assert result.exit_code == 1, result.output
    one_line_error(result.stderr, "metadata.parquet", "imageshelf.json_columns", "list of column")


@pytest.mark.parametrize(
    "cells, row",
    [
        (['[{"bbox": [1, 2, 3, 4]}]', "{not json"], 2),
        (['[{"bbox": [1, 2, 3, 4]}]', "NaN"], 2),
        (['[{"bbox": [1, 2, 3, 4]}]', "[1e400]"], 2),
        ([1, 7], 1),  # numbers where JSON text is named
    ],
)
def test_a_cell_marked_as_json_that_is_not_json_is_one_line(workspace, cells, row):
    put(INCOMING, {"0.png": make_image(seed=1), "1.png": make_image(seed=2)})
    put(INCOMING, {"metadata.parquet": _parquet_with(b'["objects"]', cells)})
    result = stage("ingest")
    assert result.exit_code == 1, result.output
    one_line_error(result.stderr, "metadata.parquet", f"row {row}", "'objects'", "not JSON")


def test_json_columns_that_are_json_read_back_as_values(workspace):
    cells = ['[{"bbox": [1, 2, 3, 4], "note": null}]', "[]"]
    put(INCOMING, {"0.png": make_image(seed=1), "1.png": make_image(seed=2)})
    put(INCOMING, {"metadata.parquet": _parquet_with(b'["objects"]', cells)})
    store = ingest_and_pack()
    assert store.metadata("0.png") == {"objects": [{"bbox": [1, 2, 3, 4], "note": None}]}
    assert store.metadata("1.png") == {"objects": []}


# ------------------------------------------------------------------ Label Studio numbers


def _region(rid: str, value: dict, **extra: object) -> dict:
    return {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": 40,
        "original_height": 30,
        "value": {"rectanglelabels": ["cat"], **value},
        **extra,
    }


HUGE = 10**400  # 401 digits: Python's JSON reader takes it, float() of it overflows


@pytest.mark.parametrize(
    "bad",
    [
        {"extra": {"original_width": HUGE}, "says": "original_width"},
        {"value": {"x": HUGE}, "says": "x is not a finite number"},
        {"value": {"width": -HUGE, "rotation": HUGE}, "says": "is not a finite number"},
        {"value": {"points": [[10, 10], [HUGE, 5], [3, 3]]}, "says": "points"},
    ],
)
def test_a_label_studio_number_no_float_holds_reports_its_region_and_keeps_the_rest(workspace, bad):
    good_box = {"x": 10, "y": 20, "width": 50, "height": 50}
    bad_box = {**good_box, **bad.get("value", {})}
    if "points" in bad_box:
        bad_box = {"points": bad_box["points"], "polygonlabels": ["cat"]}
    task = {
        "id": 5,
        "data": {"image": "/data/upload/1/a.png"},
        "annotations": [
            {
                "id": 9,
                "result": [
                    _region("good", good_box),
                    _region("bad", bad_box, **bad.get("extra", {})),
                ],
            }
        ],
    }
    text = json.dumps([task])
    assert str(HUGE) in text
    put(INCOMING, {"a.png": make_image(size=(40, 30), seed=1), "export.json": text})
    store = ingest_and_pack()
    objects = {o["id"]: o for o in store.metadata("a.png")["objects"]}
    assert objects["good"]["bbox"] == [4, 6, 20, 15]
    assert "bbox" not in objects["bad"] and "segmentation" not in objects["bad"]
    notes = [n for n in report("ingest")["annotation_notes"] if "region bad" in n]
    assert len(notes) == 1 and "export.json: task 5" in notes[0] and bad["says"] in notes[0]
    assert stage("validate").exit_code == 0


# ------------------------------------------------------------------ tar members


def _gnu_tar() -> str:
    tar = shutil.which("tar")
    version = subprocess.run([tar, "--version"], capture_output=True, text=True) if tar else None
    if version is None or "GNU tar" not in version.stdout:
        pytest.skip("needs GNU tar, the reference for what a sparse member holds")
    return tar


def _mostly_black_bmp() -> bytes:
    """A BMP of 196,662 bytes, zeros but for its header and seven pixels far apart."""
    image = Image.new("RGB", (256, 256))
    for y in range(0, 256, 40):
        image.putpixel((7, y), (200, 10, 10))
    out = io.BytesIO()
    image.save(out, "BMP")
    return out.getvalue()


def _sparse_image(path: Path) -> bytes:
    """A mostly black BMP, written with holes where whole 4 KB blocks are zeros: eight
    data regions, more than the four a GNU header holds."""
    data = _mostly_black_bmp()
    with open(path, "wb") as fh:
        fh.truncate(len(data))
        for at in range(0, len(data), 4096):
            if data[at : at + 4096].strip(b"\0"):
                fh.seek(at)
                fh.write(data[at : at + 4096])
    if os.stat(path).st_blocks * 512 >= len(data):
        pytest.skip("this file system keeps no holes: no sparse file to archive")
    return data


def _extracted(tar: str, archive: Path, into: Path) -> dict[str, bytes]:
    """What `tar x` writes for each regular member of `archive`."""
    into.mkdir()
    subprocess.run([tar, "-xf", str(archive), "-C", str(into)], capture_output=True)
    return {
        str(p.relative_to(into)): p.read_bytes() for p in sorted(into.rglob("*")) if p.is_file()
    }


def _stored_as_tar_extracts(store: ImageStore, prefix: str, extracted: dict[str, bytes]) -> None:
    """Every member stored holds what `tar x` wrote; every other is rejected."""
    rejected = {r["path"] for r in report("ingest")["rejects"]}
    for name, data in extracted.items():
        key = f"{prefix}/{name}"
        assert key in rejected or store.get(key) == data, key
    for key in store:
        assert key.removeprefix(prefix + "/") in extracted, key


@pytest.mark.parametrize("form", ["gnu", "0.0", "0.1", "1.0"])
def test_a_sparse_member_is_stored_as_tar_extracts_it(workspace, tmp_path, form):
    tar = _gnu_tar()
    source = tmp_path / "source"
    source.mkdir()
    image = _sparse_image(source / "black.bmp")
    (source / "after.png").write_bytes(make_image(seed=2))  # bytes after it, to misread
    archive = INCOMING / "scans.tar"
    fmt = ["--format=gnu"] if form == "gnu" else ["--format=posix", f"--sparse-version={form}"]
    subprocess.run(
        [tar, "-cf", str(archive), "--sparse", *fmt, "-C", str(source), "black.bmp", "after.png"],
        check=True,
    )
    with tarfile.open(archive) as members:
        assert members.getmember("black.bmp").sparse is not None  # stored with holes
    store = ingest_and_pack()
    assert store.get("scans.tar/black.bmp") == image
    _stored_as_tar_extracts(store, "scans.tar", _extracted(tar, archive, tmp_path / "x"))
    assert stage("validate").exit_code == 0


def _octal(number: int) -> bytes:
    return b"%011o\0" % number


def _gnu_sparse(name: str, size: int, slots: list[tuple[int, int]], data: bytes) -> bytes:
    """A GNU old-format sparse member: up to 4 (offset, length) slots in its header,
    the rest 21 to an extension block."""
    header = bytearray(512)
    header[: len(name)] = name.encode()
    header[100:124] = b"0000644\0" + b"0000000\0" * 2
    header[124:148] = _octal(len(data)) + _octal(0)
    header[156:157], header[257:265] = b"S", b"ustar  \0"
    for i, (offset, length) in enumerate(slots[:4]):
        header[386 + 24 * i : 410 + 24 * i] = _octal(offset) + _octal(length)
    rest = [slots[i : i + 21] for i in range(4, len(slots), 21)]
    header[482], header[483:495] = int(bool(rest)), _octal(size)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    blocks = bytes(header)
    for number, group in enumerate(rest):
        extension = bytearray(512)
        for i, (offset, length) in enumerate(group):
            extension[24 * i : 24 * i + 24] = _octal(offset) + _octal(length)
        extension[504] = int(number < len(rest) - 1)
        blocks += bytes(extension)
    return blocks + data + b"\0" * (-len(data) % 512)


def _member(name: str, data: bytes, **pax: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.pax_headers = len(data), pax
    return info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)


def test_sparse_maps_gnu_tar_and_tarfile_read_differently_are_rejected(workspace, tmp_path):
    tar = _gnu_tar()
    block = bytes(range(256)) * 2  # 512 bytes
    image = _mostly_black_bmp()
    regions = [(at, 512) for at in range(0, len(image), 512) if image[at : at + 512].strip(b"\0")]
    assert len(regions) > 4 and len(image) % 512  # the last region is a part-block
    regions[-1] = (regions[-1][0], len(image) - regions[-1][0])
    stored = b"".join(image[at : at + length] for at, length in regions)
    crafted = {
        # GNU tar reads each region from whole blocks, tarfile back to back
        "unaligned.bin": _gnu_sparse(
            "unaligned.bin", 5000, [(0, 100), (2048, 512), (5000, 0)], block[:100] + block
        ),
        # no entry marks the end: GNU tar stops at 2,560 bytes, tarfile fills to 5,000
        "short.bin": _gnu_sparse("short.bin", 5000, [(0, 512), (2048, 512)], block * 2),
        "overlap.bin": _gnu_sparse(
            "overlap.bin", 5000, [(0, 1024), (512, 512), (5000, 0)], block * 3
        ),
        # the end marked in an extension block, where tarfile drops it: read as GNU tar does
        "long.bmp": _gnu_sparse("long.bmp", len(image), [*regions, (len(image), 0)], stored),
    }
    archive = INCOMING / "crafted.tar"
    archive.write_bytes(
        b"".join(crafted.values()) + _member("good.png", make_image(seed=3)) + b"\0" * 1024
    )
    store = ingest_and_pack()
    assert sorted(store.keys()) == ["crafted.tar/good.png", "crafted.tar/long.bmp"]
    assert store.get("crafted.tar/long.bmp") == image
    rejects = {r["path"]: r["reason"] for r in report("ingest")["rejects"]}
    for name in ("unaligned.bin", "short.bin", "overlap.bin"):
        assert "a sparse member whose map" in rejects[f"crafted.tar/{name}"], rejects
    extracted = _extracted(tar, archive, tmp_path / "x")
    _stored_as_tar_extracts(store, "crafted.tar", extracted)


def _raw_header(name: bytes, size_field: bytes) -> bytes:
    header = bytearray(512)
    header[: len(name)] = name
    header[100:124] = b"0000644\0" + b"0000000\0" * 2
    header[124:136], header[136:148] = size_field, _octal(0)
    header[156:157], header[257:265] = b"0", b"ustar  \0"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _base256(number: int) -> bytes:
    """GNU's binary size field: 0x80, then the number in 11 bytes, two's complement."""
    field = bytearray((number % (1 << 88)).to_bytes(12, "big"))
    field[0] = 0x80 if number >= 0 else 0xFF
    return bytes(field)


@pytest.mark.timeout(180)
def test_crafted_tar_headers_are_rejected_and_the_members_before_them_kept(workspace):
    good = make_image(seed=4)
    archives = {
        # -512 bytes: tarfile reads this header again and again, for ever
        "negative.tar": _member("ok.png", good) + _raw_header(b"loop.png", _base256(-512)),
        "huge_pax.tar": _member("ok.png", good) + _member("huge.png", b"", size=str(10**30)),
        "huge_gnu.tar": _member("ok.png", good) + _raw_header(b"huge.png", _base256(1 << 80)),
        "names.tar": _member("ok.png", good)
        + _member("x.png", good, path="../x.png")
        + _member("y.png", good, path="/etc/y.png")
        + _member("z.png", good, path="../" * 60 + "z.png"),
    }
    for name, data in archives.items():
        (INCOMING / name).write_bytes(data + b"\0" * 1024)
    result, _peak = run_capped(workspace, "ingest", timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    staged = set(read_manifest_keys("data/staged.jsonl"))
    assert staged == {f"{name}/ok.png" for name in archives}
    rejects = {r["path"]: r["reason"] for r in report("ingest")["rejects"]}
    assert (
        "claiming -512 bytes; the archive is not read past it" in rejects["negative.tar/loop.png"]
    )
    assert "ends inside this member" in rejects["huge_pax.tar/huge.png"]
    assert "ends inside this member" in rejects["huge_gnu.tar/huge.png"]
    for name in ("../x.png", "/etc/y.png", "../" * 60 + "z.png"):
        assert rejects[f"names.tar/{name}"] == "a member path that leaves the archive"


# ------------------------------------------------------------------ an archive replaced


def _sparse_on_disk_tar(path: Path, name: str, size: int) -> None:
    """A tar whose one member is `size` bytes of zeros, written as a hole: gigabytes
    that take no disk."""
    info = tarfile.TarInfo(name)
    info.size = size
    with open(path, "wb") as fh:
        fh.write(info.tobuf(tarfile.PAX_FORMAT))
        fh.truncate(fh.tell() + -(-size // 512) * 512 + 1024)


def test_pack_reads_an_archive_replaced_after_ingest_no_further_than_ingest_staged(workspace):
    archive = INCOMING / "batch.tar"
    with tarfile.open(archive, "w") as members:
        data = make_image(seed=5)
        info = tarfile.TarInfo("a.png")
        info.size = len(data)
        members.addfile(info, io.BytesIO(data))
    assert stage("ingest").exit_code == 0
    _sparse_on_disk_tar(archive, "a.png", 1_500_000_000)
    result, peak_mib = run_capped(workspace, "pack", memory=MEMORY_WITH_STORE)
    assert result.returncode == 1, result.stderr[-3000:]
    one_line_error(result.stderr, "batch.tar/a.png", "1,500,000,000 bytes", "run ingest again")
    assert peak_mib < 400, f"{peak_mib} MiB"


def test_validate_reads_a_source_replaced_after_pack_no_further_than_ingest_staged(workspace):
    archive = INCOMING / "batch.tar"
    with tarfile.open(archive, "w") as members:
        data = make_image(seed=6)
        info = tarfile.TarInfo("a.png")
        info.size = len(data)
        members.addfile(info, io.BytesIO(data))
    ingest_and_pack()
    _sparse_on_disk_tar(archive, "a.png", 1_500_000_000)
    result, peak_mib = run_capped(workspace, "validate", memory=MEMORY_WITH_STORE)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "batch.tar/a.png" in result.stderr + result.stdout
    assert peak_mib < 400, f"{peak_mib} MiB"
