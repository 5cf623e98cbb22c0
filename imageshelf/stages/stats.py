"""Stats: counts, sizes and labels of the store, as DVC metrics and plots.

The contact sheet decodes a few images to draw thumbnails; that is for people to look
at. The stored bytes are only read, never changed.
"""

from __future__ import annotations

import io
import math
import re
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..base.atomic import write_bytes, write_json, write_text
from ..images.recognise import NotAnImageError, picture  # and HEIC, JPEG XL with the formats extra
from ..project.params import QualityParams, StatsParams
from ..quality.audit import audit, quality_line
from ..state import cache
from ..store import ImageStore, StoreFile
from .result import StageResult

NO_LABEL = "(no label)"
NO_SPLIT = "(no split)"
NO_CATEGORY = "(no category)"


def label_of(metadata: dict[str, Any]) -> str:
    label = metadata.get("label")
    return NO_LABEL if label in (None, "") else str(label)


def _percentile(ordered: list[int], fraction: float) -> int:
    if not ordered:
        return 0
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def _size_bin(size: int) -> tuple[int, str]:
    """Power-of-two size bins: (sort order, label)."""
    kib = max(size, 1) / 1024
    upper = 1
    while upper < kib:
        upper *= 2
    lower = upper // 2
    return upper, ("< 1 KiB" if upper == 1 else f"{lower}-{upper} KiB")


def _summary(file: StoreFile, samples_per_label: int) -> dict[str, Any]:
    """One pass over one part's records (no image bytes): what stats needs of it, in a
    form that adds up across parts and is kept in the cache by the part's content."""
    sizes = array("q")
    formats: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    splits: dict[str, Counter[str]] = defaultdict(Counter)  # split -> label -> count
    samples: dict[str, list[str]] = defaultdict(list)
    widths, heights = array("q"), array("q")
    boxes: dict[str, Counter[str]] = defaultdict(Counter)  # split -> category -> objects
    per_image: Counter[str] = Counter()  # objects in an image -> images (text: JSON keys)
    for record in file.records():
        info = record.info
        sizes.append(info.size)
        widths.append(info.width)
        heights.append(info.height)
        formats[info.format] += 1
        label = label_of(record.metadata)
        labels[label] += 1
        split = record.effective_split or NO_SPLIT
        splits[split][label] += 1
        per_image[str(_count_objects(record.metadata.get("objects"), boxes[split]))] += 1
        if len(samples[label]) < samples_per_label:
            samples[label].append(record.key)
    return {
        "sizes": sorted(sizes),
        "width": [min(widths, default=0), max(widths, default=0)],
        "height": [min(heights, default=0), max(heights, default=0)],
        "formats": formats,
        "labels": labels,
        "splits": splits,
        "samples": samples,
        "boxes": {split: counts for split, counts in boxes.items() if counts},
        "per_image": per_image,
    }


def _count_objects(objects: Any, counts: Counter[str]) -> int:
    """Count an image's `objects` by category into `counts`; how many it has."""
    if not isinstance(objects, list):
        return 0
    for entry in objects:
        category = entry.get("category") if isinstance(entry, dict) else None
        counts[NO_CATEGORY if category in (None, "") else str(category)] += 1
    return len(objects)


def _objects(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The objects of every part: by split and category, and images by how many they
    hold (metrics), as the plots draw them."""
    boxes: dict[str, Counter[str]] = defaultdict(Counter)
    per_image: Counter[int] = Counter()
    for summary in summaries:
        for split, counts in summary["boxes"].items():
            boxes[split].update(counts)
        per_image.update({int(n): images for n, images in summary["per_image"].items()})
    total = sum(n * images for n, images in per_image.items())
    metrics = {
        "total": total,
        "images_with": sum(images for n, images in per_image.items() if n),
        "max_per_image": max((n for n in per_image if n), default=0),
        "by_split": {
            split: dict(sorted(counts.items())) for split, counts in sorted(boxes.items())
        },
    }
    return {"metrics": metrics, "boxes": boxes, "per_image": per_image}


def _summaries(store: ImageStore, samples_per_label: int) -> list[dict[str, Any]]:
    """Each part's summary, from the cache where its content was summed up before."""
    summaries = []
    for part in store.parts:
        name = f"parts/{part.content_digest}.stats2-{samples_per_label}.json"
        summary = cache.load(name)
        if summary is None:
            summary = _summary(store.part(part.name), samples_per_label)
            cache.save(name, summary)
        summaries.append(summary)
    return summaries


def collect(store: ImageStore, samples_per_label: int) -> dict[str, Any]:
    """Every figure the stage reports, part by part: a part seen before (the same content
    digest) is not read again."""
    sizes: list[int] = []
    formats: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    splits: dict[str, Counter[str]] = defaultdict(Counter)
    candidates: dict[str, list[str]] = defaultdict(list)
    widths: list[int] = []
    heights: list[int] = []
    summaries = _summaries(store, samples_per_label)
    for summary in summaries:
        if summary["sizes"]:
            sizes += summary["sizes"]
            widths += summary["width"]
            heights += summary["height"]
        formats.update(summary["formats"])
        labels.update(summary["labels"])
        for split, counts in summary["splits"].items():
            splits[split].update(counts)
        for label, keys in summary["samples"].items():
            candidates[label] += keys
    ordered = sorted(sizes)  # sorted runs, one per part: a merge
    bins: Counter[tuple[int, str]] = Counter()
    for size, count in Counter(ordered).items():
        bins[_size_bin(size)] += count
    samples = {label: sorted(keys)[:samples_per_label] for label, keys in candidates.items()}
    metrics = {
        "count": len(ordered),
        "total_bytes": sum(ordered),
        "labels": len(labels),
        "by_format": dict(sorted(formats.items())),
        "by_label": dict(sorted(labels.items())),
        "by_split": {
            split: {"count": sum(counts.values()), "by_label": dict(sorted(counts.items()))}
            for split, counts in sorted(splits.items())
        },
        "width": {"min": min(widths, default=0), "max": max(widths, default=0)},
        "height": {"min": min(heights, default=0), "max": max(heights, default=0)},
        "size_bytes": {
            "min": ordered[0] if ordered else 0,
            "p50": _percentile(ordered, 0.50),
            "p90": _percentile(ordered, 0.90),
            "p99": _percentile(ordered, 0.99),
            "max": ordered[-1] if ordered else 0,
            "mean": round(sum(ordered) / len(ordered)) if ordered else 0,
        },
    }
    objects = _objects(summaries)
    metrics["objects"] = objects["metrics"]
    return {
        "metrics": metrics,
        "labels": labels,
        "bins": bins,
        "samples": samples,
        "boxes": objects["boxes"],
        "per_image": objects["per_image"],
    }


def labels_csv(labels: Counter[str]) -> str:
    rows = sorted(labels.items(), key=lambda item: (-item[1], item[0]))
    return "label,count\n" + "".join(f"{_csv(label)},{count}\n" for label, count in rows)


def sizes_csv(bins: Counter[tuple[int, str]]) -> str:
    rows = sorted(bins.items())
    return "size,count\n" + "".join(f"{label},{count}\n" for (_, label), count in rows)


_FORMULA_START = ("=", "+", "-", "@")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def plot_text(label: str) -> str:
    """A label as the plots may show it. Labels come from annotation files and stores
    from elsewhere: `dvc plots show` embeds them in an HTML page, spreadsheets open the
    CSV. So `<` and `>` become the look-alikes `‹` and `›` (no markup, no `</script>`),
    control characters become `\ufffd`, and a label a spreadsheet would run as a
    formula (`=`, `+`, `-`, `@` first, other than a number) gets a leading `'`."""
    text = label.replace("<", "\u2039").replace(">", "\u203a")
    text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        text = "'" + text
    return text


def _csv(value: str) -> str:
    value = plot_text(value)
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def contact_sheet(
    store: ImageStore,
    labels: Counter[str],
    samples: dict[str, list[str]],
    thumb: int,
    per_label: int,
    max_labels: int,
) -> Image.Image:
    """A grid: one row per label (most frequent first), a few thumbnails in each."""
    chosen = sorted(labels, key=lambda label: (-labels[label], label))[:max_labels]
    font = ImageFont.load_default()
    text_width, pad = 160, 4
    cell = thumb + pad
    width = text_width + per_label * cell + pad
    height = max(1, len(chosen)) * cell + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    if not chosen:
        draw.text((pad, pad), "the store is empty", fill="black", font=font)
    for row, label in enumerate(chosen):
        top = pad + row * cell
        name = label if len(label) <= 22 else label[:21] + "…"
        draw.text((pad, top + thumb // 2 - 6), f"{name} ({labels[label]})", fill="black", font=font)
        for column, key in enumerate(samples[label]):
            left = text_width + column * cell
            sheet.paste(_thumbnail(store.get(key), thumb), (left, top))
    return sheet


def _thumbnail(data: bytes, size: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), (235, 235, 235))
    try:
        small = picture(data, size).convert("RGB")  # a store from elsewhere: bounded
    except NotAnImageError:  # a picture that will not decode shows as a "?" tile
        ImageDraw.Draw(tile).text((size // 2 - 3, size // 2 - 6), "?", fill="red")
        return tile
    tile.paste(small, ((size - small.width) // 2, (size - small.height) // 2))
    return tile


def boxes_csv(boxes: dict[str, Counter[str]]) -> str:
    """Objects per category and split, the categories with the most first."""
    totals: Counter[str] = Counter()
    for counts in boxes.values():
        totals.update(counts)
    rows = [
        (category, split, counts[category])
        for category in sorted(totals, key=lambda c: (-totals[c], c))
        for split, counts in sorted(boxes.items())
        if counts[category]
    ]
    return "category,split,objects\n" + "".join(
        f"{_csv(category)},{_csv(split)},{n}\n" for category, split, n in rows
    )


def per_image_csv(per_image: Counter[int]) -> str:
    rows = sorted(per_image.items())
    return "objects,images\n" + "".join(f"{n},{images}\n" for n, images in rows)


def write_plots(plots_dir: Path, collected: dict[str, Any], sheet: bytes) -> None:
    write_text(plots_dir / "labels.csv", labels_csv(collected["labels"]))
    write_text(plots_dir / "sizes.csv", sizes_csv(collected["bins"]))
    write_text(plots_dir / "objects.csv", boxes_csv(collected["boxes"]))
    write_text(plots_dir / "objects_per_image.csv", per_image_csv(collected["per_image"]))
    write_bytes(plots_dir / "contact_sheet.png", sheet)


def contact_sheet_png(store: ImageStore, collected: dict[str, Any], params: StatsParams) -> bytes:
    """The contact sheet as PNG bytes, kept in the cache by the store's content and the
    settings: with nothing new, no image is read (nor a shard opened) to draw it again."""
    name = (
        f"contact-{store.header.content_digest}-{params.thumbnail_px}-"
        f"{params.thumbnails_per_label}-{params.max_labels}.png"
    )
    cached = cache.load_bytes(name)
    if cached is not None:
        return cached
    sheet = contact_sheet(
        store,
        collected["labels"],
        collected["samples"],
        params.thumbnail_px,
        params.thumbnails_per_label,
        params.max_labels,
    )
    png = io.BytesIO()
    sheet.save(png, "PNG", optimize=False)
    cache.save_bytes(name, png.getvalue())
    return png.getvalue()


@dataclass
class Stats(StageResult):
    """The metrics the stats stage wrote."""

    metrics: dict[str, Any]

    def summary(self) -> str:
        m = self.metrics
        formats = ", ".join(f"{k} {v}" for k, v in m["by_format"].items()) or "none"
        return (
            f"stats: {m['count']} images, {m['total_bytes'] / 1e6:,.1f} MB, {m['labels']} "
            f"labels, formats {formats}\n{quality_line(m.get('quality'))}"
        )

    def report(self) -> dict[str, Any]:
        return self.metrics


def run(
    store_path: Path,
    metrics: Path,
    plots: Path,
    findings: Path,
    params: StatsParams,
    quality: QualityParams | None = None,
    reviewed: Path | None = None,
) -> Stats:
    """The stats stage: count the store, say what is wrong with it (less what the
    `reviewed` file sets aside), write the metrics (the findings counted under
    `quality`), every finding by key and the plots."""
    store = ImageStore(store_path)
    found = audit(store, quality or QualityParams(), reviewed=reviewed)  # a bad line: first
    collected = collect(store, params.thumbnails_per_label)
    collected["metrics"]["quality"] = found.metrics()
    sheet = contact_sheet_png(store, collected, params)
    write_json(metrics, collected["metrics"])
    write_json(findings, found.report())
    write_plots(plots, collected, sheet)
    return Stats(collected["metrics"])
