"""A PyTorch-style dataset over an image store. PyTorch itself is never imported here.

    from torch.utils.data import DataLoader
    from pipeline.dataset import ImageDataset, collate

    train = ImageDataset("data/images.lmdb", split="train", decode="RGB",
                         transform=to_tensor, where={"label": {"rose", "tulip"}})
    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=4,
                        collate_fn=collate)

`ImageDataset` is map-style (`len`, `dataset[i]`), so any sampler, `shuffle` and
`DistributedSampler` work. It holds the selected keys and the store's path, nothing
open: DataLoader's workers, forked or spawned, each open the store read-only on first
use. Selection reads records only, never image bytes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import Any

from .query import Where, select
from .store import ImageStore


def decode_image(data: bytes, mode: str | None = None):
    """The image in `data` as a loaded PIL image, converted to `mode` if given."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    if mode is not None and image.mode != mode:
        image = image.convert(mode)
    return image


class ImageDataset:
    """index -> (image, metadata) over the images of a store that match a selection.

    store: an ImageStore or the path of a store file.
    decode: False gives the original bytes (byte-identical to what was ingested); True a
        decoded PIL image in its own mode; a PIL mode such as "RGB" or "L" converts to it.
    transform: called on the image (bytes or PIL image); its result is returned.
    target_transform: called on the metadata dict; its result is returned.
    split: keep only this split ("train", "val", "test", ...), or one of several.
    where: conditions on metadata, as for `python -m pipeline ls --where` (a string or
        list of strings like "label=rose", "width>=256"), or a mapping {field: value,
        collection of values, or test}. See pipeline/query.py.
    filter: a function of the image's fields (its metadata plus key, split, format,
        width, height, size, sha256) returning True to keep it.
    The metadata returned is the image's metadata plus `key` and `split`.
    """

    def __init__(
        self,
        store: ImageStore | str | os.PathLike[str],
        *,
        decode: bool | str = False,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[dict[str, Any]], Any] | None = None,
        split: str | Sequence[str] | None = None,
        where: Where = None,
        filter: Callable[[dict[str, Any]], bool] | None = None,  # noqa: A002 - the usual name
    ) -> None:
        self.store = store if isinstance(store, ImageStore) else ImageStore(store)
        if decode is not False and decode is not True and not isinstance(decode, str):
            raise TypeError(f"decode must be True, False or a PIL mode like 'RGB', not {decode!r}")
        self.decode = decode
        self.transform = transform
        self.target_transform = target_transform
        conditions = _with_split(where, split)
        self.keys: list[str] = [record.key for record in select(self.store, conditions, filter)]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        key = self.keys[index]
        data = self.store.get(key)
        record = self.store.record(key)
        image: Any = data
        if self.decode is not False:
            image = decode_image(data, None if self.decode is True else self.decode)
        if self.transform is not None:
            image = self.transform(image)
        metadata: Any = {**record.metadata, "key": key, "split": record.fields()["split"]}
        if self.target_transform is not None:
            metadata = self.target_transform(metadata)
        return image, metadata

    def __repr__(self) -> str:
        return f"ImageDataset({str(self.store.path)!r}, {len(self)} images)"


def _with_split(where: Where, split: str | Sequence[str] | None) -> Where:
    if split is None:
        return where
    wanted = {split} if isinstance(split, str) else set(split)
    if where is None:
        return {"split": wanted}
    if isinstance(where, dict):
        if "split" in where:
            raise ValueError("give the split either as split= or in where=, not both")
        return {**where, "split": wanted}
    conditions = [where] if isinstance(where, str) else list(where)
    return [*conditions, "split=" + ",".join(sorted(wanted))]


def collate(batch: Sequence[tuple[Any, Any]]) -> tuple[Any, list[Any]]:
    """DataLoader's collate_fn for this dataset: images stacked into one tensor when
    they are tensors of one shape (else a list), metadata as a list of dicts.

    PyTorch's default collate would fail on metadata whose fields differ from image to
    image (boxes, optional text), which is the usual case.
    """
    images = [image for image, _ in batch]
    metadata = [meta for _, meta in batch]
    first = images[0] if images else None
    if type(first).__module__.startswith("torch") and hasattr(first, "shape"):
        import torch

        if all(image.shape == first.shape for image in images):
            return torch.stack(images), metadata
    return images, metadata
