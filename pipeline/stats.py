"""Stage 4 of dvc.yaml: counts, sizes and labels as DVC metrics and plots."""

import _env  # noqa: F401  (before any package: the project's environment)
import click

from imageshelf.cli.options import CONTEXT, StageCommand, finish, pass_project
from imageshelf.project.params import QualityParams, StatsParams
from imageshelf.project.paths import Project
from imageshelf.stages.stats import run


@click.command(cls=StageCommand, context_settings=CONTEXT)
@pass_project("store", "metrics", "plots", "findings", "reviewed")
def stats(project: Project) -> None:
    """Count the store: images, bytes, formats, labels, sizes; draw a contact sheet; say
    what is wrong with it: exact and near duplicates, leaks between splits, dark, light,
    blurry, flat, grayscale, odd-sized and unreadable images (docs/QUALITY.md).

    Writes DVC metrics (reports/stats.json, the findings counted per split under
    `quality`), every finding by key (reports/quality.json) and plots: a label
    histogram, a size distribution, and a PNG contact sheet of thumbnails per label.
    Findings reviewed as not a problem (data/reviewed.jsonl) are set aside.
    """
    settings = project.settings(StatsParams), project.settings(QualityParams)
    paths = project.store, project.metrics, project.plots, project.findings
    finish(run(*paths, *settings, reviewed=project.reviewed))


if __name__ == "__main__":
    stats()
