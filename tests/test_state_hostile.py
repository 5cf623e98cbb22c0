"""Hostile input, round three: resume states, revisions and params. A sampler state from a
checkpoint, a revision typed on the command line and a params.yaml are handed over by
someone else: each gives a one-line error or does what it says (a resumed epoch gives
every sample exactly once), never a hang, a traceback or a silent wrong answer."""

from __future__ import annotations

import itertools
import random
import subprocess
from pathlib import Path

import pytest

from imageshelf.errors import ShelfError
from imageshelf.project.params import SECTIONS, PackParams, ParamsError, load_params
from imageshelf.read.dataset import ImageDataset, SamplerError, ShardSampler
from imageshelf.store.writer import write_sharded
from imageshelf.versions.history import RevisionError, resolve_revision, store_at

from conftest import build_store, command_line, items_for, make_image, sh, stage

# ------------------------------------------------------------------ resume states


def store_of(folder: Path, first: int, count: int) -> Path:
    """A sharded store of `count` small images (a few shards of three or four)."""
    content = {
        f"{'ab'[i % 2]}/{i:04d}.png": make_image(size=(16, 16), seed=i)
        for i in range(first, first + count)
    }
    labels = {key: {"label": key[0]} for key in content}
    write_sharded(folder, items_for(content, labels), shard_bytes=4_000)
    return folder


@pytest.fixture
def shards(tmp_path) -> Path:
    return store_of(tmp_path / "v1", 0, 18)


def one_line(exc: BaseException) -> str:
    assert isinstance(exc, ShelfError), repr(exc)
    text = str(exc)
    assert text and "\n" not in text, text
    return text


def saved_state(dataset: ImageDataset, consumed: int = 3) -> dict:
    sampler = ShardSampler(dataset, num_replicas=2, rank=0, seed=1)
    sampler.set_epoch(4)
    list(itertools.islice(iter(sampler), consumed))
    return sampler.state_dict(consumed=consumed)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("num_replicas", 10**7, ["num_replicas", "10000000"]),  # looped for ever
        ("num_replicas", 0, ["num_replicas", "not 0"]),
        ("num_replicas", -1, ["num_replicas", "not -1"]),
        ("rank", 2, ["rank", "not 2"]),
        ("consumed", -3, ["consumed", "not -3"]),  # gave 3 of 18
        ("consumed", 99, ["consumed", "not 99"]),  # gave 0 of 18
        ("epoch", -1, ["epoch"]),
        ("epoch", 1.5, ["epoch"]),
        ("consumed", "3", ["consumed", "'3'"]),
        ("shuffle", "yes", ["shuffle"]),
        ("length", 10**400, ["length", "bit number"]),
        ("selection", "x" * 100_000, ["selection", "characters"]),
        ("selection", None, ["older imageshelf"]),  # a state saved before it carried one
    ],
)
def test_a_forged_sampler_state_is_one_line_and_leaves_the_sampler_as_it_was(
    shards, field, value, words
):
    dataset = ImageDataset(shards)
    state = saved_state(dataset)
    if value is None:
        del state[field]
    else:
        state[field] = value
    sampler = ShardSampler(dataset, num_replicas=2, rank=0, seed=1)
    with pytest.raises(SamplerError) as caught:
        sampler.load_state_dict(state)
    message = one_line(caught.value)
    for word in words:
        assert word in message, message
    fresh = ShardSampler(dataset, num_replicas=2, rank=0, seed=1)
    assert sampler.epoch == 0 and list(sampler) == list(fresh)  # left as it was


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("world", "rank"), [(0, 0), (-1, 0), (2, 2), (2, -1), (10**7, 0), (True, 0)]
)
def test_a_sampler_for_no_rank_or_more_ranks_than_shards_is_refused_at_construction(
    shards, world, rank
):
    with pytest.raises(SamplerError) as caught:
        ShardSampler(ImageDataset(shards), num_replicas=world, rank=rank)
    assert "num_replicas" in one_line(caught.value) or "rank" in str(caught.value)


def test_a_state_saved_against_another_version_or_selection_is_refused(shards, tmp_path):
    state = saved_state(ImageDataset(shards))
    newer = store_of(tmp_path / "v2", 0, 21)  # three images packed since
    with pytest.raises(SamplerError) as caught:
        ShardSampler(ImageDataset(newer), num_replicas=2, rank=0, seed=1).load_state_dict(state)
    assert "another version of the store" in one_line(caught.value)
    filtered = ImageDataset(shards, where="label=a")  # the same store, another selection
    with pytest.raises(SamplerError, match="another selection"):
        ShardSampler(filtered, num_replicas=2, rank=0, seed=1).load_state_dict(state)
    same = store_of(tmp_path / "again", 0, 18)  # the same images, packed again: resumes
    sampler = ShardSampler(ImageDataset(same), num_replicas=2, rank=0, seed=1)
    sampler.load_state_dict(state)
    assert len(list(sampler)) == sampler.length - 3


def test_any_rank_s_state_resumes_every_rank_of_the_same_world(shards):
    dataset = ImageDataset(shards)
    full = []
    for rank in range(3):
        sampler = ShardSampler(dataset, num_replicas=3, rank=rank, seed=2)
        sampler.set_epoch(1)
        full.append(list(sampler))
    state = ShardSampler(dataset, num_replicas=3, rank=0, seed=2)
    state.set_epoch(1)
    saved = state.state_dict(consumed=2)  # only rank 0 wrote a checkpoint
    for rank in range(3):
        sampler = ShardSampler(dataset, num_replicas=3, rank=rank, seed=2)
        sampler.load_state_dict(saved)
        assert list(sampler) == full[rank][2:]


def test_ranks_that_held_only_their_shards_resume_in_another_world(shards):
    from imageshelf.read.dataset import shards_for_rank

    held = [ImageDataset(shards, shards=shards_for_rank(shards, rank, 2)) for rank in range(2)]
    steps = max(len(mine) for mine in held)  # as an all_reduce of len() gives it
    old = [
        ShardSampler(mine, num_replicas=2, rank=rank, seed=3, num_samples=steps)
        for rank, mine in enumerate(held)
    ]
    given = set()
    for sampler in old:
        sampler.set_epoch(2)
        given |= {sampler.dataset.keys[i] for i in itertools.islice(iter(sampler), 4)}
    state = old[1].state_dict(consumed=4)
    dataset = ImageDataset(shards)
    rest = []
    for rank in range(3):
        sampler = ShardSampler(dataset, num_replicas=3, rank=rank, seed=3)
        sampler.load_state_dict(state)
        rest += [dataset.keys[i] for i in dict.fromkeys(sampler)]
    assert len(rest) == len(set(rest)) and not set(rest) & given
    assert set(rest) | given == set(dataset.keys)


JUNK = [
    -1, 0, 1, 2, 3, 5, 18, 10**7, 10**30, -(10**30), 2**63, 1.5, float("nan"), "3", None,
    True, False, [], {}, "x" * 1000, "A" * 64, "0" * 64,
]  # fmt: skip


def forged(rng: random.Random, real: dict, parts: int) -> object:
    """A state as a hostile or careless hand passes it: mostly a real one (of any world,
    rank, epoch and progress) with a field or two replaced, dropped or added."""
    if rng.random() < 0.05:
        return rng.choice([None, [], "state", 3, list(real.items())])
    state = dict(real)
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        field = rng.choice([*state, "extra"])
        action = rng.random()
        if action < 0.15:
            state.pop(field, None)
        elif action < 0.5:
            state[field] = rng.choice(JUNK)
        else:  # a plausible number: the kind a state of another run holds
            state[field] = rng.randrange(-2, 2 * parts + 20)
    return state


def check_resumed(dataset: ImageDataset, state: dict, samplers: list[ShardSampler]) -> None:
    """What the new ranks give is exactly what the saved epoch had left: the same
    world's own orders from `consumed`; another world's, none twice and none given
    before, with the left-overs of every old rank shared out."""
    world, consumed, length = state["num_replicas"], state["consumed"], state["length"]
    if world == len(samplers):
        for rank, sampler in enumerate(samplers):
            fresh = ShardSampler(dataset, world, rank, seed=state["seed"], shuffle=state["shuffle"])
            fresh.set_epoch(state["epoch"])
            assert list(sampler) == list(fresh)[consumed:], state
        return
    before, claimed = set(), set()
    for rank in range(world):
        old = ShardSampler(
            dataset, world, rank, seed=state["seed"], shuffle=state["shuffle"],
            num_samples=min(length, len(dataset)),
        )  # fmt: skip
        old.set_epoch(state["epoch"])
        order = list(old)
        before |= set(order[: min(consumed, len(order))])
        claimed |= set(order)
    runs = [list(sampler) for sampler in samplers]
    assert len({len(run) for run in runs}) == 1, state  # every rank runs as many steps
    given = [i for run in runs for i in run]
    assert set(given) == claimed - before, state  # none given twice in the epoch, none lost
    # Only padding repeats (each rank's run is padded to one length): under one per rank.
    assert len(given) - len(set(given)) < len(samplers), state


@pytest.mark.timeout(120)
def test_fuzzed_sampler_states_give_one_line_or_an_epoch_with_each_sample_once(shards):
    rng = random.Random(37)
    dataset = ImageDataset(shards)
    parts = len(dataset.shard_names)
    outcomes = {"refused": 0, "resumed": 0}
    for _case in range(400):
        world = rng.randrange(1, parts + 1)
        source = ShardSampler(dataset, world, rng.randrange(world), seed=rng.choice([0, 1]))
        source.set_epoch(rng.randrange(4))
        real = source.state_dict(consumed=rng.randrange(source.length + 1))
        state = forged(rng, real, parts)
        new_world = rng.choice([world, rng.randrange(1, parts + 1)])
        samplers = [
            ShardSampler(dataset, new_world, r, seed=real["seed"]) for r in range(new_world)
        ]
        try:
            for sampler in samplers:
                sampler.load_state_dict(state)  # type: ignore[arg-type]
        except SamplerError as exc:
            one_line(exc)
            outcomes["refused"] += 1
            continue
        assert isinstance(state, dict)
        check_resumed(dataset, state, samplers)
        outcomes["resumed"] += 1
    assert min(outcomes.values()) > 50, outcomes  # both kinds were exercised


# ------------------------------------------------------------------ revisions


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("revisions")
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, "dvc", "init", "-q")
    sh(root, "git", "commit", "-qm", "dvc init")
    (root / "notes.txt").write_text("two\n")
    sh(root, "git", "add", "notes.txt")
    sh(root, "git", "commit", "-qm", "two")
    return root


def diff(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command_line("diff", *args), cwd=root, capture_output=True, text=True, timeout=120
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    ("rev", "named"),
    [
        ("HEAD@{99999999999999999999}", "'HEAD@{99999999999999999999}'"),  # exit 0 on main
        ("", "''"),  # exit 0 on main
        ("a" * 100_000, "100,000 characters"),  # ValueError on main
        ("HEAD^{tree}", "'HEAD^{tree}'"),  # AttributeError on main
        ("HEAD:.dvc", "'HEAD:.dvc'"),  # a path in a revision
        ("HEAD@{2}", "'HEAD@{2}'"),  # past the end of a reflog of two
        ("../..", "'../..'"),
        ("nosuch", "'nosuch'"),
    ],
)
def test_diff_of_a_revision_that_names_no_commit_is_one_line_naming_it(two_commits, rev, named):
    line = one_line_error(diff(two_commits, rev, "HEAD"))
    assert named in line and len(line) < 300, line


def test_a_tree_s_id_given_as_a_revision_is_not_taken_for_a_commit(two_commits):
    tree = sh(two_commits, "git", "rev-parse", "HEAD^{tree}").stdout.strip()
    with pytest.raises(RevisionError, match="names a tree, not a commit"):
        resolve_revision(tree[:10], two_commits)
    line = one_line_error(diff(two_commits, tree, "HEAD"))
    assert "tree" in line


def test_commits_refs_ancestors_and_reflog_entries_resolve(two_commits):
    log = sh(two_commits, "git", "log", "--format=%H").stdout.split()
    for rev, commit in [
        ("HEAD", log[0]),
        ("main", log[0]),
        ("HEAD~1", log[1]),
        ("main^", log[1]),
        ("HEAD@{1}", log[1]),
        ("@{1}", log[1]),
        (log[1][:7], log[1]),
    ]:
        assert resolve_revision(rev, two_commits) == commit, rev
    result = diff(two_commits, "HEAD@{1}", "HEAD")
    assert result.returncode == 0 and "HEAD@{1} -> HEAD: 0 added" in result.stderr


def test_merge_and_the_viewer_s_store_at_refuse_a_revision_that_is_no_commit(
    two_commits, tmp_path, monkeypatch
):
    monkeypatch.chdir(two_commits)
    Path("data").mkdir(exist_ok=True)
    build_store(Path("data/images.lmdb"), {"here.png": make_image()})  # the workspace's
    for rev in ("", "HEAD@{99999999999999999999}", "HEAD:notes.txt"):
        # main opened the workspace's store for "", as if it were a revision's
        with (
            pytest.raises(RevisionError) as caught,
            store_at(rev, Path("data/images.lmdb"), tmp_path),
        ):
            pass
        one_line(caught.value)


# ------------------------------------------------------------------ params


@pytest.mark.parametrize(
    ("split", "words"),
    [
        ("{train: .nan, val: 1.0}", ["pack.split", "'train'", "nan"]),  # accepted on main
        ("{train: .inf, val: 0.0}", ["pack.split", "'train'", "inf"]),
        ("{train: 1" + "0" * 400 + ", val: 0.5}", ["pack.split", "'train'"]),  # OverflowError
        ("{train: -.inf, val: 0.5}", ["pack.split", "'train'"]),
    ],
)
def test_a_split_ratio_that_is_no_number_from_0_to_1_is_refused(workspace, split, words):
    Path("params.yaml").write_text(f"pack:\n  split: {split}\n")
    with pytest.raises(ParamsError) as caught:
        load_params(PackParams)
    message = one_line(caught.value)
    for word in words:
        assert word in message, message
    assert len(message) < 300, message


def test_an_unknown_section_is_refused_naming_the_nearest_known_one(workspace):
    params = Path("params.yaml")
    params.write_text(params.read_text().replace("pack:", "packk:"))  # silently ignored on main
    result = stage("ingest")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: params.yaml: unknown section packk (did you mean pack?): neither imageshelf "
        "(ingest, annotations, pack, stats, quality) nor a stage of dvc.yaml (its params:) reads it"
    ]
    params.write_text("pack:\n  shard_md: 5\n")
    with pytest.raises(
        ParamsError, match=r"unknown setting pack\.shard_md \(did you mean pack\.shard_mb\?\)"
    ):
        load_params(PackParams)
    params.write_text("pack:\n  1: 2\n  a: 3\n")  # keys of two types: a TypeError on main
    with pytest.raises(ParamsError, match="unknown setting pack.1"):
        load_params(PackParams)


def test_sections_the_team_s_own_stages_read_are_known(workspace):
    params = Path("params.yaml")
    ours = params.read_text()
    Path("dvc.yaml").write_text(
        "stages:\n"
        "  train:\n"
        "    cmd: python train.py --epochs ${fit.epochs}\n"
        "    params:\n"
        "      - train.lr\n"
        "      - evaluate\n"
    )
    params.write_text(ours + "train: {lr: 0.1}\nevaluate: {k: 5}\nfit: {epochs: 3}\n")
    assert load_params(PackParams).store == "data/images.lmdb"
    params.write_text(ours + "trian: {lr: 0.1}\n")
    with pytest.raises(ParamsError, match=r"unknown section trian \(did you mean train\?\)"):
        load_params(PackParams)
    Path("dvc.yaml").write_text(
        "stages:\n  report:\n    cmd: python report.py\n    params:\n      - params.yaml:\n"
    )  # a stage that tracks the whole file reads every section
    assert load_params(PackParams).store == "data/images.lmdb"


def test_an_integer_yaml_cannot_hold_is_one_line(workspace):
    Path("params.yaml").write_text("pack:\n  shard_mb: 1" + "0" * 5000 + "\n")  # ValueError
    with pytest.raises(ParamsError) as caught:
        load_params(PackParams)
    assert "not valid YAML" in one_line(caught.value)


def test_the_project_s_own_params_yaml_holds_only_known_sections_at_their_defaults():
    root = Path(__file__).resolve().parents[1]
    for kind in SECTIONS.values():
        assert load_params(kind, root / "params.yaml") == kind()


def test_the_viewer_resolves_revisions_through_the_same_door(two_commits, monkeypatch):
    from imageshelf.viewer.stores import Versions, ViewError

    monkeypatch.chdir(two_commits)
    versions = Versions(Path("data/images.lmdb"))
    head = sh(two_commits, "git", "rev-parse", "HEAD").stdout.strip()
    assert versions.commit_of("HEAD") == head
    for rev in ("HEAD@{99999999999999999999}", "HEAD^{tree}", "HEAD:notes.txt"):
        with pytest.raises(ViewError) as caught:
            versions.commit_of(rev)
        one_line(caught.value)


# ------------------------------------------------------- the cache and records' props


def test_a_pipe_or_a_link_in_the_cache_is_never_waited_on_or_written_through(workspace):
    """The cache (.dvc/tmp/imageshelf) is a folder others may put things in: a pipe
    where an entry belongs reads as no entry (the audit does its whole search), a link
    on the way to one is refused in one line and nothing is written where it leads."""
    import os
    import shutil

    from conftest import put

    put(workspace / "data" / "incoming", {f"{i}.png": make_image(seed=i) for i in range(3)})
    cache = workspace / ".dvc" / "tmp" / "imageshelf"
    (cache / "quality").mkdir(parents=True)
    os.mkfifo(cache / "quality" / "near-8.json")
    for name in ("ingest", "pack", "stats"):  # the stats stage audits: it reads that entry
        assert stage(name).exit_code == 0
    assert (cache / "quality" / "near-8.json").is_file()  # the search's state, written whole

    elsewhere = workspace / "elsewhere"
    elsewhere.mkdir()
    for link, name in (("quality", "stats"), ("incoming.lmdb", "ingest")):
        target = cache / link
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        target.symlink_to(elsewhere / link if link.endswith(".lmdb") else elsewhere)
        result = stage(name)
        assert result.exit_code == 1
        assert "a link in the cache's folder" in result.output, result.output
        assert list(elsewhere.iterdir()) == []
        target.unlink()


@pytest.mark.parametrize(
    "value", [10**400, [1], {"a": 1}], ids=["400 digits", "a list", "an object"]
)
def test_a_record_whose_props_hold_what_no_measure_holds_is_one_line(tmp_path, value):
    """A store from elsewhere: a 400-digit number (or a list, an object) where an image's
    measures belong is a damaged record, named, not a traceback in the audit, the
    viewer or a filter."""
    import hashlib

    from imageshelf.store import ImageStore
    from imageshelf.store.values import ImageInfo, Record
    from imageshelf.store.writer import Item, rebuild

    data = make_image(seed=1)
    info = ImageInfo(hashlib.sha256(data).hexdigest(), len(data), "png", 32, 24)
    record = Record("a.png", info, {}, "train", (), {}, {"v": 1, "mean": value})
    rebuild(tmp_path / "s.lmdb", lambda: iter([Item(record, lambda: data)]))
    result = subprocess.run(
        command_line("audit", "--store", str(tmp_path / "s.lmdb")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "'a.png' is unlike any measure: props.mean is" in result.stderr
    with pytest.raises(ShelfError, match="props.mean"):
        list(ImageStore(tmp_path / "s.lmdb").records())
