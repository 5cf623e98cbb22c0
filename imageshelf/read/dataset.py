"""A PyTorch-style dataset over an image store. PyTorch itself is never imported here.

    from torch.utils.data import DataLoader
    from imageshelf.read.dataset import ImageDataset, collate

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
import hashlib
import heapq
import io
import math
import os
import random
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson

from ..errors import ShelfError
from ..images.decoding import DecodeCostError, check_decode_cost
from ..store import ImageStore, StoreFile
from .columnar import select_columnar
from .query import Filter, check_store_fields, select


def decode_image(data: bytes, mode: str | None = None) -> Any:
    """The image in `data` as a loaded PIL image, converted to `mode` if given.

    Bounded: Pillow's pixel limit (Image.MAX_IMAGE_PIXELS) holds, and an image whose
    decoding would cost without bound under it (images/decoding.py) is a DecodeCostError."""
    from PIL import Image

    from ..images.recognise import PLUGINS  # noqa: F401  # HEIC and JPEG XL, with the formats extra

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
        collection of values, or test}. See imageshelf/read/query.py.
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
    catalog: the folder of the catalog's columnar files (default: `catalog` beside the
        store, where pack writes it): with DuckDB installed (the sql extra), a broad
        `where` is answered from them (read/columnar.py); without, from the records.
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
        where: Filter = None,
        filter: Callable[[dict[str, Any]], bool] | None = None,  # noqa: A002 - the usual name
        shards: Sequence[str] | None = None,
        paired: str | Sequence[str] = (),
        transforms: Callable[..., Sequence[Any]] | None = None,
        catalog: str | os.PathLike[str] | None = None,
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
        self._classes: list[Any] | None = None
        self._later: tuple[Filter, Path | None, list[str]] | None = None  # labels to ask for
        folder = None if catalog is None else Path(catalog)
        labels = self._select(names, conditions, filter, folder)
        if labels is not None:
            self._classes = sorted(labels, key=lambda label: (str(type(label)), label))

    # Like torchvision's ImageFolder: the labels of the selection, sorted, and each one's
    # index (for target_transform=lambda m: dataset.class_to_idx[m["label"]]). Where the
    # columnar files chose the keys, they are asked for the labels only when first used.
    @property
    def classes(self) -> list[Any]:
        if self._classes is None:
            labels = self._labels()
            self._classes = sorted(labels, key=lambda label: (str(type(label)), label))
        return self._classes

    @property
    def class_to_idx(self) -> dict[Any, int]:
        return {label: i for i, label in enumerate(self.classes)}

    def _labels(self) -> set[Any]:
        assert self._later is not None
        conditions, catalog, names = self._later
        found = select_columnar(self.store, conditions, catalog, names, self.paired, "distinct")
        if found is not None:
            return {label for name in names for label in found.labels.get(name, ())}
        labels = set()  # the files changed since: the selected images' own records
        for index, key in enumerate(self.keys):
            label = self._source(index).record(key).metadata.get("label")
            if label is not None and not isinstance(label, list | dict):
                labels.add(label)
        return labels

    def _select(
        self,
        names: list[str],
        conditions: Filter,
        test: Callable[[dict[str, Any]], bool] | None,
        catalog: Path | None,
    ) -> set[Any] | None:
        """Fill the keys of the parts `names` that match, part by part; their labels
        (None: to be asked of the columnar files when first used). From the columnar
        files where they answer (read/columnar.py), else the records."""
        labels: set[Any] = set()
        conditions, keep = _findings(self.store, conditions)  # leaks=False...
        check_store_fields(self.store, conditions)  # once, over every part
        columnar = None
        if test is None:  # a function of the fields needs the records
            each = "each" if keep is not None else ""
            columnar = select_columnar(self.store, conditions, catalog, names, self.paired, each)
        if columnar is not None and keep is None:
            for name in names:
                self.shard_names.append(name)
                self.shard_starts.append(len(self.keys))
                self.keys.extend(columnar.keys[name])
            self._later = (conditions, catalog, names)
            return None
        for name in names:
            self.shard_names.append(name)
            self.shard_starts.append(len(self.keys))
            found: Iterator[tuple[str, Any]]
            if columnar is not None:
                given = columnar.labels.get(name) or repeat(None)
                found = zip(columnar.keys[name], given, strict=False)
            else:
                found = self._part(name, conditions, test)
            for key, label in found:
                if keep is None or keep(key):
                    self.keys.append(key)
                    if label is not None and not isinstance(label, list | dict):
                        labels.add(label)
        return labels

    def _part(
        self, name: str, conditions: Filter, test: Callable[[dict[str, Any]], bool] | None
    ) -> Iterator[tuple[str, Any]]:
        """(key, label) of the part's records matching, read one by one."""
        for record in select(self.store.part_records(name), conditions, test, check=False):
            if all(role in record.paired for role in self.paired):
                yield record.key, record.metadata.get("label")

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


def _findings(store: ImageStore, where: Filter) -> tuple[Filter, Callable[[str], bool] | None]:
    """The selection without what names a finding (`leaks=false`), and a test of a key
    for that: the store is audited only then (imported then, too: a dataset that names
    no finding loads nothing of it)."""
    from ..quality.audit import findings_filter

    return findings_filter(store, where)


def _with_split(where: Filter, split: str | Sequence[str] | None) -> Filter:
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
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, not {rank}")
    owned = _assignment(store, world_size)
    return owned[rank] if rank < len(owned) else []


def _assignment(store: ImageStore, world_size: int) -> list[list[str]]:
    """Every rank's shards (as shards_for_rank gives them), for the first
    min(world_size, shards) ranks: the others get none. A heap of loads, so the cost
    follows the shards, never a world size alone."""
    if store.layout != "sharded":
        raise ValueError(
            f"{store.path} is a single file; assigning shards needs the "
            "sharded layout (pack.layout: sharded)"
        )
    parts = store.parts
    ranks = min(world_size, len(parts))  # with more ranks than shards, each of the first
    loads = [(0, rank) for rank in range(ranks)]  # gets one (ties go to the lowest rank)
    owned: list[list[str]] = [[] for _ in range(ranks)]
    for part in sorted(parts, key=lambda p: (-p.count, p.name)):
        load, target = heapq.heappop(loads)
        owned[target].append(part.name)
        heapq.heappush(loads, (load + part.count, target))
    order = {part.name: i for i, part in enumerate(parts)}
    return [sorted(names, key=order.__getitem__) for names in owned]


class SamplerError(ShelfError, ValueError):
    """A ShardSampler, or a sampler state to resume from, that cannot be used; the
    message names the setting or the field."""


# The fields of a sampler state, in the order they are checked. `length` (this rank's
# epoch) and `selection` (what the epoch's order is made of) tie a state to the version
# of the store and the selection it was taken from.
STATE_FIELDS = ("shuffle", "seed", "epoch", "num_replicas", "rank", "length", "consumed")
LARGEST = 2**63 - 1  # no epoch number, seed or count of a real run reaches it


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
    stay in step. `num_replicas` is at most the store's number of shards: a rank
    without a shard would have nothing to give.
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
        _check_world(dataset.store, num_replicas, rank, "")
        if num_samples is not None and not _whole(num_samples, 0, LARGEST):
            raise SamplerError(
                f"num_samples must be a whole number of samples, not {_shown(num_samples)}"
            )
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.groups, self.length = _plan(
            dataset, _assignment(dataset.store, num_replicas), rank, num_samples
        )
        self.num_samples = num_samples
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self._yielded = 0  # indices this epoch's iterator has given so far
        self._resume: tuple[int, list[int]] | None = None  # (epoch, what is left of it)
        self._selection: str | None = None  # computed once, on the first state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self._resume is not None and self._resume[0] == self.epoch:
            return len(self._resume[1])
        return self.length

    def _base_order(self, groups: list[range], epoch: int) -> list[int]:
        """Every index of `groups` once, in epoch `epoch`'s order (before padding)."""
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
        return order

    def _order(self, groups: list[range], length: int, epoch: int) -> list[int]:
        order = self._base_order(groups, epoch)
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

    def selection(self) -> str:
        """The digest of what this sampler's epochs are made of: the store's shards
        (name and image count, which decide the rank of each) and the keys the dataset
        iterates in each shard it holds (its split, where=, filter=, shards=). Another
        version of the store, or another selection, gives another digest."""
        if self._selection is None:
            self._selection = _selection_of(self.dataset, None)
        return self._selection

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Where this rank is in the epoch, to save with a checkpoint. `consumed`: how
        many samples the training loop has finished this epoch (batches x batch size);
        by default, how many this sampler has given, which a DataLoader with workers
        fetches ahead of the loop: pass `consumed` there. The state carries this rank's
        epoch length and the digest of the selection it was taken from (`selection()`),
        so it resumes only where it means the same samples."""
        consumed = self._yielded if consumed is None else consumed
        if not _whole(consumed, 0, self.length):
            raise SamplerError(
                f"consumed must be a whole number from 0 to {self.length} (this epoch's "
                f"length), not {_shown(consumed)}"
            )
        return {
            "epoch": self.epoch,
            "consumed": consumed,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "length": self.length,
            "selection": self.selection(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go on from a saved state: the next iteration gives exactly the samples of the
        saved epoch this rank had not yet given, then epochs go on as before. Ranks keep
        in step (each has given `consumed`), so with the same world size any rank's
        state will do. With another world size, the samples every old rank had not yet
        given are shared out among the new ranks in contiguous runs (none twice, none
        left out; the dataset must then hold every shard). Every field is checked
        first: a state of another version of the store or another selection, seed or
        epoch length is a SamplerError that says which, and this sampler is left as it
        was."""
        checked = _checked_state(state, self.dataset.store)
        if (checked["seed"], checked["shuffle"]) != (self.seed, self.shuffle):
            raise SamplerError(
                f"the state was saved with seed={checked['seed']}, "
                f"shuffle={checked['shuffle']}; this sampler has seed={self.seed}, "
                f"shuffle={self.shuffle}: give the sampler the state's seed and shuffle"
            )
        epoch, consumed, length = checked["epoch"], checked["consumed"], checked["length"]
        old_world, old_rank = checked["num_replicas"], checked["rank"]
        holds_all = self.dataset.shard_names == [p.name for p in self.dataset.store.parts]
        # The saving rank's dataset was this one's, or (this one holding every shard)
        # its own shards only, built with shards=.
        selections = {self.selection()}
        if holds_all and (old_world, old_rank) != (self.num_replicas, self.rank):
            owned = _assignment(self.dataset.store, old_world)[old_rank]
            selections.add(_selection_of(self.dataset, set(owned)))
        if old_world == self.num_replicas:
            _check_version(state["selection"], selections, old_rank != self.rank)
            if length != self.length:
                raise SamplerError(
                    f"the state's epoch had {length} samples for rank {old_rank}, this "
                    f"sampler's has {self.length}: num_samples changed since it was saved; "
                    "give the sampler the num_samples it had"
                )
            rest = self._order(self.groups, self.length, epoch)[consumed:]
        else:
            if not holds_all:
                raise SamplerError(
                    "the world size changed: resuming needs an ImageDataset that holds "
                    "every shard (the samples left move between ranks)"
                )
            _check_version(state["selection"], selections, False)
            rest = self._shared_rest(old_world, consumed, epoch, length)
        self.epoch, self._resume = epoch, (epoch, rest)

    def _shared_rest(self, old_world: int, consumed: int, epoch: int, length: int) -> list[int]:
        """This rank's run of what the `old_world` ranks had left of `epoch`, each of
        them having given `consumed` of its `length` samples (ranks keep in step)."""
        assignment = _assignment(self.dataset.store, old_world)
        left: list[int] = []
        for old_rank in range(old_world):
            groups, _ = _plan(self.dataset, assignment, old_rank, length)
            order = self._base_order(groups, epoch)
            # The old rank gave order cycled to `length`: what it had not given is the
            # part of one pass past `consumed` (the padding repeats what it gave).
            left += order[consumed : min(length, len(order))]
        share = math.ceil(len(left) / self.num_replicas) if left else 0
        mine = left[self.rank * share : (self.rank + 1) * share] or left[:share]
        if mine and len(mine) < share:  # padded to the same length, as every epoch is
            mine = (mine * math.ceil(share / len(mine)))[:share]
        return mine


def _whole(value: Any, low: int, high: int) -> bool:
    """Whether `value` is an int (not a bool) in low..high."""
    return type(value) is int and low <= value <= high


def _shown(value: Any) -> str:
    """A value for a one-line message: short, even for a forged one."""
    if type(value) is int and not -(10**18) < value < 10**18:
        return f"a {value.bit_length()}-bit number"
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"
    return f"a {type(value).__name__}"


def _check_world(store: ImageStore, world: Any, rank: Any, what: str) -> None:
    """`world` ranks fit the store (each reads whole shards, so at most one rank per
    shard), and `rank` is one of them."""
    if store.layout != "sharded":
        raise ValueError(
            f"{store.path} is a single file; assigning shards needs the "
            "sharded layout (pack.layout: sharded)"
        )
    shards = len(store.parts)
    if not _whole(world, 1, shards):
        raise SamplerError(
            f"{what}num_replicas must be a whole number from 1 to {shards} (the store's "
            f"shards: each rank reads whole shards), not {_shown(world)}"
        )
    if not _whole(rank, 0, world - 1):
        raise SamplerError(f"{what}rank must be from 0 to {world - 1}, not {_shown(rank)}")


def _checked_state(state: Any, store: ImageStore) -> dict[str, Any]:
    """The fields of a saved sampler state, each of its type and in its range; a
    SamplerError naming the first that is not."""
    where = "sampler state: "
    if not isinstance(state, Mapping):
        raise SamplerError(
            f"{where}a state is a dict, as state_dict() gives it, not {_shown(state)}"
        )
    if "selection" not in state or "length" not in state:
        raise SamplerError(
            f"{where}no 'selection' or 'length': it was saved by an older imageshelf, "
            "without the version of the store it was taken from; start its epoch again "
            "(sampler.set_epoch(state['epoch']))"
        )
    unknown = [key for key in state if key not in (*STATE_FIELDS, "selection")]
    missing = [name for name in STATE_FIELDS if name not in state]
    if unknown or missing:
        name = _shown(unknown[0]) if unknown else repr(missing[0])
        raise SamplerError(
            f"{where}{'unknown' if unknown else 'missing'} field {name}: give the dict "
            "state_dict() saved, unchanged"
        )
    if type(state["shuffle"]) is not bool:
        raise SamplerError(f"{where}shuffle must be true or false, not {_shown(state['shuffle'])}")
    for name in ("seed", "epoch", "length"):
        if not _whole(state[name], -LARGEST if name == "seed" else 0, LARGEST):
            raise SamplerError(f"{where}{name} must be a whole number, not {_shown(state[name])}")
    _check_world(store, state["num_replicas"], state["rank"], where)
    if not _whole(state["consumed"], 0, state["length"]):
        raise SamplerError(
            f"{where}consumed must be a whole number from 0 to {state['length']} (the "
            f"saved epoch's length), not {_shown(state['consumed'])}"
        )
    selection = state["selection"]
    if not (isinstance(selection, str) and len(selection) == 64 and _is_hex(selection)):
        raise SamplerError(
            f"{where}selection must be 64 lowercase hex digits, not {_shown(selection)}"
        )
    return {name: state[name] for name in STATE_FIELDS}


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _check_version(saved: str, here: set[str], other_rank: bool) -> None:
    if saved not in here:
        also = " (or another rank's, whose shards this dataset does not hold)" if other_rank else ""
        raise SamplerError(
            f"sampler state: taken from another version of the store or another "
            f"selection (split, where=, filter=, shards=){also}, so resuming would repeat "
            "or skip samples; start its epoch again (sampler.set_epoch(state['epoch']))"
        )


def _selection_of(dataset: ImageDataset, shards: set[str] | None) -> str:
    """sha256 of the store's shards (name, image count) and of the keys `dataset`
    iterates in each shard it holds (only those in `shards`, if given)."""
    bounds = [*dataset.shard_starts, len(dataset.keys)]
    held = [
        [name, dataset.keys[bounds[i] : bounds[i + 1]]]
        for i, name in enumerate(dataset.shard_names)
        if shards is None or name in shards
    ]
    parts = [[part.name, part.count] for part in dataset.store.parts]
    return hashlib.sha256(orjson.dumps([parts, held])).hexdigest()


FETCH_AHEAD = 2  # shards a store read from a remote fetches beyond the one being read


def _fetcher(dataset: ImageDataset, order: list[int]) -> dict[int, list[str]] | None:
    """For a store that fetches shards (imageshelf.read.remote): at which positions of
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
    dataset: ImageDataset, assignment: list[list[str]], rank: int, num_samples: int | None
) -> tuple[list[range], int]:
    """The index ranges (one per shard) rank `rank` reads, and the epoch's length."""
    bounds = [*dataset.shard_starts, len(dataset.keys)]
    sizes = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(dataset.shard_names)}
    mine = set(assignment[rank])
    groups = [
        range(bounds[i], bounds[i + 1])
        for i, name in enumerate(dataset.shard_names)
        if name in mine
    ]
    if num_samples is not None:
        return groups, num_samples
    if all(name in sizes for names in assignment for name in names):
        return groups, max(sum(sizes[n] for n in names) for names in assignment)
    return groups, sum(len(group) for group in groups)
