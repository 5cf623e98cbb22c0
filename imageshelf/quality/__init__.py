"""What a store's records say about its images' quality, with no image decoded: exact
and near duplicates, leaks across splits and the issue types (`findings`), assessed once
per store part (`parts`), less the findings reviewed as not a problem (`reviewed`), and
the search for near pairs of 64-bit hashes that grows with the store (`near`; its
chunks, `chunks`; numpy's engine, `near_numpy`).

May import: records, store, project, base, errors; outside the project: numpy when it
is installed (never required), never Pillow, click or DVC.
"""
