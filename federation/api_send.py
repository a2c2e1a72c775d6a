"""PUT /send/{txnId}: transactions from other servers."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint
from federation.receiver import TransactionReceiver


class FederationSendApi:
    def __init__(self, receiver: TransactionReceiver) -> None:
        self._receiver = receiver

    @federation_endpoint("PUT", FEDERATION_V1 + "/send/{txnId}")
    async def send(self, req: FederationRequest) -> dict[str, Any]:
        return await self._receiver.receive(req.origin, req.params["txnId"], req.transaction_json())
