"""YAML from files a user or a teammate hands us (params.yaml, a dataset's data.yaml),
read without the alias expansion that lets 352 bytes cost gigabytes ("billion laughs"):
an alias (`*name`) is refused, and so is nesting Python's stack cannot hold."""

from __future__ import annotations

from typing import Any


class YamlRefused(ValueError):
    """YAML this reader refuses; the message says why (and where)."""


def load_yaml(text: str) -> Any:
    """The document in `text`; YamlRefused for an alias, nesting too deep, or YAML that
    does not parse (its first line of explanation)."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise YamlRefused(
                    f"line {mark.line + 1}: a YAML alias (*name), which this reader refuses "
                    "(aliases can expand without bound): write the values out"
                )
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliases)  # noqa: S506 - a SafeLoader, aliases refused
    except yaml.YAMLError as exc:
        raise YamlRefused(str(exc).splitlines()[0]) from None
    except YamlRefused:
        raise
    except ValueError as exc:  # a scalar Python refuses, like an integer of 5,000 digits
        raise YamlRefused(f"a value that cannot be read: {str(exc)[:80]}") from None
    except RecursionError:
        raise YamlRefused("nested too deeply") from None
