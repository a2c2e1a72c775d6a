"""What a store needs to keep its in-process cache true in a deployment of
several processes: the invalidation channel of homeserver/cluster/
invalidation.py, seen from below (storage imports nothing of the services)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class SharedCaches(Protocol):
    def register(
        self, cache: str, forget: Callable[[str], None], forget_all: Callable[[], None]
    ) -> None: ...

    def forget(self, cache: str, key: str) -> None: ...

    def tell_others(self, cache: str, key: str) -> None: ...
