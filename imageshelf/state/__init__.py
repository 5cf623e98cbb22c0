"""What stages remember between runs, outside the store: the local cache
(`cache`), what ingest learned of each incoming file (`seen`) and what the last pack
published (`pack`, data/pack-state.json).

May import: project, records, store, base, errors; outside the project: orjson, lmdb.
"""
