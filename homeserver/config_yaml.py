"""YAML for the config file, refusing a key given twice in one mapping.

PyYAML keeps the last of two equal keys without a word; in a config that
hides a mistake (two workers of one name, a setting overridden further
down), so the loader names the key and its line instead.
"""

from __future__ import annotations

from typing import Any

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Like yaml.safe_load, but a duplicate key is a yaml.YAMLError."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
