"""An image recognised from its bytes (`recognise`: its format, size and a
check of its structure, never a re-encode), its header read off its markers (`headers`),
what decoding it would cost, with the one bounded decode every picture goes through
(`decoding`), and what it looks like, measured on one small decode (`properties`: the
hashes and measures data-quality findings read).

May import: records, store, base, errors; outside the project: Pillow (and its
HEIC/JPEG XL plugins).
"""
