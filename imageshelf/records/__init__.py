"""What a store's records are made of, above the store format: the staged
manifest and the catalog as JSON lines (`manifest`), stable splits from a key's hash
(`splits`), and every box, polygon and keypoint checked (`geometry`, shared by the
exports, the viewer and the stages).

May import: store, base, errors; outside the project: orjson (geometry: nothing).
"""
