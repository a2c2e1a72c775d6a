"""Typed reads of JSON body fields, each failing with 400 M_BAD_JSON and the key's name."""

from __future__ import annotations

from typing import Any

from homeserver.errors import bad_json, missing_param

# The ranges of PostgreSQL's integer columns: a client-supplied number bound
# for one is checked against its range before any SQL runs.
INT32 = range(-(2**31), 2**31)
BIGINT = range(-(2**63), 2**63)


def opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_json(f"'{key}' must be a string")
    return value


def req_str(body: dict[str, Any], key: str) -> str:
    if key not in body:
        raise missing_param(f"'{key}' is required")
    value = opt_str(body, key)
    if value is None:
        raise bad_json(f"'{key}' must be a string")
    return value


def opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise bad_json(f"'{key}' must be true or false")
    return value


def opt_str_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(v, str) for v in value)
    ):
        raise bad_json(f"'{key}' must be a list of strings")
    return value
