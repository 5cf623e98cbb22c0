"""Hostile input, round three, for `imageshelf view`: what a client sends, what is put in
its thumbnail cache, and what it keeps as it runs. The viewer bounds its threads, its idle
connections and its scratch, releases what it retires, reads only its own cache entries,
opens every key it lists, and answers only to its own names, on any address it listens
on. Plain HTTP against a served viewer: no browser is needed to see any of it."""

from __future__ import annotations

import hashlib
import html
import http.client
import io
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dvc.repo import Repo
from PIL import Image
from werkzeug.http import parse_options_header

from imageshelf.viewer.serve import Limits, start

from conftest import build_store, command_line, commit, make_image, sh

LOCAL = "127.0.0.1"


@contextmanager
def serving(
    store: Path, thumbs: Path, host: str = LOCAL, rev=None, allowed=(), limits=None
) -> Iterator[tuple[str, int]]:
    """The viewer, in this process, on a free port: (the address it prints, its port)."""
    extra: dict[str, object] = {"allowed": allowed} if allowed else {}
    if limits:
        extra["limits"] = limits
    server, versions, address = start(store, rev, None, host, 0, thumbs, lambda _: None, **extra)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address, server.socket.getsockname()[1]
    finally:
        server.shutdown()
        server.server_close()
        versions.close()


def get(
    port: int, path: str, host: str | None = None, address: str = LOCAL, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """GET `path` (already percent-encoded) with this Host header (default: the address)."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        shown = f"[{address}]" if ":" in address else address
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host or f"{shown}:{port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def links(body: bytes) -> list[str]:
    return [
        link.replace("&amp;", "&") for link in re.findall(r'href="(/image/[^"]+)"', body.decode())
    ]


# ------------------------------------------------------------------ keys and names


def test_a_key_with_a_control_character_is_listed_and_every_route_opens_it(tmp_path):
    keys = ["a\nb.png", "cr\rlf.png", "tab\there.png", "del\x7f.png", "dir\n/x.png"]
    images = {key: make_image("PNG", (8, 8), seed=i) for i, key in enumerate(keys)}
    with serving(build_store(tmp_path / "s.lmdb", images), tmp_path / "thumbs") as (_, port):
        pages = links(get(port, "/")[2])
        assert len(pages) == len(keys)
        for page in pages:
            status, _, body = get(port, page)
            assert status == 200, page
            key = re.search(r'<h1 id="key">([^<]*)<', body.decode())[1]
            assert key.isprintable()  # shown as `a\nb.png`: not mistaken for `a b.png`
            original = get(port, page.replace("/image/", "/original/", 1))
            assert original[0] == 200
            assert original[2] in images.values()
            thumb = get(port, page.replace("/image/", "/thumb/", 1))
            assert thumb[0] == 200 and thumb[1]["Content-Type"] == "image/webp"
        shown = [re.search(r'<h1 id="key">([^<]*)<', get(port, p)[2].decode())[1] for p in pages]
        assert sorted(shown) == sorted(k.encode("unicode_escape").decode() for k in keys)


def test_a_download_keeps_a_name_that_is_not_latin_1_and_its_header_stays_one_line(tmp_path):
    tiff = make_image("TIFF", (12, 10), seed=3)
    names = {"cats/猫.tif": "猫.tif", 'odd/"q"\r\nX-Injected: 1.tif': '"q"\r\nX-Injected: 1.tif'}
    store = build_store(tmp_path / "s.lmdb", dict.fromkeys(names, tiff))
    with serving(store, tmp_path / "thumbs") as (_, port):
        pages = links(get(port, "/")[2])
        assert len(pages) == 2
        for page in pages:
            status, headers, body = get(port, page.replace("/image/", "/original/", 1), timeout=5)
            assert status == 200 and body == tiff  # sent, not a connection left hanging
            assert "X-Injected" not in headers
            disposition = headers["Content-Disposition"]
            assert disposition.isascii() and disposition.isprintable()
            kind, options = parse_options_header(disposition)  # RFC 6266's filename*
            assert kind == "attachment" and options["filename"] in names.values()
            fallback = re.search(r'filename="([^"]*)"', disposition)[1]  # for old clients
            assert fallback.endswith(".tif") and fallback.isascii()


def test_keys_that_are_markup_quotes_or_controls_stay_text_on_the_quality_pages(tmp_path):
    keys = {"<img src=x onerror=alert(1)>.png": "train", "q\"u'ote.png": "test", "a\nb.png": "val"}
    copy = make_image("PNG", (8, 8))  # one content in three splits: a group, leaks, odd_size
    metadata = {key: {"split": split} for key, split in keys.items()}
    store = build_store(tmp_path / "s.lmdb", dict.fromkeys(keys, copy), metadata)
    with serving(store, tmp_path / "thumbs") as (_, port):
        status, _, body = get(port, "/quality")
        assert status == 200 and b'data-kind="leaks"' in body
        for kind in ("exact_duplicates", "leaks", "odd_size"):
            status, _, body = get(port, f"/quality/{kind}")
            text = body.decode()
            assert status == 200, kind
            assert "<img src=x" not in text  # never markup of the page
            assert "&lt;img src=x onerror=alert(1)&gt;.png</div>" in text  # shown as text
            assert "q&#34;u&#39;ote.png</div>" in text
            assert "a\\nb.png</div>" in text  # a newline shown as `\n`
            pages = [html.unescape(href) for href in re.findall(r'href="(/image/[^"]+)"', text)]
            assert len(pages) >= 3, kind  # as a browser reads them: `'` is written &#39;
            for page in pages:  # every key listed opens, and its page names the others
                status, _, shown = get(port, page)
                assert status == 200 and b"<img src=x" not in shown
                assert shown.count(b'class="other"') == 4, page  # 2 copies, 2 leaks


# ------------------------------------------------------------------ who it answers


def test_listening_on_every_address_still_refuses_a_host_name_it_was_not_given(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"a.png": make_image("PNG", (8, 8))})
    with serving(store, tmp_path / "thumbs", host="0.0.0.0") as (address, port):
        assert address == f"http://127.0.0.1:{port}/"
        assert get(port, "/", host=f"attacker.example:{port}")[0] == 400  # DNS rebinding
        assert get(port, "/", host="attacker.example")[0] == 400
        assert get(port, "/", host=f"localhost.attacker.example:{port}")[0] == 400
        assert get(port, "/", host=f"127.0.0.1:{port + 1}")[0] == 400  # another port
        for mine in (f"127.0.0.1:{port}", f"localhost:{port}", f"{socket.gethostname()}:{port}"):
            assert get(port, "/", host=mine)[0] == 200, mine


def test_an_ipv6_address_is_served_at_its_bracketed_url_and_names_are_added_by_flag(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"a.png": make_image("PNG", (8, 8))})
    with serving(store, tmp_path / "thumbs", host="::1") as (address, port):
        assert address == f"http://[::1]:{port}/"
        assert get(port, "/image/a.png", address="::1")[0] == 200  # Host: [::1]:PORT
        assert get(port, "/", address="::1", host=f"localhost:{port}")[0] == 200
        assert get(port, "/", address="::1", host=f"attacker.example:{port}")[0] == 400
    with serving(store, tmp_path / "thumbs", host="::", allowed=["viewer.example"]) as (
        address,
        port,
    ):
        assert address == f"http://[::1]:{port}/"
        for reached in ("::1", LOCAL):  # both families, on one socket
            assert get(port, "/", address=reached)[0] == 200
            assert get(port, "/", address=reached, host=f"viewer.example:{port}")[0] == 200
            assert get(port, "/", address=reached, host=f"attacker.example:{port}")[0] == 400

    # The command takes the names to add, and prints the address to open.
    args = command_line(
        "view", "--store", str(store), "--host", "::", "--allow-host", "viewer.example"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            line = proc.stdout.readline()
            found = re.search(r"http://\[::1\]:(\d+)/", line)
            assert found, line
            port = int(found[1])
            assert get(port, "/", address="::1", host=f"viewer.example:{port}")[0] == 200
            assert get(port, "/", address="::1", host=f"attacker.example:{port}")[0] == 400
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


# ------------------------------------------------------------------ what it holds


def test_half_sent_requests_are_dropped_and_never_hold_a_thread_each(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"a.png": make_image("PNG", (8, 8))})
    limits = Limits(connections=8, timeout=1.0)
    with serving(store, tmp_path / "thumbs", limits=limits) as (_, port):
        before = threading.active_count()
        idle = []
        for _ in range(200):
            client = socket.create_connection((LOCAL, port))
            client.sendall(f"GET / HTTP/1.1\r\nHost: {LOCAL}:{port}\r\n".encode())  # no end
            idle.append(client)
        time.sleep(0.5)
        assert threading.active_count() <= before + limits.connections
        # each is let go: refused at once (503), or closed once it stayed silent 1 s
        started = time.monotonic()
        for client in idle:
            client.settimeout(10)
            try:
                answer = client.recv(100)
            except ConnectionResetError:
                answer = b""
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503 "), answer
            client.close()
        assert time.monotonic() - started < 5
        assert get(port, "/image/a.png")[0] == 200  # and it answers as before


def open_copies(path: Path) -> list[str]:
    """What this process still maps or holds open of files deleted from `path`."""
    held = [
        os.readlink(f"/proc/self/fd/{fd}")
        for fd in os.listdir("/proc/self/fd")
        if os.path.islink(f"/proc/self/fd/{fd}")
    ]
    with open("/proc/self/maps") as maps:
        mapped = [line.split(None, 5)[-1].strip() for line in maps]
    return [p for p in held + mapped if p == f"{path} (deleted)"]


def test_a_store_replaced_by_eight_packs_is_unmapped_and_its_disk_freed(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"a.png": make_image("PNG", (8, 8))})
    with serving(store, tmp_path / "thumbs") as (_, port):
        for round in range(8):
            images = {
                f"{i}.png": make_image("PNG", (16, 16), seed=round * 10 + i)
                for i in range(round + 1)
            }
            fresh = build_store(tmp_path / f"pack{round}.lmdb", images)
            os.replace(fresh, store)  # as pack publishes: a new file renamed over the old
            body = get(port, "/")[2]
            assert body.count(b'class="tile"') == round + 1
        assert open_copies(store) == []  # the seven replaced ones: closed, their disk freed


def du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DVC's own, from its API
def test_revisions_it_stops_using_are_deleted_from_its_scratch(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    sh(repo, "git", "init", "-q", "-b", "main")
    dvc = Repo.init(repo)  # DVC's own API, in this process: a second a command saved
    with dvc.config.edit() as config:
        config["remote"]["local"] = {"url": str(tmp_path / "remote")}
        config["core"]["remote"] = "local"
    store = repo / "data" / "images.lmdb"
    size = 0
    for rev in range(3):
        images = {f"{rev}/{i}.png": make_image("PNG", (64, 64), seed=rev * 9 + i) for i in range(6)}
        os.replace(build_store(tmp_path / f"rev{rev}.lmdb", images), store)
        size = max(size, store.stat().st_size)
        dvc.add(str(store))
        commit(repo, f"revision {rev}")
    dvc.push(all_commits=True)
    dvc.close()
    shutil.rmtree(repo / ".dvc" / "cache")  # each revision is fetched from the remote
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    monkeypatch.chdir(repo)
    limits = Limits(versions=1)
    with serving(Path("data/images.lmdb"), tmp_path / "thumbs", rev="HEAD", limits=limits) as (
        _,
        port,
    ):
        most = 0
        for back in (1, 2, 0, 1):  # each a version retired just before: fetched again
            status, _, body = get(port, f"/?v=HEAD~{back}", timeout=120)
            assert status == 200, body.decode()
            assert f'title="{2 - back}/0.png"' in body.decode()
            most = max(most, du(scratch))
        assert most >= size  # fetched: read from the remote, not in place from a cache
        # at most the versions kept open (and the one a request reads) are on disk
        assert most <= (limits.versions + 1) * size
        assert du(scratch) <= limits.versions * size
    assert list(scratch.iterdir()) == []


# ------------------------------------------------------------------ its thumbnail cache


def picture_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


def thumbnail_path(cache: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return cache / "256" / digest[:2] / f"{digest}.webp"


def test_a_thumbnail_cache_entry_that_is_not_a_thumbnail_is_made_again_never_followed(tmp_path):
    images = {f"{i}.png": make_image("PNG", (24, 16), seed=i) for i in range(12)}
    by_prefix: dict[str, list[str]] = {}
    for key, data in images.items():
        by_prefix.setdefault(thumbnail_path(tmp_path, data).parent.name, []).append(key)
    alone = [keys[0] for keys in by_prefix.values() if len(keys) == 1]
    fifo, zero, huge, garbage, linked = alone[:5]  # each in a folder of its own
    store = build_store(tmp_path / "s.lmdb", images)
    cache = tmp_path / "cache"
    entry = {key: thumbnail_path(cache, images[key]) for key in images}
    for key in (fifo, zero, huge, garbage):
        entry[key].parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(entry[fifo])  # reading it waits for a writer for ever
    entry[zero].symlink_to("/dev/zero")  # endless
    with open(entry[huge], "wb") as sparse:
        sparse.truncate(4 << 30)  # 4 GB of holes
    entry[garbage].write_bytes(b"RIFF\xff\xff\xff\x7fWEBPnot a picture")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    entry[linked].parent.parent.mkdir(parents=True, exist_ok=True)
    entry[linked].parent.symlink_to(elsewhere, target_is_directory=True)

    def bounded() -> None:  # a process of its own, whose memory is capped
        resource.setrlimit(resource.RLIMIT_AS, (768 << 20, 768 << 20))

    args = command_line("view", "--store", str(store), "--cache", str(cache))
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=bounded
    ) as proc:
        try:
            port = int(re.search(r":(\d+)/", proc.stdout.readline())[1])
            for key in (fifo, zero, huge, garbage, linked):
                status, headers, body = get(port, f"/thumb/{key}", timeout=10)
                assert status == 200 and headers["Content-Type"] == "image/webp", key
                assert picture_size(body) == (24, 16), key  # the image's, not what was put there
            assert get(port, "/")[0] == 200  # still alive
        finally:
            proc.kill()  # a reader stuck on the FIFO (as before) ends with it
    for key in (fifo, zero, huge, garbage):  # each rebuilt in place, as a file of its own
        assert entry[key].is_file() and not entry[key].is_symlink(), key
        assert picture_size(entry[key].read_bytes()) == (24, 16)
    assert list(elsewhere.iterdir()) == []  # nothing written through the folder's link
