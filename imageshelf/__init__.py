"""imageshelf: version and serve image datasets as LMDB stores tracked by DVC.

Reading needs only this package's core (lmdb and orjson):

    from imageshelf import ImageStore
    store = ImageStore("data/images.lmdb")      # or the sharded folder, data/images
    store.get("cats/001.jpg")                    # the original bytes

`imageshelf.read.dataset` adds a PyTorch-style dataset (PyTorch optional); the pipeline's
stages (`imageshelf.stages`), the tools' CLI (`imageshelf.cli.main`) and everything that
needs Pillow, click, tqdm or DVC come with the `pipeline` extra.
"""

from .store import ImageStore

__version__ = "0.2.0"
__all__ = ["ImageStore", "__version__"]
