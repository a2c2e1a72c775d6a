"""Test servers with application services registered the way an operator
does it: a registration YAML file per appservice and app_service_config_files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def registration(id: str, url: str | None, users: str, **fields: Any) -> dict[str, Any]:
    """A registration file's content: tokens as_{id} / hs_{id}, the sender
    @{id}_bot, a user namespace (not exclusive unless exclusive=True, so
    that tests may register its users as anyone would); `fields` add or
    replace keys (aliases= and rooms= give regexes of non-exclusive namespaces)."""
    namespaces = {
        "users": [{"exclusive": fields.pop("exclusive", False), "regex": users}],
        "aliases": [{"exclusive": False, "regex": r} for r in fields.pop("aliases", ())],
        "rooms": [{"exclusive": False, "regex": r} for r in fields.pop("rooms", ())],
    }
    return {
        "id": id,
        "url": url,
        "as_token": f"as_{id}",
        "hs_token": f"hs_{id}",
        "sender_localpart": f"{id}_bot",
        "namespaces": namespaces,
        "rate_limited": False,
        **fields,
    }


def appservice_config(tmp_path: Path, *registrations: dict[str, Any]) -> dict[str, Any]:
    """Config overrides registering these appservices (files in `tmp_path`)."""
    files = []
    for data in registrations:
        path = tmp_path / f"appservice-{data['id']}.yaml"
        path.write_text(yaml.safe_dump(data))
        files.append(str(path))
    return {"app_service_config_files": files}


async def start_bridged(
    server_factory: Any, tmp_path: Path, *registrations: dict[str, Any], **overrides: Any
) -> Any:
    return await server_factory(**appservice_config(tmp_path, *registrations), **overrides)
