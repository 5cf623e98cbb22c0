"""Stage 4 of dvc.yaml: counts, sizes and labels as DVC metrics and plots."""

from pathlib import Path

import _env  # noqa: F401  (before any package: the project's environment)
import click

from imageshelf.commands import (
    CONTEXT,
    StageCommand,
    finish,
    params_option,
    path_option,
    store_option,
)
from imageshelf.params import StatsParams, load_params
from imageshelf.stages.stats import run


@click.command(cls=StageCommand, context_settings=CONTEXT)
@store_option
@path_option("--metrics", "reports/stats.json", "Where to write the metrics.", dir_okay=False)
@path_option("--plots", "reports/plots", "Folder for the plots.", file_okay=False)
@params_option
def stats(store_path: Path, metrics: Path, plots: Path, params: Path) -> None:
    """Count the store: images, bytes, formats, labels, sizes; draw a contact sheet.

    Writes DVC metrics (reports/stats.json) and plots: a label histogram, a size
    distribution, and a PNG contact sheet of thumbnails per label.
    """
    finish(run(store_path, metrics, plots, load_params(StatsParams, params)))


if __name__ == "__main__":
    stats()
