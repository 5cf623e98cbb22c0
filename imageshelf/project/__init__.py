"""This project's paths and settings, each with one home: dvc.yaml's paths
and params.yaml's settings read once (`paths`: the Project object), each setting with
its default and its own checker (`params`).

May import: records, store, base, errors; outside the project: yaml.
"""
