"""`python -m imageshelf` and the `imageshelf` command: its commands are in cli/main.py."""

import sys


def main() -> None:
    try:
        from .cli.main import main as run
    except ModuleNotFoundError as exc:  # the core install reads stores; tools need click
        sys.exit(
            f"imageshelf: the command line needs the cli extra ({exc.name} is not "
            "installed): pip install 'imageshelf[cli]'"
        )
    run()


if __name__ == "__main__":
    main()
