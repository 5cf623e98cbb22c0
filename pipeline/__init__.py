"""Version and serve image datasets: a DVC pipeline around one LMDB image store."""

__version__ = "0.1.0"
