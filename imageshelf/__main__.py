"""`python -m imageshelf` and the `imageshelf` command: the tools' CLI (cli.py)."""

import sys


def main() -> None:
    try:
        from .cli import main as run
    except ModuleNotFoundError as exc:  # the core install reads stores; tools need click
        sys.exit(
            f"imageshelf: the command line needs the cli extra ({exc.name} is not "
            "installed): pip install 'imageshelf[cli]'"
        )
    run()


if __name__ == "__main__":
    main()
