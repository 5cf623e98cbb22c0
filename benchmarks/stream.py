"""Beyond one machine, measured side by side: reading a version from the DVC remote
without a checkout, and reading the store with Ray.

    python benchmarks/stream.py     # what `make bench` runs: --images 10000 --ray-images 40000

Builds a sharded project of N photo-like JPEGs (about 20 KB each) in 10 shards, pushes
it to a local remote and to S3 on loopback (moto's server, as the tests use), then, for
rank 0 of 2:
- time to the first batch of 64 in a fresh process from an empty cache
  (`imageshelf.read.remote.open_store` + ImageDataset + ShardSampler), against a fresh clone's
  `dvc pull` of the index and the rank's shards, then the first batch read locally, from
  each remote;
- steady throughput over the rank's images once the cache is warm, against the same
  shards read from the pulled files;
- over a second store of 40,000 (not pushed), Ray Data (`read_store`, 2 CPUs) reading
  every image, decoding and reducing it, against one process doing the same with the
  library; beside it, plain Ray tasks and two plain processes (the machine's limit), and
  Ray Data reading the bytes only.
Results go to benchmarks/results-stream.md.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).parent))
import scale  # noqa: E402
from bench import PROJECT, Row, run_and_report  # noqa: E402

FIRST_BATCH = """
import sys, time
start = time.perf_counter()
from imageshelf.read.dataset import ImageDataset, ShardSampler, shards_for_rank
{open}
mine = shards_for_rank(store, 0, 2)
dataset = ImageDataset(store, shards=mine)
sampler = ShardSampler(dataset, num_replicas=2, rank=0, seed=1)
order = iter(sampler)
batch = [dataset[next(order)] for _ in range(64)]
first = time.perf_counter() - start
for index in order:  # the rest of the epoch, to warm the cache
    dataset[index]
best = 0.0
for _ in range(5):  # best of five warm epochs
    steady = time.perf_counter()
    count = 0
    for index in sampler:
        dataset[index]
        count += 1
    best = max(best, count / (time.perf_counter() - steady))
print(first, best)
"""
REMOTE = (
    "from imageshelf.remote import open_store\nstore = open_store(sys.argv[1], cache=sys.argv[2])"
)
LOCAL = "from imageshelf import ImageStore\nstore = ImageStore(sys.argv[1])"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

RAY = """
import io, multiprocessing, sys, time
from PIL import Image
from imageshelf.read.query import rows
from imageshelf.store import ImageStore

def mean(data):  # the work per image: decode it, reduce it
    with Image.open(io.BytesIO(data)) as im:
        return sum(im.convert("L").resize((32, 32)).get_flattened_data()) / 1024

def means(batch):
    return {"key": batch["key"], "mean": [mean(d) for d in batch["image"]]}

def part_means(name):  # one shard's work, in one process
    return [mean(r["image"]) for r in rows(ImageStore(path).part(name), None, ["image"])]

path = sys.argv[1]
store = ImageStore(path)
names = [p.name for p in store.parts]
start = time.perf_counter()
every = [r for name in names for r in rows(store.part(name), None, ["key", "image"])]
one_read = time.perf_counter() - start
del every
start = time.perf_counter()
for name in names:
    part_means(name)
one_decode = time.perf_counter() - start
with multiprocessing.get_context("fork").Pool(2) as pool:  # the machine's limit: no Ray
    pool.map(abs, range(2))  # started
    start = time.perf_counter()
    pool.map(part_means, names, chunksize=1)
    two = time.perf_counter() - start

import ray
from imageshelf.read.ray import read_store

ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
read_store(path, columns=["key"]).materialize()  # workers started, code shipped
start = time.perf_counter()
ds = read_store(path, columns=["key", "image"]).materialize()
ray_read = time.perf_counter() - start
assert ds.count() == len(store)
del ds
start = time.perf_counter()
read_store(path, columns=["key", "image"]).map_batches(means).materialize()
ray_decode = time.perf_counter() - start
shard_means = ray.remote(part_means)  # the same work in plain Ray tasks: no Ray Data
start = time.perf_counter()
ray.get([shard_means.remote(name) for name in names])
ray_tasks = time.perf_counter() - start
ray.shutdown()
print(ray_read, one_read, ray_decode, one_decode, ray_tasks, two)
"""


def python(code: str, *args: str, cwd: Path) -> list[float]:
    """What a fresh process running `code` prints last: its numbers."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=scale.ENV, capture_output=True, text=True
    )
    if out.returncode:
        raise click.ClickException(out.stderr[-2000:])
    return [float(v) for v in out.stdout.strip().splitlines()[-1].split()]


def build(work: Path, count: int, push: bool = True) -> tuple[Path, int]:
    """A sharded project of `count` photos in 10 shards, pushed; its repository."""
    work.mkdir(parents=True, exist_ok=True)
    root = scale.project(work / "repo", work / "remote")
    total = scale.make(root / "data" / "incoming", 0, count, kind="photo")
    shard_mb = max(1, -(-total // 10 // 1_000_000))  # ten shards, give or take
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("shard_mb: 1024", f"shard_mb: {shard_mb}"))
    scale.sh(root, sys.executable, "-m", "dvc", "repro")
    scale.commit(root, "built")
    if push:
        scale.sh(root, sys.executable, "-m", "dvc", "push")
    return root, len(list((root / "data" / "images").glob("shard-*.lmdb")))


def first_batches(work: Path, root: Path, name: str) -> tuple[float, float, float, float]:
    """(ours: first batch, warm rate; theirs: pull + first batch, local rate) for rank 0,
    from the repository's default remote, with an empty cache and a fresh clone."""
    remote_first, remote_rate = python(
        FIRST_BATCH.format(open=REMOTE), str(root), str(work / f"cache-{name}"), cwd=work
    )
    clone = work / f"clone-{name}"
    start = time.perf_counter()
    scale.sh(work, "git", "clone", "-q", str(root), str(clone))
    dvc = [sys.executable, "-m", "dvc"]
    scale.sh(clone, *dvc, "pull", "-q", "data/images/index.json")
    mine = subprocess.run(
        [sys.executable, "-m", "imageshelf", "shards", "--store", "data/images", "--rank", "0",
         "--world-size", "2"],
        cwd=clone, env=scale.ENV, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    scale.sh(clone, *dvc, "pull", "-q", *mine)
    pulled = time.perf_counter() - start
    local_first, local_rate = python(FIRST_BATCH.format(open=LOCAL), "data/images", cwd=clone)
    return remote_first, remote_rate, pulled + local_first, local_rate


def on_s3(root: Path) -> Any:
    """Make an S3 server on loopback (moto's, as the tests use) the repository's default
    remote, and push there; the server, to stop."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in CREDENTIALS.items():
        os.environ[name] = value
        scale.ENV[name] = value
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="datasets"
    )
    dvc = [sys.executable, "-m", "dvc"]
    scale.sh(root, *dvc, "remote", "add", "-f", "-d", "s3", "s3://datasets/store")
    scale.sh(root, *dvc, "remote", "modify", "s3", "endpointurl", endpoint)
    scale.commit(root, "the S3 remote")
    scale.sh(root, *dvc, "push", "-q")
    return server


def measure(work: Path, count: int, ray_count: int) -> list[Row]:
    root, shards = build(work / "stream", count)
    click.echo(f"{count:,} images in {shards} shards, pushed")
    local = first_batches(work, root, "local")
    server = on_s3(root)
    try:
        s3 = first_batches(work, root, "s3")
    finally:
        server.stop()
    n = f"{count:,} images, {shards} shards"
    against = "git clone + dvc pull of the rank's shards, then the first batch"
    _, remote_rate, _, local_rate = local
    return [
        Row("stream", f"first batch of 64, rank 0 of 2, empty cache, S3 on loopback ({n})",
            s3[0], against, s3[2], 5.0),
        Row("stream", "same, the remote a local folder (pull at disk speed)",
            local[0], against, local[2], 5.0),
        Row("stream", "steady reads once the cache is warm (s per 1,000 images)",
            1000 / remote_rate, "the same shards pulled, read locally", 1000 / local_rate, 0.8),
        *measure_ray(work / "ray", ray_count),
    ]  # fmt: skip


def measure_ray(work: Path, count: int) -> list[Row]:
    """Ray over a store of its own, larger: each Ray Data run pays about a second of
    start-up at half speed (its resource limits are learned from the cluster after the
    first tasks start), which a store of 10,000 images, decoded in 4 s, would mostly
    measure."""
    root, shards = build(work, count, push=False)
    click.echo(f"{count:,} images in {shards} shards, for Ray")
    path = str(root / "data" / "images")
    ray_read, one_read, ray_decode, one_decode, ray_tasks, two = python(RAY, path, cwd=work)
    one = "one process doing the same"
    return [
        Row("stream", f"Ray Data, 2 CPUs: every image read, decoded and reduced ({count:,} "
            f"images, {shards} shards)", ray_decode, one, one_decode, 1.5),
        Row("stream", "plain Ray tasks, one per shard, 2 CPUs: the same work", ray_tasks,
            one, one_decode, None),
        Row("stream", "two processes, no Ray (multiprocessing): the machine's limit", two,
            one, one_decode, None),
        Row("stream", "Ray Data: every key and image, no work on them (Ray copies each image "
            "into its object store; one process reads them in place)", ray_read,
            "one process reading the same", one_read, None),
    ]  # fmt: skip


@click.command()
@click.option("--images", "count", default=10_000, show_default=True, help="Images to stream.")
@click.option(
    "--ray-images", "ray_count", default=40_000, show_default=True, help="Images for Ray."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=PROJECT / "benchmarks" / "results-stream.md",
    show_default=True,
)
def main(count: int, ray_count: int, out: Path) -> None:
    """Time streaming from the remote and Ray against pulling and one process."""
    run_and_report(
        "imageshelf-stream-bench-",
        lambda work: measure(work, count, ray_count),
        out,
        [
            "# Beyond one machine: streaming from the remote, and Ray",
            "",
            f"`python benchmarks/stream.py --images {count} --ray-images {ray_count}` "
            "(what `make bench` runs).",
            "Ratio = theirs / ours: above 1, ours is faster.",
        ],
    )


if __name__ == "__main__":
    main()
