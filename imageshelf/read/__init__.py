"""Reading a store: filters (`query`), the PyTorch dataset and its samplers
(`dataset`), a version read from a DVC remote without a checkout (`remote`), and the Ray
and Hugging Face readers (`ray`, `hf`). The public paths are the modules of the same
names at the top of the package (`imageshelf.dataset`, ...).

May import: repo, project, records, images, store, base, errors; outside the project:
lmdb, orjson, Pillow to decode, torch to collate, ray, pyarrow, datasets.
"""
