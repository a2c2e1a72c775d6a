"""Key endpoints: our keys (/_matrix/key/v2/server) and the notary (/query)."""

from __future__ import annotations

from typing import Any

from federation.http import FederationRequest, federation_endpoint, query_int
from federation.keys import KeyRing
from homeserver.errors import bad_json
from storage.database import now_ms

KEY_V2 = "/_matrix/key/v2"


class KeysApi:
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    @federation_endpoint("GET", KEY_V2 + "/server", auth=False)
    @federation_endpoint("GET", KEY_V2 + "/server/{keyId}", auth=False)
    async def server_keys(self, req: FederationRequest) -> dict[str, Any]:
        return self._keys.ours.response()

    @federation_endpoint("GET", KEY_V2 + "/query/{serverName}", auth=False)
    @federation_endpoint("GET", KEY_V2 + "/query/{serverName}/{keyId}", auth=False)
    async def query_one(self, req: FederationRequest) -> dict[str, Any]:
        minimum = query_int(req, "minimum_valid_until_ts", now_ms())
        key_id = req.params.get("keyId")
        wanted = {key_id: minimum} if key_id else {}
        answers = await self._keys.notary_answers(
            {req.params["serverName"]: wanted}, default_minimum=minimum
        )
        return {"server_keys": answers}

    @federation_endpoint("POST", KEY_V2 + "/query", auth=False)
    async def query(self, req: FederationRequest) -> dict[str, Any]:
        body = req.json().get("server_keys")
        if not isinstance(body, dict):
            raise bad_json("server_keys must be an object")
        criteria: dict[str, dict[str, int]] = {}
        for server_name, by_key in body.items():
            if not isinstance(by_key, dict):
                raise bad_json("server_keys values must be objects")
            criteria[server_name] = {}
            for key_id, wanted in by_key.items():
                if not isinstance(wanted, dict):
                    raise bad_json("key criteria must be objects")
                minimum = wanted.get("minimum_valid_until_ts", now_ms())
                if type(minimum) is not int:
                    raise bad_json("minimum_valid_until_ts must be an integer")
                criteria[server_name][key_id] = minimum
        return {"server_keys": await self._keys.notary_answers(criteria)}
