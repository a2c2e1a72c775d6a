"""Secrets kept out of the config file: `<key>_path` or `<key>_env` beside a secret key.

An administrator who keeps the YAML in version control, or shows it in a
support request, should not be showing passwords with it. Each secret key of
the config may instead be given as

    <key>_path: a file holding the secret (relative to data_dir); one trailing
                newline is ignored, as `echo secret > file` writes one
    <key>_env:  the name of an environment variable holding it

and is read when the config is loaded. Signing keys, TLS keys and the media
master key are files already (`*_path` settings of their own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Where the secrets are: a path of mapping keys; "*" is every item of a list.
SECRET_KEYS: list[tuple[str, ...]] = [
    ("database", "dsn"),
    ("registration_shared_secret",),
    ("turn", "shared_secret"),
    ("ldap", "bind_password"),
    ("oidc_providers", "*", "client_secret"),
    ("worker_shared_secret",),
]


class SecretError(ValueError):
    """A secret reference that cannot be read; the message names the key."""


def resolve_secrets(data: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """`data` with every `<key>_path` / `<key>_env` of a secret key replaced by its value."""
    for key_path in SECRET_KEYS:
        for where, section in _sections(data, key_path[:-1], key_path[0]):
            _resolve(section, key_path[-1], where, data_dir)
    return data


def _sections(node: Any, path: tuple[str, ...], where: str) -> list[tuple[str, dict[str, Any]]]:
    if not path:
        return [(where, node)] if isinstance(node, dict) else []
    head, rest = path[0], path[1:]
    if head == "*":
        if not isinstance(node, list):
            return []
        found = []
        for i, item in enumerate(node):
            found += _sections(item, rest, f"{where}[{i}]")
        return found
    if not isinstance(node, dict) or head not in node:
        return []
    return _sections(node[head], rest, f"{where}.{head}" if where != head else head)


def _resolve(section: dict[str, Any], key: str, where: str, data_dir: Path) -> None:
    name = f"{where}.{key}" if where != key else key
    from_file, from_env = section.pop(f"{key}_path", None), section.pop(f"{key}_env", None)
    given = [k for k, v in ((key, section.get(key)), ("_path", from_file), ("_env", from_env)) if v]
    if from_file is None and from_env is None:
        return
    if len(given) > 1:
        raise SecretError(f"{name}: give the secret one way only (inline, _path or _env)")
    if from_file is not None:
        path = Path(str(from_file))
        path = path if path.is_absolute() else data_dir / path
        try:
            text = path.read_text()
        except OSError as e:
            raise SecretError(f"{name}_path: cannot read {path}: {e.strerror}") from None
        value = text[:-1] if text.endswith("\n") else text
    else:
        value = os.environ.get(str(from_env), "")
        if not value:
            raise SecretError(f"{name}_env: the environment variable {from_env} is not set")
    if not value:
        raise SecretError(f"{name}: the secret is empty")
    section[key] = value
