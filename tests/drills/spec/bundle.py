"""Build the single-file OpenAPI document the fuzz test reads.

Usage: python tests/drills/spec/bundle.py <matrix-spec checkout> <output.json>

The spec's client-server API is split over many YAML files that refer to each
other (and to shared definitions) with `$ref`. Schemathesis wants one
document, so this inlines every reference, puts each file's paths under the
base path its `servers` entry names (`/_matrix/client/v3`, `/_matrix/media/v3`,
...), and drops what only documents responses: the test checks statuses and
error bodies, not response schemas, and the response examples point into
other parts of the spec repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

API_DIR = Path("data/api/client-server")
# Keys that only document: they never shape a request.
DROPPED_KEYS = {"examples", "x-addedInMatrixVersion", "x-changedInMatrixVersion"}


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


def _base_path(document: dict[str, Any]) -> str:
    variables = document.get("servers", [{}])[0].get("variables", {})
    return variables.get("basePath", {}).get("default", "/_matrix/client/v3")


def bundle(checkout: Path) -> dict[str, Any]:
    cache: dict[Path, Any] = {}
    paths: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    for path in sorted((checkout / API_DIR).glob("*.yaml")):
        document = _load(path, cache)
        if not isinstance(document, dict) or "paths" not in document:
            continue
        resolved = _inline(document, path.resolve(), document, cache, ())
        prefix = _base_path(document)
        for route, operations in resolved["paths"].items():
            for operation in operations.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["responses"] = {
                        status: {"description": response.get("description", "")}
                        for status, response in operation["responses"].items()
                    }
            paths[prefix + route] = operations
        security_schemes.update(resolved.get("components", {}).get("securitySchemes", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Matrix Client-Server API (bundled for fuzzing)", "version": "v1.19"},
        "paths": paths,
        "components": {"securitySchemes": security_schemes},
    }


def main() -> None:
    checkout, output = Path(sys.argv[1]), Path(sys.argv[2])
    output.write_text(json.dumps(bundle(checkout), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
