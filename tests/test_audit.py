"""What is wrong with the data, found by the pipeline and used where people work: stats
counts each finding per split (DVC metrics) and lists it by key, `imageshelf audit`
prints it, `--where` and `ImageDataset(where=...)` select by it. Each kind is planted
in a small project and must be found and named; the clean images must not be; a leak
must show when only the new batch brings it."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from imageshelf.dataset import ImageDataset
from imageshelf.store import ImageStore, StoreFile

from conftest import ingest_and_pack, put, report, stage

INCOMING = Path("data/incoming")


def scene(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A picture: shapes of many colours over a gradient, with noise from the seeded
    generator (Pillow's effect_noise draws on C's rand(), whose state is the process's:
    two test workers made two different pictures of one seed)."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        box = [x, y, x + rng.randrange(10, 70), y + rng.randrange(10, 50)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    grains = bytes(min(255, max(0, round(rng.gauss(128, 12)))) for _ in range(size[0] * size[1]))
    noise = Image.frombytes("L", size, grains).convert("RGB")
    return Image.blend(image, noise, 0.08)


def encoded(image: Image.Image, fmt: str = "JPEG", **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def split_of(name: str, split: str) -> dict[str, str]:
    """An image's sidecar that puts it in a split."""
    return {f"{name.rsplit('.', 1)[0]}.json": json.dumps({"split": split})}


def planted() -> dict[str, bytes | str]:
    """Clean images in train, plus one of each problem."""
    files: dict[str, bytes | str] = {}
    for i in range(8):
        name = f"clean/{i}.jpg"
        files[name] = encoded(scene(i), quality=90)
        files.update(split_of(name, "train"))
    copies = {
        "exact/test.jpg": files["clean/0.jpg"],  # the same bytes, in test
        "near/test.png": encoded(scene(1).resize((80, 60)), "PNG"),  # resized, as a PNG
        "near/train.jpg": encoded(scene(2), quality=55),  # re-encoded, same split
    }
    for name, data in copies.items():
        files[name] = data
        files.update(split_of(name, name.split("/")[1].split(".")[0]))
    dark = scene(20).point(lambda v: v // 6)
    light = Image.blend(scene(21), Image.new("RGB", (160, 120), "white"), 0.85)
    issues = {
        "issues/dark.jpg": encoded(dark, quality=90),
        "issues/light.jpg": encoded(light),
        "issues/flat.png": encoded(Image.new("RGB", (160, 120), (90, 120, 150)), "PNG"),
        "issues/blurry.jpg": encoded(scene(22).filter(ImageFilter.GaussianBlur(4)), quality=90),
        "issues/gray.png": encoded(scene(23).convert("L"), "PNG"),
        "issues/strip.png": encoded(scene(24, (400, 20)), "PNG"),
        "issues/tiny.png": encoded(scene(25, (8, 8)), "PNG"),
    }
    for name, data in issues.items():
        files[name] = data
        files.update(split_of(name, "train"))
    return files


def metrics() -> dict:
    return report("stats")["quality"]


def test_stats_counts_and_names_every_planted_problem_and_no_clean_image(workspace):
    put(INCOMING, planted())
    ingest_and_pack().close()
    result = stage("stats")
    assert result.exit_code == 0, result.output
    assert "images leaked across splits" in result.output
    found = json.loads(Path("reports/quality.json").read_text())
    assert found["exact_duplicates"] == [["clean/0.jpg", "exact/test.jpg"]]
    near = {tuple(group["keys"]) for group in found["near_duplicates"]}
    assert ("clean/1.jpg", "near/test.png") in near and ("clean/2.jpg", "near/train.jpg") in near
    leaked = {(leak["key_a"], leak["key_b"], leak["kind"]) for leak in found["leaks"]}
    assert leaked == {
        ("exact/test.jpg", "clean/0.jpg", "exact"),
        ("near/test.png", "clean/1.jpg", "near"),
    }  # the re-encoded copy in train is a near duplicate, not a leak
    issues = found["issues"]
    for kind, key in (
        ("dark", "issues/dark.jpg"),
        ("light", "issues/light.jpg"),
        ("low_information", "issues/flat.png"),
        ("blurry", "issues/blurry.jpg"),
        ("grayscale", "issues/gray.png"),
        ("odd_aspect", "issues/strip.png"),
        ("odd_size", "issues/tiny.png"),
    ):
        assert key in issues[kind], (kind, issues)
    flagged = {key for keys in issues.values() for key in keys}
    assert not any(key.startswith(("clean/", "exact/", "near/")) for key in flagged), flagged
    counts = metrics()
    assert counts["total"]["leaks"] == 4 and counts["leak_pairs"] == {"test-train": 2}
    assert counts["splits"]["test"]["leaks"] == 2 and counts["total"]["no_properties"] == 0


def test_a_leak_shows_in_the_metrics_when_only_the_new_batch_brings_it(workspace):
    (workspace / ".dvc").mkdir()  # the cache: the second audit searches only what is new
    files = {f"{i}.jpg": encoded(scene(i), quality=90) for i in range(6)}
    for name in files.copy():
        files.update(split_of(name, "train"))
    put(INCOMING, files)
    ingest_and_pack().close()
    assert stage("stats").exit_code == 0
    assert metrics()["total"]["leaks"] == 0
    batch = {"batch/3-small.jpg": encoded(scene(3).resize((120, 90)), quality=70)}
    batch.update(split_of("batch/3-small.jpg", "val"))
    put(INCOMING, batch)
    ingest_and_pack().close()
    assert stage("stats").exit_code == 0
    assert metrics()["leak_pairs"] == {"train-val": 1}
    leak = json.loads(Path("reports/quality.json").read_text())["leaks"][0]
    assert {leak["key_a"], leak["key_b"]} == {"3.jpg", "batch/3-small.jpg"}


def test_audit_prints_each_finding_and_the_filters_select_by_them(workspace):
    put(INCOMING, planted())
    ingest_and_pack().close()
    result = stage("audit")
    assert result.exit_code == 0, result.output
    assert "leaks: 2" in result.stdout and "dark: 1\n  issues/dark.jpg" in result.stdout
    as_json = json.loads(stage("audit", "--json", "--kind", "dark").stdout)
    assert as_json["issues"] == {"dark": ["issues/dark.jpg"]}

    listed = stage("ls", "--where", "leaks=true").stdout.splitlines()
    keys = sorted(line.split("\t")[-1] for line in listed)
    assert keys == ["clean/0.jpg", "clean/1.jpg", "exact/test.jpg", "near/test.png"]
    where = {"leaks": False, "dark": False}
    training = ImageDataset("data/images.lmdb", split="train", where=where)
    assert "clean/0.jpg" not in training.keys and "issues/dark.jpg" not in training.keys
    assert "clean/3.jpg" in training.keys
    wrong = stage("ls", "--where", "leaks=maybe")
    assert wrong.exit_code == 1 and "leaks=true or leaks=false" in wrong.stderr


def test_dvc_metrics_diff_shows_the_leak_a_batch_brings(repo):
    """As a user sees it: `dvc metrics diff` after `dvc repro` names the leak's count
    under quality, for the split pair it crosses."""
    from conftest import commit, sh

    files = {f"{i}.jpg": encoded(scene(i), quality=90) for i in range(4)}
    for name in files.copy():
        files.update(split_of(name, "train"))
    put(repo / "data" / "incoming", files)
    sh(repo, "dvc", "repro")
    commit(repo, "four images")
    batch = {"new/2.png": encoded(scene(2).resize((80, 60)), "PNG")}
    batch.update(split_of("new/2.png", "test"))
    put(repo / "data" / "incoming", batch)
    sh(repo, "dvc", "repro")
    shown = sh(repo, "dvc", "metrics", "diff", "--json").stdout
    changed = json.loads(shown)["reports/stats.json"]
    assert changed["quality.leak_pairs.test-train"]["new"] == 1  # no test split before
    assert changed["quality.total.leaks"] == {"old": 0, "new": 2, "diff": 2}


def test_different_lines_of_text_are_not_near_duplicates(workspace):
    """An OCR dataset's lines look alike to a global hash squashed to 32x32: they are
    matched only as exact copies, never called near duplicates or leaks."""
    words = ("invoice", "total", "date", "amount", "paid", "receipt")
    files: dict[str, bytes | str] = {}
    for i, word in enumerate(words):
        line = Image.new("L", (120, 32), 255)
        ImageDraw.Draw(line).text((8, 10), word, fill=0)
        files[f"{i}.png"] = encoded(line, "PNG")
        files.update(split_of(f"{i}.png", "train" if i % 2 else "test"))
    put(INCOMING, files)
    ingest_and_pack().close()
    found = json.loads(stage("audit", "--json").stdout)
    assert found["near_duplicates"] == [] and found["leaks"] == []
    assert len(found["issues"]["odd_aspect"]) == len(words)  # said, as what they are


def test_an_audit_reads_only_the_store_parts_it_has_not_seen(workspace, monkeypatch):
    """A sharded store's add is a new shard: the next audit reads that shard's records
    and no others, and finds what an audit with no cache finds. A damaged entry in the
    cache is read again from the store; another threshold is never answered from an
    entry made with the old one."""
    (workspace / ".dvc").mkdir()
    params = Path("params.yaml").read_text()
    params = params.replace("layout: single", "layout: sharded")
    Path("params.yaml").write_text(params.replace("store: data/images.lmdb", "store: data/images"))
    put(INCOMING, planted())
    ingest_and_pack("data/images").close()
    first = stage("audit", "--json")
    assert first.exit_code == 0, first.output
    entries = Path(".dvc/tmp/imageshelf/quality/parts")
    assert len(list(entries.glob("*.json"))) == 1  # one shard

    read: list[str] = []
    records = StoreFile.records

    def counted(self: StoreFile):
        for record in records(self):
            read.append(record.key)
            yield record

    monkeypatch.setattr(StoreFile, "records", counted)
    batch = {"batch/3-small.jpg": encoded(scene(3).resize((120, 90)), quality=70)}
    batch.update(split_of("batch/3-small.jpg", "val"))
    put(INCOMING, batch)
    ingest_and_pack("data/images").close()
    read.clear()
    after = json.loads(stage("audit", "--json").stdout)
    assert read == ["batch/3-small.jpg"]  # the new shard's record, no other
    shutil.rmtree(".dvc/tmp/imageshelf/quality")
    read.clear()
    assert json.loads(stage("audit", "--json").stdout) == after  # as with no cache at all
    assert sorted(read) == ImageStore(Path("data/images")).keys()  # both shards, each once

    for damage in (b"{", b'{"version": 1, "count": 1, "images": [[1, 2, 3, 4, 5, 6]]}'):
        for entry in entries.glob("*.json"):
            entry.write_bytes(damage)
        assert json.loads(stage("audit", "--json").stdout) == after
    Path("params.yaml").write_text(
        Path("params.yaml").read_text().replace("dark: 0.30", "dark: 0.99")
    )
    darker = json.loads(stage("audit", "--json", "--kind", "dark").stdout)["issues"]["dark"]
    assert len(darker) > len(after["issues"]["dark"])
