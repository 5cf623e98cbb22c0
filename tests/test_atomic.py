"""Publishing a file whole: the one helper everything the project writes goes through."""

from __future__ import annotations

import pytest

from imageshelf.base.atomic import WriteError, atomic_write, write_json


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "report.json"
    write_json(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_write(target, durable=True) as out:
        out.write(b'{"version": 2, "trunc')
        raise RuntimeError("the disk went away mid-write")
    assert target.read_text() == '{\n  "version": 1\n}\n'
    assert leftovers(tmp_path) == []


def test_a_failed_rename_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a folder where the file should go
    with (
        pytest.raises(WriteError, match="taken: Is a directory"),
        atomic_write(target, durable=True) as out,
    ):
        out.write(b"data")
    assert leftovers(tmp_path) == [] and (target / "inside").is_dir()


def test_a_published_file_is_a_new_file_never_the_old_one_rewritten(tmp_path):
    target = tmp_path / "manifest.jsonl"
    target.write_bytes(b"old\n")
    old_inode = target.stat().st_ino
    with atomic_write(target, durable=True) as out:
        out.write(b"new\n")
    assert target.read_bytes() == b"new\n" and target.stat().st_ino != old_inode


def test_threads_writing_one_file_at_once_each_publish_a_whole_file(tmp_path):
    """The viewer's threads make the same thumbnail at once (one image in two versions):
    each write publishes its whole file; none finds its temporary file taken."""
    import threading

    target = tmp_path / "thumb.webp"
    payloads = [bytes([n]) * 200_000 for n in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def write(data: bytes) -> None:
        start.wait()
        try:
            for _ in range(20):
                with atomic_write(target) as out:
                    out.write(data[:100_000])
                    out.write(data[100_000:])
        except BaseException as exc:  # noqa: BLE001 - what the test reports
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(data,)) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in payloads and leftovers(tmp_path) == []
