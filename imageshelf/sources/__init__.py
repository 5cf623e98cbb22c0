"""Where a stage's images and annotations come from: the incoming folder,
walked with every file accounted for (`walk`), when what ingest learned of it last time
still holds (`incoming`), and the tracked annotations of data/annotations/ with
params.yaml's folder rules (`tracked`).

May import: annotations, project, state, records, images, store, base, errors.
"""
