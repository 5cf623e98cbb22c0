"""An S3 remote: a real S3-compatible server (moto's) on loopback, started by the tests
and stopped after. DVC talks to it through dvc-s3, exactly as to AWS or MinIO."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import subprocess
import sys

import pytest
from test_remote import RANK

from imageshelf.store import ImageStore

from conftest import big_images, packed, sh, sharded_params

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """An S3 endpoint on 127.0.0.1 with an empty bucket; gone after the test."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)  # inherited by the dvc processes the test runs
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="datasets")
    try:
        yield endpoint, client
    finally:
        server.stop()


def use_s3(root, endpoint: str) -> None:
    """What docs/TEAMS.md, "Using S3", tells a user to run."""
    sh(root, "dvc", "remote", "add", "-d", "storage", "s3://datasets/image-store")
    sh(root, "dvc", "remote", "modify", "storage", "endpointurl", endpoint)


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_push_to_s3_and_a_fresh_clone_pulls_from_it(repo, tmp_path, s3_server, layout):
    endpoint, client = s3_server
    use_s3(repo, endpoint)
    if layout == "sharded":
        sharded_params(repo)
    content = big_images(0, 80)
    packed(repo, content, f"dataset on S3, {layout}")
    sh(repo, "dvc", "push")
    listed = client.list_objects_v2(Bucket="datasets", Prefix="image-store/")
    keys = [obj["Key"] for obj in listed.get("Contents", [])]
    assert keys and all(k.startswith("image-store/files/md5/") for k in keys)

    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    sh(teammate, "dvc", "pull")
    store_path = teammate / "data" / ("images.lmdb" if layout == "single" else "images")
    with ImageStore(store_path) as store:
        assert {key: store.get(key) for key in store} == content
    assert "are in sync" in sh(teammate, "dvc", "status", "--cloud").stdout


def test_ranks_stream_their_shards_from_s3_without_a_checkout(repo, tmp_path, s3_server):
    endpoint, client = s3_server
    use_s3(repo, endpoint)
    sharded_params(repo, shard_mb=1)
    content = big_images(0, 160)  # about 3 MB: three or four shards
    packed(repo, content, "dataset on S3, sharded")
    sh(repo, "dvc", "push")
    listed = client.list_objects_v2(Bucket="datasets", Prefix="image-store/")["Contents"]
    on_s3 = {obj["Key"]: obj["Size"] for obj in listed}
    clone = tmp_path / "clone"  # git only: no DVC data here
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    read = {}
    for rank in range(2):  # separate processes, each with a cache smaller than the dataset
        args = [str(clone), str(rank), str(tmp_path / f"cache{rank}"), "1500000"]
        out = subprocess.run(
            [sys.executable, "-c", RANK, *args], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout.splitlines()[-1])
        sizes = [on_s3[f"image-store/files/md5/{m[:2]}/{m[2:]}"] for m in result["md5s"]]
        assert sum(sizes) <= result["fetched"] <= 1.1 * sum(sizes)  # its shards, once
        assert result["before"] == 0
        read.update(result["read"])
    assert read == {k: hashlib.sha256(v).hexdigest() for k, v in content.items()}
