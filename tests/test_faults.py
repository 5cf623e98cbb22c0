"""What users and machines do to a dataset store, and proof that nothing is lost.

Each test here is named in docs/GUARANTEES.md.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from imageshelf.store import ImageStore

from conftest import batch, build_store, command_line, make_image, md5, packed, put, sh

AS_ROOT = os.geteuid() == 0
# As root, file permissions stop nothing. Dropping the two capabilities that bypass
# them makes "a file without read permission" as real for the test as for a user.
WITHOUT_ROOT_POWERS = (
    ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if AS_ROOT else []
)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WITHOUT_ROOT_POWERS, *command_line(*args)], cwd=cwd, text=True, capture_output=True
    )


def hostile_folder(incoming: Path, outside: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Good images with awkward names beside every kind of bad input.

    Returns the good images by key, and the code each bad path must be rejected with.
    """
    good = {
        "plain.jpg": make_image("JPEG", seed=1),
        "with space.png": make_image("PNG", seed=2),
        "ünïcødé/名前.webp": make_image("WEBP", seed=3),
        "new\nline.gif": make_image("GIF", seed=4),
        "-leading-dash.bmp": make_image("BMP", seed=5),
        "--help.tif": make_image("TIFF", seed=6),
        "really_an_image.txt": make_image("PNG", seed=7),
        "a/b/c/deep.png": make_image("PNG", seed=8),
    }
    long_dir = "l" * 250 + "/" + "m" * 250
    jpeg, png = make_image("JPEG", (64, 64), seed=9), make_image("PNG", (64, 64), seed=10)
    bad = {
        "zero.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "text.jpg": b"this is not a JPEG at all\n",
        "bomb.png": _png_declaring(100_000, 100_000),
        f"{long_dir}/too_long.png": make_image(seed=11),
        "unreadable.png": make_image(seed=12),
        "bad_sidecar.png": make_image(seed=13),
        "bad_sidecar.png.json": b"{'single': quotes}",
        "list_sidecar.png": make_image(seed=14),
        "list_sidecar.png.json": b"[1, 2, 3]",
        "huge_meta.png": make_image(seed=15),
        "huge_meta.png.json": b'{"blob": "' + b"x" * (50 << 20) + b'"}',
    }
    put(incoming, {**good, **bad})
    (incoming / "unreadable.png").chmod(0)
    outside.write_bytes(make_image(seed=16))
    os.symlink(outside, incoming / "escape.png")
    os.symlink("loop_b.png", incoming / "loop_a.png")
    os.symlink("loop_a.png", incoming / "loop_b.png")
    expected = {
        "zero.jpg": "empty",
        "truncated.jpg": "truncated",
        "truncated.png": "truncated",
        "text.jpg": "not_image",
        "bomb.png": "too_large",
        f"{long_dir}/too_long.png": "key_too_long",
        "unreadable.png": "unreadable",
        "bad_sidecar.png": "bad_metadata",
        "list_sidecar.png": "bad_metadata",
        "huge_meta.png": "bad_metadata",
        "escape.png": "symlink",
        "loop_a.png": "symlink",
        "loop_b.png": "symlink",
    }
    return good, expected


def _png_declaring(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("strict", [False, True])
def test_hostile_input_packs_every_good_image_and_rejects_every_bad_one(workspace, strict):
    good, expected = hostile_folder(workspace / "data" / "incoming", workspace / "outside.png")
    if strict:
        params = workspace / "params.yaml"
        params.write_text(params.read_text().replace("strict: false", "strict: true"))

    ingest = cli(workspace, "ingest")
    report = json.loads((workspace / "reports" / "ingest.json").read_text())
    assert {r["path"]: r["code"] for r in report["rejects"]} == expected
    assert all(r["reason"] and "\n" not in r["reason"] for r in report["rejects"])
    assert "Traceback" not in ingest.stderr
    assert ingest.returncode == (1 if strict else 0), ingest.stderr
    if strict:
        assert f"{len(expected)} file(s) rejected and ingest.strict is true" in ingest.stderr
        return

    for stage in ("pack", "validate"):
        result = cli(workspace, stage)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    with ImageStore(workspace / "data" / "images.lmdb") as store:
        assert {key: store.get(key) for key in store} == good


def _images(count: int, seed: int = 0, size: tuple[int, int] = (48, 48)) -> dict[str, bytes]:
    return {f"img/{seed + i:05d}.png": make_image("PNG", size, seed=seed + i) for i in range(count)}


def _replace_file(path: Path, data: bytes) -> None:
    # Tests damage copies the way a disk would; they never write into a published file.
    path.unlink()
    path.write_bytes(data)


def test_damage_inside_lmdb_pages_fails_validate_without_a_crash(workspace):
    images = _images(200)
    store = build_store(workspace / "data" / "images.lmdb", images)
    damaged = bytearray(store.read_bytes())
    for page in (3, 4, 5):  # the first pages after the meta pages: B-tree nodes
        damaged[page * 4096 + 40] ^= 0xFF
    _replace_file(store, bytes(damaged))
    result = cli(workspace, "validate", "--manifest", os.devnull)
    assert result.returncode == 1, result.stderr  # an exit, not a signal
    assert result.stderr.startswith("Error: validate:") and "(lmdb)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_truncated_store_is_a_clear_error_in_every_command(workspace):
    store = build_store(workspace / "data" / "images.lmdb", _images(50))
    _replace_file(store, store.read_bytes()[: store.stat().st_size // 3])
    for args in (["ls"], ["validate"], ["export", "--out", "out"], ["stats"]):
        result = cli(workspace, *args)
        assert result.returncode == 1, (args, result.returncode, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "truncated" in result.stderr


@pytest.mark.skipif(not AS_ROOT, reason="needs root to mount a small filesystem")
def test_a_full_disk_is_a_clear_error_and_the_previous_store_stays(workspace, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(small)]).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        store = build_store(small / "images.lmdb", _images(40, size=(64, 64)))
        before = md5(store)
        put(workspace / "data" / "incoming", _images(220, seed=1000, size=(64, 64)))
        assert cli(workspace, "ingest").returncode == 0
        result = cli(workspace, "pack", "--store", str(store))
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"Error: disk full while writing {store}; the previous store is unchanged"
        )
        assert md5(store) == before
        assert sorted(p.name for p in small.iterdir()) == [".images.lmdb.lock", "images.lmdb"]
        with ImageStore(store) as reopened:
            assert len(reopened) == 40
    finally:
        subprocess.run(["umount", "-l", str(small)], check=True)


def _reader(path: str, versions: dict[str, int], stop, errors) -> int:
    """Open the store again and again, read random records, check each one whole."""
    rng = random.Random(os.getpid())
    reads = 0
    while not stop.is_set():
        try:
            with ImageStore(path) as store:
                header = store.header
                if versions.get(header.content_digest, len(store)) != len(store):
                    errors.put(f"a mixed version: {header.count} images")
                keys = store.keys()
                if len(keys) not in versions.values():
                    errors.put(f"{len(keys)} keys: neither the old nor the new store")
                for key in rng.sample(keys, min(20, len(keys))):
                    info, data = store.info(key), store.get(key)
                    if hashlib.sha256(data).hexdigest() != info.sha256:
                        errors.put(f"{key}: bytes do not match")
                    reads += 1
        except Exception as exc:  # noqa: BLE001 - every failure is what the test looks for
            errors.put(f"{type(exc).__name__}: {exc}")
    return reads


@pytest.mark.slow
def test_readers_and_a_second_pack_while_pack_publishes(workspace):
    incoming = workspace / "data" / "incoming"
    store_path = workspace / "data" / "images.lmdb"
    put(incoming, _images(300))
    assert cli(workspace, "ingest").returncode == 0 and cli(workspace, "pack").returncode == 0
    old = ImageStore(store_path).header
    put(incoming, _images(1500, seed=300))
    assert cli(workspace, "ingest").returncode == 0

    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    errors, stop = manager.Queue(), manager.Event()
    versions = manager.dict({old.content_digest: 300, "new": 1800})
    with context.Pool(8) as pool:
        pending = pool.starmap_async(_reader, [(str(store_path), versions, stop, errors)] * 8)
        time.sleep(1.0)  # readers are reading the old version
        packing = subprocess.Popen(
            command_line("pack"),
            cwd=workspace,
            text=True,
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        while not list((workspace / "data").glob(".images.lmdb.tmp-*")):
            assert packing.poll() is None, packing.stderr.read()
            time.sleep(0.002)
        os.kill(packing.pid, signal.SIGSTOP)  # hold the first pack mid-write
        try:
            second = cli(workspace, "pack")
        finally:
            os.kill(packing.pid, signal.SIGCONT)
        _, err = packing.communicate(timeout=120)
        time.sleep(1.0)  # readers now read the new version
        stop.set()
        reads = sum(pending.get(timeout=60))

    assert packing.returncode == 0, err
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"Error: another process (pid {packing.pid}) is writing "
        "data/images.lmdb; wait for it to finish"
    )
    assert ImageStore(store_path).header.count == 1800  # nothing lost to the second pack
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == [] and reads > 1000


@pytest.mark.parametrize("cache_type", ["copy", "hardlink", "symlink"])
def test_packing_never_changes_an_object_in_dvcs_cache(repo, cache_type):
    sh(repo, "dvc", "config", "cache.type", cache_type)
    packed(repo, batch(0, 20), "first batch")
    if cache_type != "copy":
        assert (repo / "data" / "images.lmdb").is_symlink() == (cache_type == "symlink")
    put(repo / "data" / "incoming", batch(100, 20))
    sh(repo, "dvc", "repro")
    put(repo / "data" / "incoming", batch(200, 5))
    sh(repo, "dvc", "repro")

    objects = [p for p in (repo / ".dvc" / "cache" / "files" / "md5").rglob("*") if p.is_file()]
    assert len(objects) >= 6  # three versions of the store and of the manifest
    for obj in objects:
        name = obj.parent.name + obj.name.removesuffix(".dir")
        assert md5(obj) == name, f"{obj} was changed after DVC stored it"
    with ImageStore(repo / "data" / "images.lmdb") as store:
        assert len(store) == 45


def test_a_fifo_in_place_of_a_staged_file_is_an_error_not_a_hang(workspace):
    incoming = workspace / "data" / "incoming"
    put(incoming, _images(3))
    assert cli(workspace, "ingest").returncode == 0
    (incoming / "img/00001.png").unlink()
    os.mkfifo(incoming / "img/00001.png")  # nobody will ever write into it
    result = subprocess.run(
        command_line("pack"), cwd=workspace, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and result.stderr.strip() == (
        "Error: cannot read data/incoming/img/00001.png: not a regular file (a pipe, socket "
        "or device); the previous store is unchanged"
    )
    assert not (workspace / "data" / "images.lmdb").exists()

    (incoming / "img/00001.png").unlink()
    put(incoming, _images(3))
    assert cli(workspace, "ingest").returncode == 0 and cli(workspace, "pack").returncode == 0
    (incoming / "img/00002.png").unlink()
    os.mkfifo(incoming / "img/00002.png")
    result = subprocess.run(
        command_line("validate"), cwd=workspace, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "not a regular file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _temp_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*.tmp-*")]


def test_a_read_only_folder_beside_the_store_is_one_line_in_every_stage(workspace):
    put(workspace / "data" / "incoming", _images(3))
    reports, catalog = workspace / "reports", workspace / "data" / "catalog"
    reports.mkdir()
    reports.chmod(0o555)
    result = cli(workspace, "ingest")
    assert result.returncode == 1 and result.stderr.strip() == (
        "Error: cannot write reports/ingest.json: Permission denied; "
        "the previous version is unchanged"
    )
    reports.chmod(0o755)
    assert cli(workspace, "ingest").returncode == 0

    catalog.mkdir(parents=True)
    catalog.chmod(0o555)
    result = cli(workspace, "pack")
    assert result.returncode == 1 and result.stderr.strip() == (
        "Error: data/images.lmdb was published, but its catalog was not: cannot write "
        "data/catalog: Permission denied; the previous version is unchanged; fix that and "
        "run pack again"
    )
    catalog.chmod(0o755)
    validate = cli(workspace, "validate")  # the stale catalog does not pass
    assert validate.returncode == 1 and "catalog" in validate.stderr
    assert cli(workspace, "pack").returncode == 0  # run again: the catalog catches up
    assert cli(workspace, "validate").returncode == 0

    reports.chmod(0o555)
    for stage in ("validate", "stats"):
        result = cli(workspace, stage)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("Error: cannot write reports/"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    reports.chmod(0o755)
    assert _temp_files(workspace) == []
