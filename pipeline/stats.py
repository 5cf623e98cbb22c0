"""Stage 4 of dvc.yaml: counts, sizes and labels as DVC metrics and plots."""

import _env  # noqa: F401  (before any package: the project's environment)
import click

from imageshelf.cli.options import CONTEXT, StageCommand, finish, pass_project
from imageshelf.project.params import StatsParams
from imageshelf.project.paths import Project
from imageshelf.stages.stats import run


@click.command(cls=StageCommand, context_settings=CONTEXT)
@pass_project("store", "metrics", "plots")
def stats(project: Project) -> None:
    """Count the store: images, bytes, formats, labels, sizes; draw a contact sheet.

    Writes DVC metrics (reports/stats.json) and plots: a label histogram, a size
    distribution, and a PNG contact sheet of thumbnails per label.
    """
    finish(run(project.store, project.metrics, project.plots, project.settings(StatsParams)))


if __name__ == "__main__":
    stats()
