"""`from imageshelf.remote import ...`, as the README writes it: the public path of
imageshelf/read/remote.py, where the reader lives."""

from .read.remote import RemoteError, RemoteStore, default_cache, open_store, store_of

__all__ = [
    "RemoteError",
    "RemoteStore",
    "default_cache",
    "open_store",
    "store_of",
]
