"""Polling with a deadline, for things that happen eventually (federation is asynchronous)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    condition: Callable[[], T | None | Awaitable[T | None]],
    what: str,
    *,
    within: float = 15.0,
    interval: float = 0.1,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """Call `condition` (sync or async) until it returns something truthy; return that.

    After `within` seconds fail the test with `what` and the last value seen
    (or the last exception among `retry_on`, which are taken as "not yet").
    """
    deadline = time.monotonic() + within
    last: object = None
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
        except retry_on as e:
            result = None
            last = e
        else:
            last = result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {within:.0f} s waiting for {what}; last: {last!r}"
            )
        await asyncio.sleep(interval)
