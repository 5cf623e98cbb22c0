"""The work of the pipeline's four stages, a module each, as dvc.yaml runs them:

    ingest -> pack -> validate -> stats

Pack's run is in pack.py and its parts beside it (pack_*.py): what it reads, its plan,
the publish of that plan, and what it remembers between runs.

`pipeline/<stage>.py` is the thin click script DVC runs; it reads params.yaml and
calls `run` here. These modules may use everything in the library, never click: a
problem a user can fix is a ShelfError, which the script prints as one line.
"""
