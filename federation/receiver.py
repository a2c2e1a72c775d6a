"""PUT /send/{txnId}: a transaction of PDUs and EDUs from another server.

The steps a PDU goes through are in federation/inbound/ (pdus.py is the
spec's checklist); EDUs go to the services registered in edu_registry.py.

A transaction is answered once: its answer is stored, and a retry with the
same txnId gets it back without anything being processed again. One
transaction per origin is processed at a time (the spec lets a sender have one
in flight; a retry must wait for the first attempt, then find its answer).
PDUs are handled in order, each with its own answer; EDUs go to the registry.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from federation.edu_registry import EduRegistry
from federation.inbound.pdus import PduProcessor
from homeserver.errors import MatrixError, bad_json, forbidden
from homeserver.strict_json import holds_nul
from storage.federation_inbound import InboundTransactionStore

MAX_PDUS = 50
MAX_EDUS = 100


class TransactionReceiver:
    def __init__(
        self, store: InboundTransactionStore, pdus: PduProcessor, edus: EduRegistry
    ) -> None:
        self._store = store
        self._pdus = pdus
        self._edus = edus
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, origin: str) -> asyncio.Lock:
        lock = self._locks.get(origin)
        if lock is None:
            lock = self._locks[origin] = asyncio.Lock()
        return lock

    async def receive(self, origin: str, txn_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Process a transaction (or find the answer to it); the /send answer."""
        pdus, edus = _validate(origin, body)
        async with self._lock(origin):
            earlier = await self._store.response(origin, txn_id)
            if earlier is not None:
                return earlier
            results: dict[str, dict[str, str]] = {}
            for pdu in pdus:
                result = await self._pdus.process(origin, pdu)
                if result.event_id is not None:
                    results[result.event_id] = (
                        {} if result.error is None else {"error": result.error}
                    )
            # An EDU holding NUL could not be stored: dropped, like a malformed one.
            await self._edus.dispatch(origin, [edu for edu in edus if not holds_nul(edu)])
            response = {"pdus": results}
            await self._store.remember(origin, txn_id, response)
            return response


def _validate(origin: str, body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    if body.get("origin") != origin:
        raise forbidden("The transaction's origin is not the server that signed the request")
    if not isinstance(body.get("origin_server_ts"), int):
        raise bad_json("origin_server_ts must be an integer")
    pdus, edus = body.get("pdus", []), body.get("edus", [])
    if not isinstance(pdus, list) or not isinstance(edus, list):
        raise bad_json("pdus and edus must be lists")
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise MatrixError(
            400, "M_BAD_JSON", f"A transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"
        )
    return pdus, edus
