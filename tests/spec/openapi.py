"""The spec's bundled OpenAPI documents (tests/spec/*.json), read as a list of operations.

Shared by the endpoint walk and the response validation: each operation with
the spec version that added it, and well-formed placeholder arguments for it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs

SPEC_DIR = Path(__file__).parent
METHODS = ("get", "put", "post", "delete", "patch")
# Operations without `x-addedInMatrixVersion` predate the v1.x releases.
BASE_VERSION = (1, 0)


def parse_version(text: str) -> tuple[int, int]:
    """ "1.13" or "v1.13" as (1, 13): compared as numbers, so v1.9 < v1.13."""
    major, minor = text.removeprefix("v").split(".")
    return int(major), int(minor)


def highest_version(advertised: list[str]) -> tuple[int, int]:
    return max(parse_version(v) for v in advertised if re.fullmatch(r"v\d+\.\d+", v))


@attrs.frozen
class Operation:
    api: str  # "client-server" or "server-server"
    method: str  # upper case
    path: str  # the templated path, e.g. /_matrix/client/v3/rooms/{roomId}/send/...
    spec: dict[str, Any] = attrs.field(eq=False, repr=False)

    @property
    def added(self) -> tuple[int, int]:
        version = self.spec.get("x-addedInMatrixVersion")
        if version:
            return parse_version(str(version))
        return UNMARKED.get(self.name, BASE_VERSION)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def deprecated(self) -> bool:
        return bool(self.spec.get("deprecated"))

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p.get("in") == where]

    def response_schema(self, status: int) -> dict[str, Any] | None:
        """The JSON schema of the spec's answer with `status`, if it gives one."""
        response = self.spec.get("responses", {}).get(str(status))
        if response is None:
            return None
        content = response.get("content", {}).get("application/json")
        return None if content is None else content.get("schema")

    def url(self, values: dict[str, str]) -> str:
        """The path with each parameter replaced by `values` (or a placeholder)."""

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            return quote(values.get(name) or self._placeholder(name), safe="")

        return re.sub(r"\{(\w+)\}", fill, self.path)

    def _placeholder(self, name: str) -> str:
        if name in PLACEHOLDERS:
            return PLACEHOLDERS[name]
        for parameter in self.parameters("path"):
            if parameter["name"] == name and isinstance(parameter.get("example"), str):
                return parameter["example"]
        return "placeholder"

    def required_query(self) -> dict[str, str]:
        """Well-formed values for the query parameters the operation requires."""
        query = {}
        for parameter in self.parameters("query"):
            if not parameter.get("required"):
                continue
            example = parameter.get("example")
            if example is None:
                example = parameter.get("schema", {}).get("enum", ["placeholder"])[0]
            query[parameter["name"]] = str(example)
        return query


# Well-formed values for path parameters the spec gives no example for. Our
# own server name throughout, so that nothing waits on an unreachable server.
PLACEHOLDERS = {
    "roomId": "!placeholder:localhost",
    "roomIdOrAlias": "!placeholder:localhost",
    "roomAlias": "#placeholder:localhost",
    "eventId": "$placeholder",
    "userId": "@placeholder:localhost",
    "serverName": "localhost",
    "mediaId": "placeholder",
    "txnId": "placeholder-txn",
    "deviceId": "PLACEHOLDER",
    "type": "m.placeholder",
    "eventType": "m.placeholder",
    "stateKey": "",
    "version": "1",
    "roomVersion": "10",
}


# Operations the spec's changelogs add but whose definition has no
# `x-addedInMatrixVersion`: the version of the changelog entry.
UNMARKED = {
    "GET /_matrix/client/v1/auth_metadata": (1, 15),
    "GET /_matrix/client/v1/mutual_rooms": (1, 19),
}


@cache
def operations(api: str) -> tuple[Operation, ...]:
    document = json.loads((SPEC_DIR / f"{api}.json").read_text())
    found = []
    for path, entry in document["paths"].items():
        for method in METHODS:
            if method in entry:
                # The spec tells apart two definitions of one path (the
                # legacy /events and its peeking form, say) by a trailing space.
                found.append(Operation(api, method.upper(), path.strip(), entry[method]))
    return tuple(found)
