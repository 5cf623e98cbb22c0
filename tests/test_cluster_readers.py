"""The store read by the engines teams scale out with: Ray Data on a local cluster, and a
Hugging Face IterableDataset split across nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageshelf.read.query import QueryError
from imageshelf.store import ImageStore
from imageshelf.store.writer import write_sharded

from conftest import build_store, items_for, make_image


def content() -> tuple[dict[str, bytes], dict[str, dict]]:
    images = {f"{'ab'[i % 2]}/{i:03d}.png": make_image("PNG", (12, 10), seed=i) for i in range(90)}
    metadata = {key: {"label": key[0], "n": i} for i, key in enumerate(images)}
    metadata["a/000.png"]["label"] = 7  # a label of another type: kept, as JSON text
    return images, metadata


@pytest.fixture
def stores(tmp_path) -> dict[str, Path]:
    images, metadata = content()
    single = build_store(tmp_path / "one.lmdb", images, metadata)
    folder = tmp_path / "shards"
    keys = sorted(images)
    for batch in range(3):  # overlapping key ranges, as batches of new images give
        chosen = {k: images[k] for k in keys[batch::3]}
        write_sharded(folder, items_for(chosen, metadata), shard_bytes=8_000)
    assert len(ImageStore(folder).parts) >= 6
    return {"single": single, "sharded": folder}


def test_ray_reads_every_record_of_both_layouts_one_task_per_shard_with_a_filter(stores):
    import ray

    from imageshelf.read.ray import StoreDatasource, read_store

    images, metadata = content()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for layout, path in stores.items():
            everything = read_store(path).take_all()
            assert sorted(r["key"] for r in everything) == sorted(images), layout
            assert all(r["image"] == images[r["key"]] for r in everything)  # byte-identical
            labels = {r["key"]: r["label"] for r in everything}
            assert labels["a/000.png"] in (7, "7") and labels["b/001.png"] == "b"
            cats = read_store(path, where="n>=45", columns=["key", "label", "split"]).take_all()
            assert sorted(r["key"] for r in cats) == sorted(
                k for k, m in metadata.items() if m["n"] >= 45
            )
            assert set(cats[0]) == {"key", "label", "split"}  # only the columns named
            tasks = StoreDatasource(str(path), None, ["key"]).get_read_tasks(2)
            assert len(tasks) == len(ImageStore(path).parts)
        with pytest.raises(QueryError, match="nosuch"):
            read_store(stores["single"], where="nosuch=1")  # said at once, not in a task
    finally:
        ray.shutdown()


def test_a_hugging_face_iterable_dataset_splits_whole_shards_across_nodes(stores):
    from datasets.distributed import split_dataset_by_node

    from imageshelf.read.hf import iterable_dataset

    images, _metadata = content()
    dataset = iterable_dataset(stores["sharded"], where=["label=a,b"])
    shards = len(ImageStore(stores["sharded"]).parts)
    assert dataset.n_shards == shards
    seen = []
    for rank in range(2):
        node = split_dataset_by_node(dataset, rank=rank, world_size=2)
        rows = list(node)
        assert all(row["image"] == images[row["key"]] for row in rows)
        seen.append({row["key"] for row in rows})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {k for k in images if k != "a/000.png"}  # label 7 filtered out
