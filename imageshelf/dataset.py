"""A PyTorch-style dataset over an image store. PyTorch itself is never imported here.

    from torch.utils.data import DataLoader
    from imageshelf.dataset import ImageDataset, collate

    train = ImageDataset("data/images.lmdb", split="train", decode="RGB",
                         transform=to_tensor, where={"label": {"rose", "tulip"}})
    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=4,
                        collate_fn=collate)

`ImageDataset` is map-style (`len`, `dataset[i]`), so any sampler, `shuffle` and
`DistributedSampler` work. It holds the selected keys and the store's path, nothing
open: DataLoader's workers, forked or spawned, each open the store read-only on first
use. Selection reads records only, never image bytes. Needs only the core (lmdb,
orjson); Pillow only to decode.
"""

from __future__ import annotations

import bisect
import io
import math
import os
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .decoding import DecodeCostError, check_decode_cost
from .query import Where, check_store_fields, select
from .store import ImageStore, StoreFile


def decode_image(data: bytes, mode: str | None = None) -> Any:
    """The image in `data` as a loaded PIL image, converted to `mode` if given.

    Bounded: Pillow's pixel limit (Image.MAX_IMAGE_PIXELS) holds, and an image whose
    decoding would cost without bound under it (decoding.py) is a DecodeCostError."""
    from PIL import Image

    from .images import PLUGINS  # noqa: F401  # HEIC and JPEG XL, with the formats extra

    check_decode_cost(data)
    with warnings.catch_warnings():
        # Over Pillow's pixel limit is an error here, not a warning: one worker's memory.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image: Image.Image = Image.open(io.BytesIO(data))
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DecodeCostError(f"image over Pillow's pixel limit: {exc}") from None
    if mode is not None and image.mode != mode:
        image = image.convert(mode)
    return image


class ImageDataset:
    """index -> (image, metadata) over the images of a store that match a selection; with
    `paired`, (image, mask, ..., metadata).

    store: an ImageStore, or the path of a store (a .lmdb file or a sharded folder).
    decode: False gives the original bytes (byte-identical to what was ingested); True a
        decoded PIL image in its own mode; a PIL mode such as "RGB" or "L" converts to it.
    transform: called on the image (bytes or PIL image); its result is returned.
    target_transform: called on the metadata dict; its result is returned.
    split: keep only this split ("train", "val", "test", ...), or one of several.
    where: conditions on metadata, as for `imageshelf ls --where` (a string or list of
        strings like "label=rose", "width>=256"), or a mapping {field: value,
        collection of values, or test}. See imageshelf/query.py.
    filter: a function of the image's fields (its metadata plus key, split, format,
        width, height, size, sha256) returning True to keep it.
    shards: read only these parts of a sharded store (by name, as `shards_for_rank`
        gives them): a node that pulled only its shards.
    paired: a role ("mask") or roles whose paired images are read with each image and
        given after it, as torchvision's VOCSegmentation gives (image, mask); only the
        images that have all of them are selected. Decoded in their own mode (a
        palette or class-id mask keeps its ids) unless `decode` is False (bytes).
    transforms: called on (image, *paired images) together, returning them: the joint
        transform a segmentation needs (the same crop and flip on image and mask).
    The metadata returned is the image's metadata plus `key` and `split`. `classes` (the
    selection's labels, sorted) and `class_to_idx` are as torchvision's ImageFolder
    gives them; empty when no image has a `label`.
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
        shards: Sequence[str] | None = None,
        paired: str | Sequence[str] = (),
        transforms: Callable[..., Sequence[Any]] | None = None,
    ) -> None:
        self.store = store if isinstance(store, ImageStore) else ImageStore(store)
        self.paired = (paired,) if isinstance(paired, str) else tuple(paired)
        self.transforms = transforms
        if decode is not False and decode is not True and not isinstance(decode, str):
            raise TypeError(f"decode must be True, False or a PIL mode like 'RGB', not {decode!r}")
        self.decode = decode
        self.transform = transform
        self.target_transform = target_transform
        conditions = _with_split(where, split)
        # Keys are grouped by the part that holds them, so an item's part is known (no
        # probing) and a node reads only the parts it was given.
        names = [part.name for part in self.store.parts]
        if shards is not None:
            unknown = sorted(set(shards) - set(names))
            if unknown:
                raise ValueError(f"not shards of {self.store.path}: {', '.join(unknown)}")
            names = [name for name in names if name in set(shards)]
        self.shard_names: list[str] = []
        self.shard_starts: list[int] = []
        self.keys: list[str] = []
        labels: set[Any] = set()
        check_store_fields(self.store, conditions)  # once, over every part
        for name in names:
            self.shard_names.append(name)
            self.shard_starts.append(len(self.keys))
            for record in select(self.store.part_records(name), conditions, filter, check=False):
                if self.paired and not all(role in record.paired for role in self.paired):
                    continue
                self.keys.append(record.key)
                label = record.metadata.get("label")
                if label is not None and not isinstance(label, list | dict):
                    labels.add(label)
        # Like torchvision's ImageFolder: the labels of the selection, sorted, and each
        # one's index (for target_transform=lambda m: dataset.class_to_idx[m["label"]]).
        self.classes: list[Any] = sorted(labels, key=lambda label: (str(type(label)), label))
        self.class_to_idx: dict[Any, int] = {label: i for i, label in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.keys)

    def _source(self, index: int) -> StoreFile:
        if index < 0:
            index += len(self.keys)
        return self.store.part(self.shard_names[bisect.bisect_right(self.shard_starts, index) - 1])

    def shard_of(self, index: int) -> str:
        """The name of the part (the shard, or the single file) holding item `index`."""
        return self.shard_names[bisect.bisect_right(self.shard_starts, index) - 1]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        key = self.keys[index]
        source = self._source(index)
        data = source.get(key)
        record = source.record(key)
        image: Any = data
        if self.decode is not False:
            image = decode_image(data, None if self.decode is True else self.decode)
        if self.transform is not None:
            image = self.transform(image)
        images = [image, *(self._paired(source, key, role) for role in self.paired)]
        if self.transforms is not None:
            images = list(self.transforms(*images))
        metadata: Any = {**record.metadata, "key": key, "split": record.effective_split}
        if self.target_transform is not None:
            metadata = self.target_transform(metadata)
        return (*images, metadata)

    def _paired(self, source: StoreFile, key: str, role: str) -> Any:
        data = source.get_paired(key, role)
        return data if self.decode is False else decode_image(data)

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


def collate(batch: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """DataLoader's collate_fn for this dataset: images (and paired images: masks)
    stacked into one tensor each when they are tensors of one shape (else a list),
    metadata as a list of dicts.

    PyTorch's default collate would fail on metadata whose fields differ from image to
    image (boxes, optional text), which is the usual case.
    """
    if not batch:
        return [], []
    *columns, metadata = (list(column) for column in zip(*batch, strict=True))
    return (*(_stacked(images) for images in columns), metadata)


def _stacked(images: list[Any]) -> Any:
    first: Any = images[0]
    if type(first).__module__.startswith("torch") and hasattr(first, "shape"):
        import torch

        if all(image.shape == first.shape for image in images):
            return torch.stack(images)
    return images


def shards_for_rank(
    store: ImageStore | str | os.PathLike[str], rank: int, world_size: int
) -> list[str]:
    """The names of the shards rank `rank` of `world_size` reads: whole shards, balanced
    by image count (largest first, each to the least loaded rank), the same on every
    machine. A node pulls just these: `dvc pull data/images/index.json` first, then
    `dvc pull $(imageshelf shards --rank R --world-size N)`."""
    store = store if isinstance(store, ImageStore) else ImageStore(store)
    if store.layout != "sharded":
        raise ValueError(
            f"{store.path} is a single file; assigning shards needs the "
            "sharded layout (pack.layout: sharded)"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, not {rank}")
    loads = [0] * world_size
    owned: list[list[str]] = [[] for _ in range(world_size)]
    parts = store.parts
    for part in sorted(parts, key=lambda p: (-p.count, p.name)):
        target = min(range(world_size), key=lambda r: (loads[r], r))
        owned[target].append(part.name)
        loads[target] += part.count
    order = {part.name: i for i, part in enumerate(parts)}
    return sorted(owned[rank], key=order.__getitem__)


class ShardSampler:
    """A sampler for distributed training that gives each rank whole shards.

    Each rank reads only its own shards (so a node needs only those on disk); every
    epoch it shuffles the order of its shards and of the images within each, which
    keeps reads local to a few files at a time. Ranks are padded by repeating their own
    images to the same length, as DistributedSampler does, so no rank waits at the end.

        dataset = ImageDataset("data/images", shards=shards_for_rank(path, rank, world))
        sampler = ShardSampler(dataset, num_replicas=world, rank=rank)
        loader = DataLoader(dataset, batch_size=64, sampler=sampler, num_workers=4)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            ...

    `dataset` may hold every shard: then this rank's are picked here, and every rank's
    length is known, so all are padded to the longest. Or it may hold only this rank's
    (built with `shards=`, on a node that pulled only those): then the other ranks'
    lengths are unknown here; pass `num_samples` (the same on every rank, say the
    largest len() across ranks from `torch.distributed.all_reduce`) when ranks must
    stay in step.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        num_replicas: int,
        rank: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_samples: int | None = None,
    ) -> None:
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.groups, self.length = _plan(dataset, num_replicas, rank, num_samples)
        self.num_samples = num_samples
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self._yielded = 0  # indices this epoch's iterator has given so far
        self._resume: tuple[int, list[int]] | None = None  # (epoch, what is left of it)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self._resume is not None and self._resume[0] == self.epoch:
            return len(self._resume[1])
        return self.length

    def _order(self, groups: list[range], length: int, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        groups = list(groups)
        if self.shuffle:
            rng.shuffle(groups)
        order: list[int] = []
        for group in groups:
            indices = list(group)
            if self.shuffle:
                rng.shuffle(indices)
            order += indices
        if order and len(order) < length:
            order = order * math.ceil(length / len(order))
        return order[:length]

    def __iter__(self) -> Iterator[int]:
        if self._resume is not None and self._resume[0] == self.epoch:
            order = self._resume[1]
        else:
            order = self._order(self.groups, self.length, self.epoch)
        self._resume = None
        self._yielded = 0
        ahead = _fetcher(self.dataset, order)
        for index in order:
            if ahead is not None and self._yielded in ahead:
                self.dataset.store.prefetch(ahead[self._yielded])  # type: ignore[attr-defined]
            self._yielded += 1
            yield index

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Where this rank is in the epoch, to save with a checkpoint. `consumed`: how
        many samples the training loop has finished this epoch (batches x batch size);
        by default, how many this sampler has given, which a DataLoader with workers
        fetches ahead of the loop: pass `consumed` there."""
        return {
            "epoch": self.epoch,
            "consumed": self._yielded if consumed is None else consumed,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from a saved state: the next iteration gives exactly the samples of the
        saved epoch this rank had not yet given, then epochs go on as before. With
        another world size, the samples every old rank had not yet given are shared
        out among the new ranks in contiguous runs (none twice, none left out; the
        dataset must then hold every shard)."""
        if (state["seed"], state["shuffle"]) != (self.seed, self.shuffle):
            raise ValueError(
                f"the state was saved with seed={state['seed']}, shuffle={state['shuffle']}; "
                f"this sampler has seed={self.seed}, shuffle={self.shuffle}"
            )
        epoch, consumed = int(state["epoch"]), int(state["consumed"])
        self.epoch = epoch
        if state["num_replicas"] == self.num_replicas and state["rank"] == self.rank:
            self._resume = (epoch, self._order(self.groups, self.length, epoch)[consumed:])
            return
        self._resume = (epoch, self._shared_rest(int(state["num_replicas"]), consumed, epoch))

    def _shared_rest(self, old_world: int, consumed: int, epoch: int) -> list[int]:
        """This rank's run of what the `old_world` ranks had left of `epoch`, each of
        them having given `consumed` samples (ranks keep in step)."""
        if self.dataset.shard_names != [p.name for p in self.dataset.store.parts]:
            raise ValueError(
                "the world size changed: resuming needs an ImageDataset that holds every "
                "shard (the samples left move between ranks)"
            )
        left: list[int] = []
        for old_rank in range(old_world):
            groups, length = _plan(self.dataset, old_world, old_rank, self.num_samples)
            order = self._order(groups, length, epoch)
            seen = set(order[:consumed])
            left += [i for i in dict.fromkeys(order[consumed:]) if i not in seen]
        share = math.ceil(len(left) / self.num_replicas) if left else 0
        mine = left[self.rank * share : (self.rank + 1) * share] or left[:share]
        if mine and len(mine) < share:  # padded to the same length, as every epoch is
            mine = (mine * math.ceil(share / len(mine)))[:share]
        return mine


FETCH_AHEAD = 2  # shards a store read from a remote fetches beyond the one being read


def _fetcher(dataset: ImageDataset, order: list[int]) -> dict[int, list[str]] | None:
    """For a store that fetches shards (imageshelf.remote): at which positions of
    `order` a new shard begins, and the next FETCH_AHEAD shards to fetch from there."""
    if not hasattr(dataset.store, "prefetch"):
        return None
    runs: list[tuple[int, str]] = []  # (position, shard) where the order enters a shard
    for at, index in enumerate(order):
        name = dataset.shard_of(index)
        if not runs or runs[-1][1] != name:
            runs.append((at, name))
    names = [name for _, name in runs]
    ahead = {at: names[i : i + 1 + FETCH_AHEAD] for i, (at, _) in enumerate(runs)}
    return {at: list(dict.fromkeys(n)) for at, n in ahead.items()}


def _plan(
    dataset: ImageDataset, num_replicas: int, rank: int, num_samples: int | None
) -> tuple[list[range], int]:
    """The index ranges (one per shard) rank `rank` reads, and the epoch's length."""
    bounds = [*dataset.shard_starts, len(dataset.keys)]
    sizes = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(dataset.shard_names)}
    assignment = [shards_for_rank(dataset.store, r, num_replicas) for r in range(num_replicas)]
    groups = [
        range(bounds[i], bounds[i + 1])
        for i, name in enumerate(dataset.shard_names)
        if name in set(assignment[rank])
    ]
    if num_samples is not None:
        return groups, num_samples
    if all(name in sizes for names in assignment for name in names):
        return groups, max(sum(sizes[n] for n in names) for names in assignment)
    return groups, sum(len(group) for group in groups)
