"""Validate: a damaged store or a changed source never passes."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import make_image, put, report, stage

INCOMING = Path("data/incoming")
STORE = Path("data/images.lmdb")


def packed(images: dict[str, bytes]) -> None:
    put(INCOMING, images)
    assert stage("ingest").exit_code == 0
    assert stage("pack").exit_code == 0


def test_an_intact_store_passes_and_says_what_it_checked(workspace):
    packed({f"{i}.png": make_image(seed=i) for i in range(5)})
    result = stage("validate")
    assert result.exit_code == 0, result.output
    assert "5 records intact" in result.stdout and "5 staged images present" in result.stdout
    assert report("validate")["ok"] is True


def test_a_flipped_byte_inside_a_stored_image_fails_naming_the_key(workspace):
    images = {f"{i}.png": make_image("PNG", (48, 48), seed=i) for i in range(5)}
    packed(images)
    data = bytearray(STORE.read_bytes())
    victim = images["3.png"]
    at = data.find(victim) + len(victim) // 2
    data[at] ^= 0xFF
    STORE.unlink()  # a new file: never write into a published store, even in a test
    STORE.write_bytes(bytes(data))

    result = stage("validate")
    assert result.exit_code == 1
    assert "3.png: image bytes do not match their sha256" in result.stderr
    assert report("validate")["failures"] == [
        {"key": "3.png", "problem": "image bytes do not match their sha256: the store is corrupt"}
    ]


def test_a_source_changed_after_ingest_fails(workspace):
    packed({"a.png": make_image(seed=1)})
    (INCOMING / "a.png").write_bytes(make_image(seed=2))
    result = stage("validate")
    assert result.exit_code == 1
    assert "a.png: source file changed after ingest" in result.stderr


def test_a_source_as_ingest_hashed_it_is_not_read_again_but_full_reads_it(workspace):
    (workspace / ".dvc").mkdir()  # where ingest keeps what it hashed (state/cache.py)
    packed({f"{i}.png": make_image(seed=i) for i in range(3)})
    assert stage("validate").exit_code == 0
    assert report("validate")["sources_unchanged"] == 3  # proven by fingerprint: not read
    assert report("validate")["sources_checked"] == 0
    # Changed in place with its size and mtime put back: only --full reads it.
    source = INCOMING / "1.png"
    before = source.stat()
    data = bytearray(source.read_bytes())
    data[-20] ^= 0xFF
    with open(source, "r+b") as out:
        out.write(bytes(data))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert stage("validate").exit_code == 0
    result = stage("validate", "--full")
    assert result.exit_code == 1
    assert "1.png: source file changed after ingest" in result.stderr
    assert report("validate")["sources_checked"] == 3


def test_a_catalog_that_differs_from_the_store_fails_naming_the_file(workspace):
    packed({f"{i}.png": make_image(seed=i) for i in range(3)})
    catalog = Path("data/catalog/images.jsonl")
    intact = catalog.read_bytes()
    for damaged, said in (
        (intact.replace(b'"meta":{}', b'"meta":{"label":"x"}', 1), "does not match the store"),
        (intact.replace(b'"key":', b'"kee":', 1), "does not parse"),
        (intact + b"not json\n", "does not parse"),
    ):
        catalog.unlink()  # a new file, as DVC's checkout writes one
        catalog.write_bytes(damaged)
        result = stage("validate")
        assert result.exit_code == 1
        assert f"{catalog}" in result.stderr and said in result.stderr, result.stderr
    catalog.unlink()
    catalog.write_bytes(intact)
    assert stage("validate").exit_code == 0


def _edit_in_place(source: Path, keep_mtime: bool) -> None:
    before = source.stat()
    data = bytearray(source.read_bytes())
    data[-20] ^= 0xFF  # inside the last chunk: still the same size
    with open(source, "r+b") as out:
        out.write(bytes(data))
    if keep_mtime:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))


def test_pack_reads_each_image_once_and_validate_still_proves_the_stored_bytes(workspace):
    """Pack takes ingest's hash of a file whose fingerprint is unchanged since ingest
    read it (a first build reads and hashes each image once); a file edited after
    ingest is refused, and one edited with its mtime put back, which pack cannot tell,
    is caught by validate, which hashes the bytes the store holds."""
    (workspace / ".dvc").mkdir()  # where ingest keeps what it hashed (state/cache.py)
    images = {f"{i}.png": make_image("PNG", (48, 48), seed=i) for i in range(3)}
    put(INCOMING, images)
    assert stage("ingest").exit_code == 0
    _edit_in_place(INCOMING / "1.png", keep_mtime=False)
    result = stage("pack")
    assert result.exit_code == 1
    assert "1.png: bytes changed since they were hashed; run again" in result.stderr
    assert not STORE.exists()

    (INCOMING / "1.png").write_bytes(images["1.png"])
    assert stage("ingest").exit_code == 0
    _edit_in_place(INCOMING / "2.png", keep_mtime=True)
    assert stage("pack").exit_code == 0
    result = stage("validate")
    assert result.exit_code == 1
    assert "2.png: image bytes do not match their sha256" in result.stderr


def test_validate_leaves_pack_the_hashes_of_the_parts_it_proves_and_of_no_other(workspace):
    """Pack checks new images for duplicates against each part's list of image hashes;
    validate reads every record of a part it proves, so it leaves that list behind and
    the first add after a build of a million images reads no stored record for it."""
    import hashlib

    from imageshelf import ImageStore
    from imageshelf.state import cache

    (workspace / ".dvc").mkdir()  # where the cache lives (state/cache.py)
    images = {f"{i}.png": make_image("PNG", (48, 48), seed=i) for i in range(4)}
    packed(images)
    assert stage("validate").exit_code == 0
    with ImageStore(STORE) as store:
        (part,) = store.parts
    hashes = cache.load_bytes(cache.part_hashes_name(part.content_digest))
    assert hashes == b"".join(hashlib.sha256(images[k]).digest() for k in sorted(images))

    put(INCOMING, {"copy.png": images["2.png"]})  # the same bytes under a new name
    assert stage("ingest").exit_code == 0
    assert stage("pack").exit_code == 0
    assert report("pack")["duplicates"] == [{"key": "copy.png", "same_as": "2.png"}]
    first = part.content_digest  # the single file is a new part at every change
    assert stage("validate").exit_code == 0  # which keeps the list of the store's parts only
    assert cache.load_bytes(cache.part_hashes_name(first)) is None
    with ImageStore(STORE) as store:
        (part,) = store.parts
    assert len(cache.load_bytes(cache.part_hashes_name(part.content_digest)) or b"") == 5 * 32

    data = bytearray(STORE.read_bytes())  # a damaged store proves nothing
    data[data.find(images["3.png"]) + 100] ^= 0xFF
    STORE.unlink()
    STORE.write_bytes(bytes(data))
    listed = cache.part_hashes_name(part.content_digest)  # the intact store's, from above
    (workspace / ".dvc" / "tmp" / "imageshelf" / listed).unlink()
    assert stage("validate").exit_code == 1
    assert cache.load_bytes(cache.part_hashes_name(part.content_digest)) is None
