"""The `imageshelf` command (`main`) and what every stage script shares
(`options`: the click pieces, `finish`).

May import: everything below it; outside the project: click.
"""
