"""The inbound EDU registry: dispatch by edu_type, unknown and failing EDUs skipped."""

from __future__ import annotations

from typing import Any

import pytest

from federation.edu_registry import EduRegistry


async def test_dispatch_by_type_in_order_skipping_unknown_bad_and_failing() -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    registry = EduRegistry()

    async def typing(origin: str, content: dict[str, Any]) -> None:
        seen.append(("typing", origin, content))

    async def broken(origin: str, content: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    registry.register("m.typing", typing)
    registry.register("m.broken", broken)
    await registry.dispatch(
        "remote.example",
        [
            {"edu_type": "m.typing", "content": {"n": 1}},
            {"edu_type": "m.unknown", "content": {}},
            {"edu_type": "m.broken", "content": {}},
            {"edu_type": "m.typing", "content": "not an object"},
            "not an EDU",
            {"edu_type": "m.typing", "content": {"n": 2}},
        ],
    )
    assert seen == [
        ("typing", "remote.example", {"n": 1}),
        ("typing", "remote.example", {"n": 2}),
    ]
    assert registry.handles("m.typing") and not registry.handles("m.unknown")


def test_one_handler_per_type() -> None:
    registry = EduRegistry()

    async def handler(origin: str, content: dict[str, Any]) -> None:
        return None

    registry.register("m.typing", handler)
    with pytest.raises(ValueError):
        registry.register("m.typing", handler)
