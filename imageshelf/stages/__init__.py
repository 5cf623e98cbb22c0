"""The work of the pipeline's four stages, one module each, as dvc.yaml runs them:

    ingest -> pack -> validate -> stats

`pipeline/<stage>.py` is the thin click script DVC runs; it reads params.yaml and
calls `run` here. These modules may use everything in the library, never click: a
problem a user can fix is a ShelfError, which the script prints as one line.
"""
