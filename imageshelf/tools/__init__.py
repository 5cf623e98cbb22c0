"""The tools beside the stages: two packs made at once merged (`merge`), a
sharded store compacted (`compact`).

May import: versions, project, records, store, base, errors.
"""
