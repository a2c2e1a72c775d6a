"""Build the single-file OpenAPI documents the spec tests and the fuzz drill read.

Usage: python tests/spec/bundle.py <matrix-spec checkout> <output directory>

The spec's client-server and server-server APIs are each split over many YAML
files that refer to each other (and to shared definitions and event schemas)
with `$ref`. The tests want one self-contained document per API, so this
inlines every reference, puts each file's paths under the base path its
`servers` entry names (`/_matrix/client/v3`, `/_matrix/federation/v2`, ...),
and drops the examples (they only document, and point into other parts of the
spec repository). Response schemas and `x-addedInMatrixVersion` stay: the
conformance test validates responses and walks the endpoints by version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Each bundled API: its directory in the spec repository and its default base path.
APIS = {
    "client-server": "/_matrix/client/v3",
    "server-server": "/_matrix/federation/v1",
}
# Keys that only document (the singular `example` of a parameter stays: the
# fuzz drill and the endpoint walk use it as a well-formed value).
DROPPED_KEYS = {"examples", "x-changedInMatrixVersion"}


def _load(path: Path, cache: dict[Path, Any]) -> Any:
    path = path.resolve()
    if path not in cache:
        cache[path] = yaml.safe_load(path.read_text())
    return cache[path]


def _pointer(document: Any, fragment: str) -> Any:
    node = document
    for part in fragment.lstrip("/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _inline(node: Any, base: Path, root: Any, cache: dict[Path, Any], seen: tuple[str, ...]) -> Any:
    """`node` with every `$ref` replaced by what it names; a cycle becomes `{}`."""
    if isinstance(node, list):
        return [_inline(item, base, root, cache, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        target_file, _, fragment = ref.partition("#")
        if target_file:
            path = (base.parent / target_file).resolve()
            document = _load(path, cache)
        else:
            path, document = base, root
        key = f"{path}#{fragment}"
        if key in seen:
            return {}
        target = _pointer(document, fragment) if fragment else document
        resolved = _inline(target, path, document, cache, (*seen, key))
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if siblings and isinstance(resolved, dict):
            resolved = {**resolved, **_inline(siblings, base, root, cache, seen)}
        return resolved
    return {
        key: _inline(value, base, root, cache, seen)
        for key, value in node.items()
        if key not in DROPPED_KEYS
    }


def _base_path(document: dict[str, Any], default: str) -> str:
    variables = document.get("servers", [{}])[0].get("variables", {})
    return variables.get("basePath", {}).get("default", default)


def bundle(checkout: Path, api: str) -> dict[str, Any]:
    cache: dict[Path, Any] = {}
    paths: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    for path in sorted((checkout / "data" / "api" / api).glob("*.yaml")):
        document = _load(path, cache)
        if not isinstance(document, dict) or "paths" not in document:
            continue
        resolved = _inline(document, path.resolve(), document, cache, ())
        prefix = _base_path(document, APIS[api])
        for route, operations in resolved["paths"].items():
            paths.setdefault(prefix + route, {}).update(operations)
        security_schemes.update(resolved.get("components", {}).get("securitySchemes", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Matrix {api} API (bundled for tests)", "version": "v1.19"},
        "paths": paths,
        "components": {"securitySchemes": security_schemes},
    }


def main() -> None:
    checkout, output = Path(sys.argv[1]), Path(sys.argv[2])
    for api in APIS:
        document = bundle(checkout, api)
        (output / f"{api}.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
