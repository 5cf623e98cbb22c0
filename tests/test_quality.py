"""The quality findings (imageshelf/quality/): the near-pair search against brute force,
in both engines, and the findings of hand-made records: each issue type, its order of
precedence, exact and near groups, leaks across splits, an incremental run equal to a
full one, and metrics that are the same bytes whatever order the records come in."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from itertools import combinations
from typing import Any

import pytest

from imageshelf.project.params import ParamsError, QualityParams, load_params
from imageshelf.quality.chunks import BITS, Chunk, plan, probes, split
from imageshelf.quality.findings import (
    ISSUES,
    KINDS,
    NearState,
    Row,
    UnknownFinding,
    find,
    rows_from_store,
)
from imageshelf.quality.near import near_pairs, near_pairs_against
from imageshelf.quality.near_numpy import available, numpy_pairs, numpy_pairs_against
from imageshelf.store import ImageStore

from conftest import build_store, make_image

needs_numpy = pytest.mark.skipif(not available(), reason="numpy 2 is not installed")


# ------------------------------------------------------------------ the near-pair search


def flipped(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(BITS), bits):
        value ^= 1 << bit
    return value


def planted(n: int, t: int, seed: int) -> list[int]:
    """n random hashes, a third of them copies of another at 0..t+2 bits, a few runs of
    identical ones (one bucket in every chunk)."""
    rng = random.Random(seed)
    hashes = [rng.getrandbits(64) for _ in range(n)]
    for _ in range(n // 3):
        a, b = rng.randrange(n), rng.randrange(n)
        hashes[b] = flipped(hashes[a], rng.randint(0, min(t + 2, BITS)), rng)
    hashes[1:6] = [hashes[0]] * 5
    return hashes


def brute(hashes: list[int], t: int) -> list[tuple[int, int, int]]:
    return [
        (i, j, (hashes[i] ^ hashes[j]).bit_count())
        for i, j in combinations(range(len(hashes)), 2)
        if (hashes[i] ^ hashes[j]).bit_count() <= t
    ]


def brute_against(new: list[int], old: list[int], t: int) -> list[tuple[int, int, int]]:
    return [
        (i, j, (a ^ b).bit_count())
        for i, a in enumerate(new)
        for j, b in enumerate(old)
        if (a ^ b).bit_count() <= t
    ]


ENGINES = ["python", pytest.param("numpy", marks=needs_numpy)]


def splits(t: int, ks: set[int]) -> list[tuple[Chunk, ...]]:
    """Chunks of k bits for each k the pigeonhole allows, but those with so many probe
    patterns that a test would take minutes (1 chunk of 64 bits within 16)."""
    chunkings = [split(t, k) for k in sorted(ks) if k <= t + 1]
    return [c for c in chunkings if sum(probes(x.width, x.radius) for x in c) < 20_000]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("t", [0, 1, 2, 3, 5, 8, 9, 12, 16, 32])
def test_near_pairs_are_every_pair_within_t_and_no_other(t, engine):
    hashes = planted(300, t, seed=t)
    truth = brute(hashes, t)
    assert any(d == t for _, _, d in truth) and len(truth) < len(hashes) * 149  # not all
    assert near_pairs(hashes, t, engine=engine) == truth
    # the chunks a million hashes would get, and others the pigeonhole allows
    for chunks in splits(t, {1, 2, 3, 4, 9}):
        assert near_pairs(hashes, t, engine=engine, chunks=chunks) == truth, chunks
    assert near_pairs(hashes, t, engine=engine, chunks=plan(t, 1_000_000)) == truth


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("t", [0, 2, 4, 8, 11, 20])
def test_new_hashes_against_stored_ones_are_every_pair_within_t(t, engine):
    hashes = planted(360, t, seed=100 + t)
    new, old = hashes[:60], hashes[60:]
    truth = brute_against(new, old, t)
    assert truth
    assert near_pairs_against(new, old, t, engine=engine) == truth
    for chunks in splits(t, {1, 3, 4, 7}):
        assert near_pairs_against(new, old, t, engine=engine, chunks=chunks) == truth
    assert near_pairs_against(new, old, t, engine=engine, chunks=plan(t, 990_000, 10_000)) == truth


@needs_numpy
def test_numpy_in_small_batches_finds_the_same_pairs():
    """Candidates are made a batch at a time: a bucket larger than a batch (60 identical
    hashes) is cut into blocks, and the pairs are the same."""
    hashes = planted(200, 8, seed=7)
    hashes[100:160] = [hashes[99]] * 60
    truth = brute(hashes, 8)
    for batch in (1, 7, 100):
        assert numpy_pairs(hashes, 8, split(8, 3), batch=batch) == truth
        new, old = hashes[:120], hashes[120:]
        against = numpy_pairs_against(new, old, 8, split(8, 3), batch=batch)
        assert against == brute_against(new, old, 8)


def test_the_chunks_cover_64_bits_and_miss_no_pair_within_t():
    """Pigeonhole: if every chunk were radius + 1 bits apart, the whole would be more
    than t apart; and for t = 8 at a million hashes, 3 chunks of 22/21/21 within 2."""
    for t in range(33):
        for k in range(1, 34):
            chunks = split(t, k)
            assert sum(c.width for c in chunks) == BITS
            assert sum(c.radius + 1 for c in chunks) > t
        for n in (10, 20_000, 1_000_000):
            assert sum(c.radius + 1 for c in plan(t, n)) > t
    assert [(c.width, c.radius) for c in plan(8, 1_000_000)] == [(22, 2), (21, 2), (21, 2)]
    assert [(c.width, c.radius) for c in plan(8, 990_000, 10_000)] == [(22, 2), (21, 2), (21, 2)]


def test_a_threshold_or_hash_out_of_range_is_refused():
    with pytest.raises(ValueError, match="0 to 32"):
        near_pairs([1, 2], 33)
    with pytest.raises(ValueError, match="64 bits"):
        near_pairs([1, 1 << 64], 8)
    assert near_pairs([], 8) == near_pairs([5], 8) == near_pairs_against([], [1], 8) == []


# ------------------------------------------------------------------ findings: rows

RNG = random.Random(40)
CLEAN = {  # a plain photograph's props (images/properties.py's fields)
    "v": 1,
    "dhash": "0f0f0f0f0f0f0f0f",
    "mode": "RGB",
    "mean": 0.4812,
    "p05": 0.0627,
    "p99": 0.9412,
    "contrast": 0.2113,
    "sharpness": 1.2345,
    "edges": 31.25,
    "chroma": 17,
    "colour": 23.5,
    "entropy": 7.1234,
}


def row(
    key: str,
    phash: int | None = None,
    split: str | None = "train",
    size: tuple[int, int] = (256, 192),
    sha: str | None = None,
    **props: Any,
) -> Row:
    """A record's row: clean props unless told, a random pHash unless given."""
    value = RNG.getrandbits(64) if phash is None else phash
    given = {**CLEAN, "phash": f"{value:016x}", **props}
    sha = sha or f"{abs(hash(key)):064x}"[-64:]
    return Row(key, sha, split, size[0], size[1], given)


PARAMS = QualityParams()


def test_clean_images_give_no_finding():
    found = find([row(f"train/{i}.jpg") for i in range(50)], PARAMS)
    assert all(found.keys_of(kind) == set() for kind in KINDS)
    assert found.metrics()["total"] == {
        "images": 50,
        **{name: 0 for name in found.metrics()["total"] if name != "images"},
    }


PLANTED = {  # each issue type, as images/properties.py would measure it
    "odd_size": ({"size": (8, 8)}, {"odd_size"}),
    "odd_aspect": ({"size": (640, 60)}, {"odd_aspect"}),
    "low_information": ({"contrast": 0.01}, {"low_information"}),
    "dark": ({"mean": 0.08, "p05": 0.01, "p99": 0.2, "contrast": 0.04}, {"dark"}),
    "light": ({"mean": 0.9, "p05": 0.8, "p99": 0.99, "contrast": 0.04}, {"light"}),
    "grayscale by mode": ({"mode": "L", "chroma": 0}, {"grayscale"}),
    "grayscale by pixels": ({"chroma": 2}, {"grayscale"}),
    "blurry": ({"sharpness": 0.2, "edges": 12.0}, {"blurry"}),
}


@pytest.mark.parametrize("planted_kind", PLANTED)
def test_each_issue_type_is_flagged_where_planted_and_only_there(planted_kind):
    changes, expected = PLANTED[planted_kind]
    rows = [row(f"clean/{i}.jpg") for i in range(20)] + [row("odd/one.jpg", **changes)]
    found = find(rows, PARAMS)
    flagged = {kind for kind in ISSUES if found.keys_of(kind)}
    assert flagged == expected
    assert all(found.keys_of(kind) == {"odd/one.jpg"} for kind in expected)
    assert found.metrics()["splits"]["train"][next(iter(expected))] == 1


def test_precedence_a_flat_or_dark_image_is_nothing_else():
    blank = {"mean": 0.1, "p05": 0.09, "p99": 0.12, "contrast": 0.001, "sharpness": 0.0}
    blank |= {"edges": 0.0, "chroma": 0}
    dark_soft = {"mean": 0.08, "p05": 0.01, "p99": 0.2, "contrast": 0.04, "chroma": 1}
    dark_soft |= {"sharpness": 0.1, "edges": 3.0}
    rows = [
        row("flat.png", **blank),
        row("dark.jpg", **dark_soft),
        row("tiny.png", size=(8, 8), **blank),
        row("strip.jpg", size=(640, 60), sharpness=0.1, edges=3.0),
        row("gray-flat.png", mode="L", **blank),
        row("broken.jpg")._replace(props={"v": 1, "error": "truncated: 10 of 4,096 bytes"}),
    ]
    found = find(rows, PARAMS)
    issues = {key: {k for k in ISSUES if key in found.keys_of(k)} for key in found.splits}
    assert issues == {
        "flat.png": {"low_information"},
        "dark.jpg": {"dark"},
        "tiny.png": {"odd_size"},
        "strip.jpg": {"odd_aspect"},  # not blurry: a 10:1 strip measures as blurred
        "gray-flat.png": {"grayscale", "low_information"},  # its mode is a fact of the file
        "broken.jpg": {"unreadable"},
    }


def test_images_without_properties_are_counted_not_flagged():
    rows = [row(f"a/{i}.jpg") for i in range(3)]
    rows += [row("old.jpg")._replace(props=None), row("odd.jpg", phash=0)._replace(props={})]
    rows.append(row("small-old.jpg", size=(4, 4))._replace(props=None))
    found = find(rows, PARAMS)
    assert found.metrics()["total"]["no_properties"] == 3
    assert found.keys_of("odd_size") == {"small-old.jpg"}  # the size is the record's own
    assert {k for kind in ISSUES for k in found.keys_of(kind)} == {"small-old.jpg"}


def test_exact_copies_are_one_group_and_never_a_near_pair():
    base = RNG.getrandbits(64)
    copies = [row(f"{s}/copy.jpg", base, split=s, sha="a" * 64) for s in ("train", "val")]
    rows = copies + [row("train/other.jpg", base, sha="a" * 64), row("train/x.jpg")]
    found = find(rows, PARAMS)
    assert found.exact == (("train/copy.jpg", "train/other.jpg", "val/copy.jpg"),)
    assert found.near == ()
    assert found.keys_of("exact_duplicates") == {k.key for k in rows[:3]}
    metrics = found.metrics()
    assert metrics["total"]["exact_groups"] == 1 and metrics["total"]["exact_duplicates"] == 3
    assert metrics["splits"]["val"]["exact_groups"] == 1
    assert metrics["splits"]["val"]["exact_duplicates"] == 1
    assert [leak.kind for leak in found.leaks] == ["exact", "exact"]
    assert metrics["leak_pairs"] == {"train-val": 2}


def test_near_groups_chain_and_keep_each_pair_with_its_distance():
    a = RNG.getrandbits(64)
    b = a ^ 0b111111  # 6 bits from a
    c = b ^ (0b111111 << 20)  # 6 from b, 12 from a: joined through b
    rows = [row("a.jpg", a), row("b.jpg", b), row("c.jpg", c), row("d.jpg")]
    rows.append(row("a-copy.jpg", a, sha=rows[0].sha256))
    found = find(rows, PARAMS)
    assert len(found.near) == 1
    group = found.near[0]
    assert group.keys == ("a-copy.jpg", "a.jpg", "b.jpg", "c.jpg")
    assert group.pairs == (("a-copy.jpg", "b.jpg", 6), ("b.jpg", "c.jpg", 6))
    assert found.metrics()["total"]["near_groups"] == 1
    assert found.metrics()["total"]["near_duplicates"] == 4


def test_a_near_pair_needs_its_dhashes_to_agree_too():
    """Two different scenes whose pHashes happen to be near (8 bits) but whose dHashes
    are 23 bits apart are no pair; 20 apart, they are. The search's state keeps the
    pHash pair, so a change of near_dhash needs no new search."""
    a = RNG.getrandbits(64)
    b = a ^ 0xFF  # 8 pHash bits from a, 16 from near.jpg's
    dhash = 0x0F0F0F0F0F0F0F0F
    rows = [
        row("a.jpg", a, split="train"),
        row("far.jpg", b, split="test", dhash=f"{dhash ^ ((1 << 23) - 1):016x}"),
        row("near.jpg", a ^ 0xFF00, split="val", dhash=f"{dhash ^ ((1 << 20) - 1):016x}"),
    ]
    found = find(rows, PARAMS)
    assert [group.keys for group in found.near] == [("a.jpg", "near.jpg")]
    assert found.keys_of("leaks") == {"a.jpg", "near.jpg"}
    assert len(found.state.pairs) == 2  # every pHash pair: a's with far.jpg too
    assert find(rows, replace(PARAMS, near_dhash=64)).keys_of("near_duplicates") == {
        "a.jpg",
        "far.jpg",
        "near.jpg",
    }


def test_flat_and_tiny_images_stay_out_of_near_groups():
    value = RNG.getrandbits(64)
    rows = [row(f"tiny/{i}.png", value, size=(8, 8)) for i in range(3)]
    rows += [row(f"flat/{i}.png", value ^ i, contrast=0.001) for i in range(3)]
    rows += [row("broken.png", value)._replace(props={"v": 1, "error": "cannot decode"})]
    found = find(rows, PARAMS)
    assert found.near == () and found.state.hashes == {}
    assert len(found.keys_of("odd_size")) == 3 and len(found.keys_of("low_information")) == 3


def test_a_near_copy_across_train_and_test_is_a_leak_counted_and_listed():
    a = RNG.getrandbits(64)
    rows = [
        row("train/cat.jpg", a, split="train"),
        row("test/cat-small.jpg", a ^ 0b1111, split="test"),
        row("train/dog.jpg", a ^ 0b11110000, split="train"),  # 4 bits from cat, 8 from the test one
        row("val/bird.jpg", split="val"),
        row("loose/cat.jpg", a ^ 1, split=None),  # no split: no leak
    ]
    found = find(rows, PARAMS)
    assert found.metrics()["leak_pairs"] == {"test-train": 2, "test-val": 0, "train-val": 0}
    leaks = [tuple(leak) for leak in found.leaks]
    assert ("test/cat-small.jpg", "test", "train/cat.jpg", "train", "near", 4) in leaks
    assert {leak.key_b for leak in found.leaks} == {"train/cat.jpg", "train/dog.jpg"}
    assert found.keys_of("leaks") == {"test/cat-small.jpg", "train/cat.jpg", "train/dog.jpg"}
    metrics = found.metrics()
    assert metrics["splits"]["test"]["leaks"] == 1 and metrics["splits"]["train"]["leaks"] == 2
    assert metrics["splits"]["val"]["leaks"] == 0
    assert found.report()["leaks"][0]["kind"] == "near"


def test_no_leak_within_a_split_or_without_one():
    a = RNG.getrandbits(64)
    rows = [row("train/a.jpg", a), row("train/b.jpg", a ^ 3), row("x/c.jpg", a ^ 5, split=None)]
    rows.append(row("x/d.jpg", sha=rows[0].sha256, split=None))
    found = find(rows, PARAMS)
    assert found.leaks == () and found.keys_of("leaks") == set()
    assert len(found.near) == 1 and found.exact


def clustered(n: int, seed: int) -> list[Row]:
    """Rows whose pHashes come in clusters (many near pairs, some chains), some exact
    copies, some issue images, in three splits."""
    rng = random.Random(seed)
    centres = [rng.getrandbits(64) for _ in range(n // 6)]
    rows = []
    for i in range(n):
        value = flipped(rng.choice(centres), rng.randint(0, 7), rng)
        split = rng.choice(["train", "train", "val", "test", None])
        sha = f"{rng.randrange(n * 2):064x}" if rng.random() < 0.2 else f"{n * 3 + i:064x}"
        extra = {"contrast": 0.001} if rng.random() < 0.05 else {}
        rows.append(row(f"k/{i:04d}.jpg", value, split=split, sha=sha, **extra))
    return rows


def test_an_incremental_run_finds_what_a_full_run_finds():
    """Adds and removes at random, each run given the last one's state (through JSON,
    as a caller keeps it): every time the same findings as a run from nothing."""
    rng = random.Random(3)
    pool = clustered(400, seed=1)
    present = pool[:200]
    state = None
    for round in range(6):
        gone = set(rng.sample(range(len(present)), rng.randint(0, 15)))
        present = [r for n, r in enumerate(present) if n not in gone]
        present += pool[200 + round * 30 : 200 + (round + 1) * 30]
        incremental = find(present, PARAMS, previous=state)
        full = find(present, PARAMS)
        assert incremental == full
        assert full.near and full.leaks and full.exact
        state = NearState.from_json(json.loads(json.dumps(incremental.state.to_json())))
        assert state == full.state


def test_a_state_at_another_threshold_or_damaged_means_a_full_search():
    rows = clustered(120, seed=2)
    at_four = find(rows, QualityParams(near_threshold=4))
    assert find(rows, PARAMS, previous=at_four.state) == find(rows, PARAMS)
    saved = find(rows, PARAMS).state.to_json()
    saved["pairs"][0][2] += 2  # a distance the hashes do not have
    assert NearState.from_json(saved) is None
    assert NearState.from_json({"version": 99}) is None
    assert NearState.from_json(None) is None


def test_metrics_and_report_are_the_same_bytes_in_any_order():
    rows = clustered(150, seed=5)
    found = find(rows, PARAMS)
    metrics = json.dumps(found.metrics()).encode()
    report = json.dumps(found.report()).encode()
    shuffled = rows[:]
    random.Random(9).shuffle(shuffled)
    again = find(shuffled, PARAMS)
    assert json.dumps(again.metrics()).encode() == metrics
    assert json.dumps(again.report()).encode() == report
    assert list(found.metrics()["splits"]) == ["test", "train", "val"]


def test_an_unknown_finding_is_one_line_naming_the_known_ones():
    found = find([row("a.jpg")], PARAMS)
    with pytest.raises(UnknownFinding) as caught:
        found.keys_of("darkk")
    message = str(caught.value)
    assert "'darkk'" in message and "dark" in message and "\n" not in message


def test_rows_from_a_real_store_carry_its_splits_sizes_and_digests(tmp_path):
    images = {f"img/{i}.png": make_image("PNG", (40, 30), seed=i) for i in range(4)}
    images["img/copy.png"] = images["img/0.png"]
    meta = {key: {"split": "test" if key.endswith("1.png") else "train"} for key in images}
    store = ImageStore(build_store(tmp_path / "s.lmdb", images, meta))
    rows = list(rows_from_store(store))
    assert [(r.key, r.split, r.width, r.height) for r in rows][:2] == [
        ("img/0.png", "train", 40, 30),
        ("img/1.png", "test", 40, 30),
    ]
    found = find(rows, PARAMS)
    assert found.exact == (("img/0.png", "img/copy.png"),)
    assert found.metrics()["total"]["no_properties"] == 5  # a store packed before props


def test_the_quality_section_is_read_and_checked(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("quality:\n  near_threshold: 10\n  dark: 0.25\n")
    loaded = load_params(QualityParams, params)
    assert (loaded.near_threshold, loaded.dark, loaded.light) == (10, 0.25, 0.75)
    for bad, says in [
        ("near_threshold: 40", "quality.near_threshold must be a whole number of bits from 0"),
        ("near_threshold: 8.5", "quality.near_threshold must be a whole number"),
        ("dark: 2", "quality.dark must be a fraction from 0 to 1 (got 2)"),
        ("blurry_edges: -1", "quality.blurry_edges must be a number from 0 to 255"),
    ]:
        params.write_text(f"quality:\n  {bad}\n")
        with pytest.raises(ParamsError, match=re.escape(says)):
            load_params(QualityParams, params)
