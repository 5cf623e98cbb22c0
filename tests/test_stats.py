"""Stats: the numbers a user reads in `dvc metrics show` and the plots."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from conftest import make_image, put, report, stage


def test_metrics_plots_and_contact_sheet(workspace):
    put(
        Path("data/incoming"),
        {
            "cat/1.png": make_image("PNG", (40, 30), seed=1),
            "cat/2.jpg": make_image("JPEG", (50, 20), seed=2),
            "dog/3.gif": make_image("GIF", (10, 60), seed=3),
            "unlabelled.bmp": make_image("BMP", (20, 20), seed=4),
            "labels.csv": "path,label\ncat/1.png,cat\ncat/2.jpg,cat\ndog/3.gif,dog\n",
        },
    )
    for name in ("ingest", "pack", "stats"):
        assert stage(name).exit_code == 0
    metrics = report("stats")
    sizes = sorted(
        len(make_image(f, s, seed=i))
        for f, s, i in (
            ("PNG", (40, 30), 1),
            ("JPEG", (50, 20), 2),
            ("GIF", (10, 60), 3),
            ("BMP", (20, 20), 4),
        )
    )
    assert metrics["count"] == 4 and metrics["total_bytes"] == sum(sizes)
    assert metrics["by_label"] == {"(no label)": 1, "cat": 2, "dog": 1}
    assert metrics["by_format"] == {"bmp": 1, "gif": 1, "jpeg": 1, "png": 1}
    assert metrics["width"] == {"min": 10, "max": 50}
    assert metrics["height"] == {"min": 20, "max": 60}
    assert metrics["size_bytes"]["min"] == sizes[0] and metrics["size_bytes"]["max"] == sizes[-1]
    assert Path("reports/plots/labels.csv").read_text().splitlines() == [
        "label,count",
        "cat,2",
        "(no label),1",
        "dog,1",
    ]
    with Image.open("reports/plots/contact_sheet.png") as sheet:
        assert sheet.format == "PNG"
        assert sheet.height == 3 * (64 + 4) + 4  # three label rows of 64 px thumbnails


def test_stats_of_an_empty_store(workspace):
    for name in ("ingest", "pack", "stats"):
        assert stage(name).exit_code == 0
    assert report("stats")["count"] == 0
    assert Path("reports/plots/contact_sheet.png").exists()


def test_a_16_bit_image_gets_a_thumbnail_not_a_white_tile():
    import io

    from PIL import Image

    from imageshelf.stages.stats import _thumbnail

    image = Image.new("I;16", (64, 64))
    image.putdata([(x * 1024) % 65536 for x in range(64 * 64)])  # a gradient over 16 bits
    out = io.BytesIO()
    image.save(out, "TIFF")
    low, high = _thumbnail(out.getvalue(), 32).convert("L").getextrema()
    assert low == 0 and high == 255  # the full range, not everything clipped to white
