"""A DVC repository's files at a revision, read as its dvc.lock records them
(`source`: every md5 checked, every read bounded), the shared cache they are fetched
into (`objects`, checked as a folder others may write to), and DVC's errors in one line
(`reading`).

May import: store, base, errors; outside the project: DVC (lazily).
"""
