"""`from imageshelf.dataset import ...`, as the README writes it: the public path of
imageshelf/read/dataset.py, where the reader lives."""

from .read.dataset import (
    ImageDataset,
    SamplerError,
    ShardSampler,
    collate,
    decode_image,
    shards_for_rank,
)

__all__ = [
    "ImageDataset",
    "SamplerError",
    "ShardSampler",
    "collate",
    "decode_image",
    "shards_for_rank",
]
