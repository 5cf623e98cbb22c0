"""`imageshelf view`: a local web page over any version of the store.

A Flask app (the `view` extra) over read-only stores: the gallery (`gallery.py`, pages
by cursor, never a list of every key), one image with its annotations drawn
(`shapes.py`), the difference between two versions (the catalogs' diff), thumbnails
made on demand and cached by content hash (`thumbs.py`), and what is wrong with the
data (`quality.py`: the version's audit, made once, and a page per kind of finding).
`stores.py` opens the store of the workspace or of a git revision; `serve.py` runs
the server on loopback.
Nothing here writes to the project: the only files written are thumbnails, in the
user's cache folder.
"""
