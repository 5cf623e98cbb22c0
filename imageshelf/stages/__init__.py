"""The work of the pipeline's four stages, a module each (pack: a folder), as
dvc.yaml runs them: ingest -> pack -> validate -> stats.

Pack's run is in pack/__init__.py and its parts beside it: what it reads (`inputs`),
its plan (`plan`, `changes`), the publish of that plan (`publish`, `write`) and what it
says (`outcome`); what it remembers between runs is state/pack.py.

`pipeline/<stage>.py` is the thin click script DVC runs; it reads params.yaml and
calls `run` here. These modules may use everything in the library, never click: a
problem a user can fix is a ShelfError, which the script prints as one line.
"""
