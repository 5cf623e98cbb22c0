"""`imageshelf ls` and `export`, as a user runs them."""

from __future__ import annotations

import subprocess

import lmdb
from click.testing import CliRunner

from imageshelf.cli.main import cli
from imageshelf.store import ImageStore

from conftest import build_store, command_line, make_image, stage


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_ls_lists_size_format_split_label_and_key_and_filters_by_label(tmp_path, six_formats):
    meta = {key: {"label": "cat" if i % 2 else "dog"} for i, key in enumerate(six_formats)}
    store = build_store(tmp_path / "s.lmdb", six_formats, meta)

    everything = run("ls", "--store", str(store))
    assert everything.exit_code == 0
    lines = everything.stdout.splitlines()
    assert [line.split("\t")[4] for line in lines] == sorted(six_formats)
    key = sorted(six_formats)[0]
    # build_store writes no split (pack assigns them): the column is empty
    size, fmt, label = len(six_formats[key]), key.split("/")[0], meta[key]["label"]
    assert lines[0] == f"{size}\t{fmt}\t\t{label}\t{key}"

    cats = run("ls", "--store", str(store), "--label", "cat")
    assert sorted(line.split("\t")[4] for line in cats.stdout.splitlines()) == sorted(
        k for k, m in meta.items() if m["label"] == "cat"
    )
    assert "3 of 6 images" in cats.stderr


def test_export_writes_originals_back_byte_identical(tmp_path, six_formats):
    store = build_store(tmp_path / "s.lmdb", six_formats)
    out = tmp_path / "out"
    result = run("export", "--store", str(store), "--out", str(out))
    assert result.exit_code == 0, result.output
    written = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    listed = written.pop("metadata.jsonl").decode().splitlines()
    assert written == six_formats
    assert listed == [f'{{"file_name": "{key}"}}' for key in sorted(six_formats)]

    some = sorted(six_formats)[:2]
    result = run("export", "--store", str(store), "--out", str(tmp_path / "two"), *some)
    two = tmp_path / "two"
    files = sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    assert files == sorted([*some, "metadata.jsonl"])


def test_export_refuses_a_missing_key_and_writes_nothing(tmp_path, six_formats):
    store = build_store(tmp_path / "s.lmdb", six_formats)
    result = run(
        "export",
        "--store",
        str(store),
        "--out",
        str(tmp_path / "out"),
        sorted(six_formats)[0],
        "no/such.png",
    )
    assert result.exit_code == 1
    assert "no/such.png" in result.stderr and "Traceback" not in result.output
    assert list((tmp_path / "out").rglob("*.*")) == []


def test_export_refuses_keys_that_would_escape_the_folder(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"sub/a.png": make_image()})
    # A store made by other tools could hold such a key; ours refuses to write one.
    env = lmdb.open(str(store), subdir=False, max_dbs=3, lock=False)
    with env.begin(write=True) as txn:
        for db in (b"records", b"images"):
            value = txn.get(b"sub/a.png", db=env.open_db(db, txn=txn))
            txn.put(b"../evil.png", value, db=env.open_db(db, txn=txn))
    env.close()
    result = run("export", "--store", str(store), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "damaged store: key '../evil.png'" in result.stderr
    assert not (tmp_path / "evil.png").exists()

    store = build_store(tmp_path / "clean.lmdb", {"sub/a.png": make_image()})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "sub").symlink_to(outside)
    result = run("export", "--store", str(store), "--out", str(tmp_path / "out2"), "sub/a.png")
    assert result.exit_code == 1 and "outside" in result.stderr
    assert list(outside.iterdir()) == []


def test_a_missing_store_is_one_line_not_a_traceback(tmp_path):
    result = subprocess.run(
        command_line("ls", "--store", str(tmp_path / "none.lmdb")),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'none.lmdb'}: no such store file; in a clone, `dvc pull` "
        "fetches it; in a new project, `dvc repro` makes it"
    ]


def test_every_command_explains_itself():
    for args in ([], ["ls"], ["export"], ["diff"], ["shards"], ["compact"], ["demo"]):
        result = run(*args, "--help")
        assert result.exit_code == 0 and len(result.stdout.splitlines()) > 4, args
        assert result.stdout.startswith("Usage: cli " + " ".join(args)), result.stdout
    for name in ("ingest", "pack", "validate", "stats"):  # the stage scripts
        result = stage(name, "--help")
        assert result.exit_code == 0 and len(result.stdout.splitlines()) > 4, name
        assert "--params" in result.stdout or "--store" in result.stdout


def test_a_where_on_a_field_no_image_has_or_an_incomparable_value_is_an_error(tmp_path):
    images = {f"{i}.png": make_image(seed=i) for i in range(3)}
    store = build_store(tmp_path / "s.lmdb", images, {k: {"label": "cat"} for k in images})
    for where in ("lable=cat", "lable!=cat", "meta.lable=cat"):
        result = run("ls", "--store", str(store), "--where", where)
        assert result.exit_code == 1, (where, result.output)
        assert result.stderr.strip() == (
            "Error: no image has a field 'lable'; the fields are: key, split, format, "
            "width, height, size, sha256, label"
        )
    result = run("ls", "--store", str(store), "--where", "width>=abc")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: width>=abc: the field holds numbers, and 'abc' is not a number"
    )
    assert "3 of 3 images" in run("ls", "--store", str(store), "--where", "label=cat").output


def test_export_never_overwrites_or_deletes_a_users_files_without_being_told(tmp_path):
    images = {f"{i}.png": make_image(seed=i) for i in range(3)}
    store = build_store(tmp_path / "s.lmdb", images)
    out = tmp_path / "out"
    out.mkdir()
    (out / "1.png").write_bytes(b"my own file")
    result = run("export", "--store", str(store), "--out", str(out))
    assert result.exit_code == 1 and result.stderr.strip() == (
        f"Error: 1 file(s) already exist in {out} (first: 1.png); --overwrite replaces them"
    )
    assert (out / "1.png").read_bytes() == b"my own file" and not (out / "0.png").exists()
    assert run("export", "--store", str(store), "--out", str(out), "--overwrite").exit_code == 0
    assert (out / "1.png").read_bytes() == images["1.png"]

    wds = tmp_path / "wds"
    wds.mkdir()
    for name in ("shard-000000.tar", "shard-000007.tar"):
        (wds / name).write_bytes(b"not ours")
    result = run("export", "--store", str(store), "--out", str(wds), "--as", "webdataset")
    assert result.exit_code == 1 and "--overwrite replaces" in result.stderr
    assert (wds / "shard-000000.tar").read_bytes() == b"not ours"
    result = run(
        "export", "--store", str(store), "--out", str(wds), "--as", "webdataset", "--overwrite"
    )
    assert result.exit_code == 0
    assert (wds / "shard-000000.tar").read_bytes() != b"not ours"
    assert (wds / "shard-000007.tar").read_bytes() == b"not ours"  # not written: kept
    assert "1 older shard file(s)" in result.stderr and "shard-000007.tar" in result.stderr


def test_the_demo_leaves_the_users_repository_as_it_was(repo, tmp_path):
    """`make demo` in a fresh clone runs in a project of its own, with a remote of its
    own: the user's files, store and remote are as they were, and the user's first `dvc
    repro` packs their own images only (no samples, no rejects of the demo's)."""
    from conftest import batch, env, put, sh, stored

    def files(root):
        return {
            p.relative_to(root): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts
        }

    before, remote = files(repo), tmp_path / "remote"
    demo = subprocess.run(
        command_line("demo"),
        cwd=repo,
        env={**env(), "TMPDIR": str(tmp_path)},
        text=True,
        capture_output=True,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert files(repo) == before and not remote.exists()
    assert sh(repo, "git", "status", "--porcelain").stdout == ""
    (project,) = tmp_path.glob("imageshelf-demo-*/project")
    assert f"cd {project} && " in demo.stdout and "Your project is as it was" in demo.stdout
    assert "32 of 32 images byte-identical" in demo.stdout
    assert "audited  it: 8 odd aspect, 8 light, 8 grayscale" in demo.stdout  # the words
    with ImageStore(project / "data" / "images.lmdb") as samples:
        assert len(samples) == 32

    put(repo / "data" / "incoming", batch(0, 3))
    repro = sh(repo, "dvc", "repro")
    assert "ingest: 3 images staged" in repro.stdout and "0 rejected" in repro.stdout
    assert sorted(stored(repo)) == sorted(batch(0, 3))


def test_every_export_layout_has_one_name(tmp_path):
    """`--as` lists each layout once: `files`, once an alias of `imagefolder`, is gone,
    and naming it is click's one-line "invalid choice" listing the real ones."""
    from imageshelf.cli.main import cli

    option = next(p for p in cli.commands["export"].params if p.name == "layout")
    choices = list(option.type.choices)
    assert len(choices) == len(set(choices)) and "files" not in choices
    store = build_store(tmp_path / "s.lmdb", {"a.png": make_image()})
    result = run("export", "--store", str(store), "--out", str(tmp_path / "o"), "--as", "files")
    assert result.exit_code == 2 and "imagefolder" in result.output


def test_a_broken_params_yaml_is_one_line_not_another_store(workspace):
    """The store is where params.yaml's pack.store says: a params.yaml that cannot be
    read is said in one line by every command, never taken for the default store."""
    store = build_store(workspace / "data" / "images.lmdb", {"a.png": make_image()})
    assert run("ls").exit_code == 0  # pack.store: data/images.lmdb
    for broken, says in [
        ("pack: [\n", "params.yaml: not valid YAML"),
        ("pack: 3\n", "params.yaml: 'pack' must be a mapping of settings"),
        ("pack:\n  store: /etc/images.lmdb\n", "pack.store must be a path inside the repository"),
    ]:
        (workspace / "params.yaml").write_text(broken)
        for args in (["ls"], ["shards"], ["export", "--out", "out"], ["validate"]):
            result = stage(*args)
            assert result.exit_code == 1, (broken, args, result.output)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and says in lines[0], (broken, args, lines)
    assert run("ls", "--store", str(store)).exit_code == 0  # a store given needs no params
