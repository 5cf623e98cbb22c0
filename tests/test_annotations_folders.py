"""Folder labels as the peers infer them, found per dataset folder of data/incoming/.

References, run on the same folders:
- Hugging Face `datasets.load_dataset("imagefolder", data_dir=DATASET)` (datasets 5.2,
  packaged_modules/folder_based_builder: the parent folder is the label only "if files
  are on the same level in directory hierarchy and there is more than one label", and
  never where a metadata file is found), for `label_from_folder: auto`, the default.
- torchvision's ImageFolder(root=DATASET), for `label_from_folder: true`. torchvision
  does not import beside this project's CPU torch (its wheel needs PyPI's CUDA build),
  so its rule is restated from torchvision/datasets/folder.py: `find_classes` takes the
  folders directly under the root, sorted; `make_dataset` every file below each of
  them (os.walk, followlinks=True) whose suffix is in IMG_EXTENSIONS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageshelf.store import ImageStore

from conftest import HF_SPLITS, ingest_and_pack, make_image, make_repo, put, report, sh, stage

INCOMING = Path("data/incoming")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def set_annotations(root: Path = Path("."), **values: Any) -> None:
    """Set params.yaml's annotations.NAME to each value, as a user edits it."""
    params = root / "params.yaml"
    document = yaml.safe_load(params.read_text())
    document["annotations"].update(values)
    params.write_text(yaml.safe_dump(document, sort_keys=False))


def images(paths: list[str], first: int = 0) -> dict[str, bytes]:
    """A small distinct image per path, in the format its suffix names."""
    fmt = {".jpg": "JPEG", ".png": "PNG", ".gif": "GIF"}
    return {p: make_image(fmt[Path(p).suffix], seed=first + i) for i, p in enumerate(paths)}


def hf_labels(data_dir: Path, cache: Path) -> dict[str, tuple[str, str | None]]:
    """path under data_dir -> (split, label) as datasets loads the folder; label None
    where HF gives no label column."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(data_dir), cache_dir=str(cache))
    root = os.path.realpath(data_dir)
    out: dict[str, tuple[str, str | None]] = {}
    for split, table in loaded.items():
        feature = table.features.get("label")
        for row in table.cast_column("image", datasets.Image(decode=False)):
            value = row.get("label")  # None in a split HF gave no labels to
            label = feature.int2str(value) if value is not None else None
            path = os.path.relpath(os.path.realpath(row["image"]["path"]), root)
            out[path] = (HF_SPLITS[split], label)
    return out


def torchvision_classes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """ImageFolder(root)'s samples, path under root -> class (folder.py, restated)."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and e.name not in skip)
    out = {}
    for cls in classes:
        for here, _dirs, files in sorted(os.walk(root / cls, followlinks=True)):
            for name in sorted(files):
                if name.lower().endswith(IMG_EXTENSIONS):
                    out[os.path.relpath(os.path.join(here, name), root)] = cls
    return out


def labels(store: ImageStore, folder: str) -> dict[str, str | None]:
    """Each stored image under `folder`, by its path there -> its label (None: none)."""
    return {
        r.key[len(folder) + 1 :]: r.metadata.get("label")
        for r in store.records()
        if r.key.startswith(folder + "/")
    }


# Dataset folders without annotations, each dropped whole into data/incoming/.
HF_LAYOUTS = {
    "pets": ["cat/a.jpg", "cat/b.png", "dog/c.jpg"],  # HF: cat, cat, dog
    "one": ["cat/a.jpg", "cat/b.jpg"],  # a single parent: HF gives none
    "mixed": ["cat/a.jpg", "dog/2019/c.jpg"],  # two depths: none
    "nested": ["cat/kittens/a.jpg", "dog/2019/c.jpg"],  # one depth: the parents
    "loose": ["x.jpg", "cat/a.jpg", "dog/b.jpg"],  # an image at the root: none
}


def test_by_default_each_dataset_folder_is_labelled_as_datasets_labels_it(workspace, tmp_path):
    """Before, the default gave no label at all, where datasets gives pets cat and dog."""
    for n, (folder, paths) in enumerate(HF_LAYOUTS.items()):
        put(INCOMING / folder, images(paths, first=10 * n))
    store = ingest_and_pack()
    for folder in HF_LAYOUTS:
        hf = hf_labels(INCOMING / folder, tmp_path / "hf-cache")
        assert labels(store, folder) == {p: label for p, (_s, label) in hf.items()}, folder
    assert labels(store, "pets") == {"cat/a.jpg": "cat", "cat/b.png": "cat", "dog/c.jpg": "dog"}
    assert labels(store, "nested") == {"cat/kittens/a.jpg": "kittens", "dog/2019/c.jpg": "2019"}


def test_split_folders_and_nested_classes_under_them_as_datasets_reads_them(workspace, tmp_path):
    set_annotations(split_from_folder=True)
    layouts = {
        "ds": ["train/cat/a.jpg", "train/dog/b.jpg", "test/cat/c.jpg", "test/dog/d.jpg"],
        "deep": ["train/cat/kittens/a.jpg", "train/dog/puppies/b.jpg", "val/cat/kittens/c.jpg"],
        "one": ["train/cat/a.jpg", "test/cat/b.jpg"],  # one class in every split: none
    }
    for n, (folder, paths) in enumerate(layouts.items()):
        put(INCOMING / folder, images(paths, first=10 * n))
    # HF decides split by split with what it has seen so far (datasets 5.2 keeps its
    # `labels` set across splits): a first split of one class gets none, and split
    # folders holding images directly give later splits their own name as a label.
    # The store decides for the dataset whole, and a split folder is never a class.
    quirks = {
        "first": ["train/cat/a.jpg", "test/cat/b.jpg", "test/dog/c.jpg"],
        "flat": ["train/a.jpg", "train/b.jpg", "test/c.jpg"],
    }
    for n, (folder, paths) in enumerate(quirks.items()):
        put(INCOMING / folder, images(paths, first=50 + 10 * n))
    store = ingest_and_pack()
    for folder in layouts:
        hf = hf_labels(INCOMING / folder, tmp_path / "hf-cache")
        got = {
            r.key[len(folder) + 1 :]: r for r in store.records() if r.key.startswith(folder + "/")
        }
        assert {p: (r.split, r.metadata.get("label")) for p, r in got.items()} == hf, folder
    assert labels(store, "deep")["val/cat/kittens/c.jpg"] == "kittens"
    hf_first = hf_labels(INCOMING / "first", tmp_path / "hf-cache")
    assert hf_first["train/cat/a.jpg"] == ("train", None)
    assert {p: label for p, (_s, label) in hf_first.items() if p.startswith("test/")} == {
        "test/cat/b.jpg": "cat",
        "test/dog/c.jpg": "dog",
    }
    assert labels(store, "first") == {
        "train/cat/a.jpg": "cat",
        "test/cat/b.jpg": "cat",
        "test/dog/c.jpg": "dog",
    }
    assert hf_labels(INCOMING / "flat", tmp_path / "hf-cache")["test/c.jpg"] == ("test", "test")
    assert set(labels(store, "flat").values()) == {None}


def test_true_takes_torchvisions_class_under_each_dataset_folder(workspace):
    """Before, `pets/cat/a.jpg` and `root/dog/2019/c.jpg` were labelled `pets` and `root`."""
    set_annotations(label_from_folder=True)
    put(INCOMING / "pets", images(["cat/a.jpg", "dog/b.jpg"]))
    root = ["dog/2019/c.jpg", "cat/d.jpg", "cat/anim.gif", "loose.png"]
    put(INCOMING / "root", images(root, first=10))
    put(INCOMING / "split", images(["train/cat/e.jpg", "test/dog/f.jpg"], first=20))
    put(INCOMING, images(["bird/g.jpg", "fish/h.png"], first=30))  # folders of loose images
    store = ingest_and_pack()
    assert labels(store, "pets") == torchvision_classes(INCOMING / "pets")
    expected = {**torchvision_classes(INCOMING / "root"), "cat/anim.gif": "cat", "loose.png": None}
    assert labels(store, "root") == expected  # GIF, which torchvision skips, is kept
    assert labels(store, "root")["dog/2019/c.jpg"] == "dog"
    # torchvision is pointed at a split folder: ImageFolder("split/train")
    assert labels(store, "split") == {
        **{f"train/{p}": c for p, c in torchvision_classes(INCOMING / "split/train").items()},
        **{f"test/{p}": c for p, c in torchvision_classes(INCOMING / "split/test").items()},
    }
    # Each top-level folder is a dataset folder: ImageFolder("data/incoming/bird") finds
    # no class folder in it (`label_from_folder: 1` reads class folders copied straight
    # into data/incoming/: tests/test_annotations_voc.py).
    assert not torchvision_classes(INCOMING / "bird") and not torchvision_classes(INCOMING / "fish")
    assert labels(store, "bird") == {"g.jpg": None} and labels(store, "fish") == {"h.png": None}


COCO = {
    "images": [
        {"id": 1, "file_name": "cats/x.jpg", "width": 32, "height": 24},
        {"id": 2, "file_name": "dogs/y.jpg", "width": 32, "height": 24},
    ],
    "annotations": [
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 8], "area": 80, "iscrowd": 0},
        {"id": 8, "image_id": 2, "category_id": 2, "bbox": [3, 4, 5, 6], "area": 30, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
}


@pytest.mark.parametrize("rule", ["auto", True])
def test_images_an_annotation_file_describes_take_no_folder_label(workspace, tmp_path, rule):
    """Before, with `true`, a COCO folder beside the class folders gave `label: coco` to
    every image of it; and a folder label went to every image a sidecar describes."""
    set_annotations(label_from_folder=rule)
    put(INCOMING / "pets", images(["cat/1.jpg", "dog/2.jpg"]))
    put(INCOMING / "coco", images(["cats/x.jpg", "dogs/y.jpg"], first=10))
    put(INCOMING / "coco", {"annotations/instances_default.json": json.dumps(COCO)})
    put(INCOMING / "hf", images(["cat/a.jpg", "dog/b.jpg"], first=20))
    put(INCOMING / "hf", {"metadata.csv": "file_name,caption\ncat/a.jpg,one\ndog/b.jpg,two\n"})
    put(INCOMING / "side", images(["cat/s.jpg", "dog/t.jpg"], first=30))
    put(INCOMING / "side", {"cat/s.json": json.dumps({"photographer": "Ada"})})
    store = ingest_and_pack()
    assert labels(store, "pets") == {"cat/1.jpg": "cat", "dog/2.jpg": "dog"}
    assert labels(store, "coco") == {"cats/x.jpg": None, "dogs/y.jpg": None}
    assert [o["category"] for o in store.metadata("coco/cats/x.jpg")["objects"]] == ["cat"]
    # HF: a metadata file, so no label column
    hf = hf_labels(INCOMING / "hf", tmp_path / "hf-cache")
    assert labels(store, "hf") == {p: label for p, (_s, label) in hf.items()}
    assert labels(store, "hf") == {"cat/a.jpg": None, "dog/b.jpg": None}
    assert store.metadata("hf/cat/a.jpg")["caption"] == "one"
    assert labels(store, "side") == {"cat/s.jpg": None, "dog/t.jpg": "dog"}
    assert store.metadata("side/cat/s.jpg") == {"photographer": "Ada"}


def test_a_folder_turns_folder_labels_off_or_on_in_params(workspace):
    """label_from_folder_in: per folder of data/incoming/, the longest that holds an image."""
    per_folder = {"scans": False, "pets/extra": False, "root": True, "cat": 1}
    set_annotations(label_from_folder_in=per_folder)
    put(INCOMING, images(["cat/h.jpg", "dog/i.jpg"], first=30))  # classes copied straight in
    put(INCOMING / "scans", images(["2019/a.jpg", "2020/b.jpg"]))  # auto: 2019, 2020
    put(INCOMING / "pets", images(["cat/c.jpg", "dog/d.jpg", "extra/e.jpg"], first=10))
    put(INCOMING / "root", images(["dog/2019/f.jpg", "cat/g.jpg"], first=20))
    store = ingest_and_pack()
    assert labels(store, "scans") == {"2019/a.jpg": None, "2020/b.jpg": None}
    assert labels(store, "pets") == {"cat/c.jpg": "cat", "dog/d.jpg": "dog", "extra/e.jpg": None}
    assert labels(store, "root") == {"dog/2019/f.jpg": "dog", "cat/g.jpg": "cat"}
    assert labels(store, "cat") == {"h.jpg": "cat"} and labels(store, "dog") == {"i.jpg": None}

    for value in ("sometimes", 0):
        set_annotations(label_from_folder=value)
        result = stage("pack")
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            "Error: params.yaml: annotations.label_from_folder must be auto, true, false or "
            f"a folder depth such as 2 (got {value!r})"
        )
    set_annotations(label_from_folder="auto", label_from_folder_in=["scans"])
    error = stage("pack").stderr.strip()
    assert error.startswith("Error: params.yaml: annotations.label_from_folder_in must map ")


def test_labels_follow_the_dataset_as_it_grows_and_the_old_default_gains_them(workspace):
    """What a store packed before sees: with the old default (false), none; with auto,
    the labels appear, counted as relabeled. A second class folder arriving later labels
    the images already stored (they are no longer in data/incoming/), and an image at
    another depth takes every label away again, as datasets would on the whole folder,
    until it is removed. With `.dvc/`, pack keeps what it settled in its cache (the
    folders and what they hold) and looks only where the folders changed: these
    relabels come through that path."""
    Path(".dvc").mkdir()
    set_annotations(label_from_folder=False)
    put(INCOMING / "pets", images(["cat/a.jpg", "dog/b.jpg", "cat/c.jpg"]))
    put(INCOMING / "solo", images(["cat/d.jpg"], first=10))
    store = ingest_and_pack()
    assert set(labels(store, "pets").values()) == {None}
    set_annotations(label_from_folder="auto")
    store = ingest_and_pack()
    assert labels(store, "pets") == {"cat/a.jpg": "cat", "dog/b.jpg": "dog", "cat/c.jpg": "cat"}
    assert report("pack")["relabeled"] == 3
    for path in list(INCOMING.rglob("*.jpg")):
        path.unlink()
    assert labels(store, "solo") == {"cat/d.jpg": None}  # one class so far

    put(INCOMING / "solo", images(["dog/e.jpg"], first=20))
    store = ingest_and_pack()
    assert labels(store, "solo") == {"cat/d.jpg": "cat", "dog/e.jpg": "dog"}
    assert report("pack")["relabeled"] == 1 and report("pack")["added"] == 1
    put(INCOMING / "solo", images(["dog/2019/f.jpg"], first=30))
    store = ingest_and_pack()
    assert set(labels(store, "solo").values()) == {None}
    assert report("pack")["fields_removed"] == {"label": 2}
    assert labels(store, "pets")["dog/b.jpg"] == "dog"  # another dataset: untouched
    (INCOMING / "solo/dog/2019/f.jpg").unlink()
    Path("data/remove.txt").write_text("solo/dog/2019/f.jpg\n")  # the odd one out, dropped
    for _run in range(2):  # the next run starts from what this one remembered
        store = ingest_and_pack()
        assert labels(store, "solo") == {"cat/d.jpg": "cat", "dog/e.jpg": "dog"}


def test_a_real_project_labels_every_layout_as_its_reference_does(tmp_path):
    """Every layout above side by side in one project, one `dvc repro`, each image's
    label and split compared with its reference: datasets for the default, the
    torchvision rule where params.yaml turns it on for a folder, none where an
    annotation file describes the image or params.yaml turns labels off."""
    repo = make_repo(tmp_path)
    incoming = repo / "data" / "incoming"
    set_annotations(
        repo, split_from_folder=True, label_from_folder_in={"root": True, "scans": False}
    )
    hf_folders = {**HF_LAYOUTS, "ds": ["train/cat/a.jpg", "train/dog/b.jpg", "test/cat/c.jpg"]}
    for n, (folder, paths) in enumerate(hf_folders.items()):
        put(incoming / folder, images(paths, first=10 * n))
    put(incoming / "root", images(["dog/2019/c.jpg", "cat/d.jpg", "loose.png"], first=100))
    put(incoming / "scans", images(["2019/a.jpg", "2020/b.jpg"], first=110))
    put(incoming, images(["batch1/g.jpg", "batch2/h.png", "top.png"], first=120))
    put(incoming / "coco", images(["cats/x.jpg", "dogs/y.jpg"], first=130))
    put(incoming / "coco", {"annotations/instances_default.json": json.dumps(COCO)})
    sh(repo, "dvc", "repro")

    expected: dict[str, tuple[str | None, str | None]] = {}  # key -> (split, label)
    for folder in hf_folders:
        hf = hf_labels(incoming / folder, tmp_path / "hf-cache")
        split_folders = len({s for s, _label in hf.values()}) > 1
        for path, (split, label) in hf.items():
            expected[f"{folder}/{path}"] = (split if split_folders else None, label)
    tv = torchvision_classes(incoming / "root")
    expected.update({f"root/{p}": (None, c) for p, c in {**tv, "loose.png": None}.items()})
    expected.update({f"scans/{p}": (None, None) for p in ("2019/a.jpg", "2020/b.jpg")})
    # folders of loose images, and an image at the top: no class (HF on batch1/: one parent)
    for folder in ("batch1", "batch2"):
        hf = hf_labels(incoming / folder, tmp_path / "hf-cache")
        expected.update({f"{folder}/{p}": (None, label) for p, (_s, label) in hf.items()})
    expected["top.png"] = (None, None)
    expected.update({"coco/cats/x.jpg": (None, None), "coco/dogs/y.jpg": (None, None)})
    with ImageStore(repo / "data" / "images.lmdb") as store:
        records = {r.key: r for r in store.records()}
    assert sorted(records) == sorted(expected)
    got = {
        k: (r.split if expected[k][0] else None, r.metadata.get("label"))
        for k, r in records.items()
    }
    assert got == expected


def test_splits_of_its_own_ignored_by_default_are_said(workspace):
    """A dataset that ships train/ and test/ while split_from_folder is false (the
    default): its images get hashed splits, so a test image may land in train. Ingest
    says so, naming the dataset and its folders; with the setting true, nothing to say."""
    put(INCOMING / "mnist", images(["train/a.jpg", "train/b.jpg", "test/c.jpg"]))
    put(INCOMING / "loose", images(["train/d.jpg"], first=5))  # one split: hashing is fine
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "splits of its own" in line]
    assert len(said) == 1 and "mnist/ has splits of its own (test/, train/)" in said[0]
    assert "split_from_folder" in said[0]
    report = json.loads(Path("reports/ingest.json").read_text())
    assert report["own_splits_not_kept"] == {"mnist": ["test/", "train/"]}
    assert stage("pack").exit_code == 0
    assert "splits of its own" not in stage("ingest").output  # nothing new: nothing to say
    set_annotations(split_from_folder=True)
    assert "splits of its own" not in stage("ingest").output
