"""The dataset's versions: a revision resolved (one door for every
user's revision), the store dvc.lock records or one at any revision (`history`), and
the catalog every version carries, which `diff` compares (`catalog`).

May import: repo, project, records, store, base, errors; outside the project: DVC and
scmrepo (lazily).
"""
