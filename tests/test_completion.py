"""Writes shielded from their request's cancellation run to their end."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from homeserver.api.completion import drain_writes, run_to_completion


async def test_a_write_finishes_after_its_caller_is_cancelled():
    started, release = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def write() -> str:
        started.set()
        await release.wait()
        done.append("committed")
        return "ok"

    caller = asyncio.create_task(run_to_completion(write()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert done == []
    release.set()
    await drain_writes()
    assert done == ["committed"]


async def test_the_result_and_errors_reach_a_caller_that_waits():
    async def fine() -> int:
        return 7

    async def broken() -> None:
        raise ValueError("bad")

    assert await run_to_completion(fine()) == 7
    with pytest.raises(ValueError, match="bad"):
        await run_to_completion(broken())


async def test_a_write_failing_after_its_client_left_is_logged(caplog: Any):
    started = asyncio.Event()

    async def write() -> None:
        started.set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        raise RuntimeError("half way")

    caplog.set_level(logging.INFO, logger="homeserver.api.completion")
    caller = asyncio.create_task(run_to_completion(write()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await drain_writes()
    assert "a write whose client had left failed" in caplog.text
    assert "half way" in caplog.text
