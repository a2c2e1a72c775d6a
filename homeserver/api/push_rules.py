"""The push rules API: /pushrules/ (spec: client-server API, "Push Rules: API")."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_bool
from homeserver.errors import MatrixError, missing_param
from homeserver.push.rules import PushRulesService

_RULE = "/pushrules/global/{kind}/{ruleId}"


class PushRulesApi:
    def __init__(self, rules: PushRulesService) -> None:
        self._rules = rules

    @endpoint("GET", "/pushrules/")
    async def all_rules(self, req: ClientRequest) -> dict[str, Any]:
        return {"global": await self._rules.ruleset(req.user.user_id)}

    @endpoint("GET", "/pushrules/global/")
    async def global_rules(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rules.ruleset(req.user.user_id)

    @endpoint("GET", "/pushrules/global/{kind}/")
    async def kind_rules(self, req: ClientRequest) -> tuple[int, list[dict[str, Any]]]:
        return 200, await self._rules.kind_rules(req.user.user_id, req.params["kind"])

    @endpoint("GET", _RULE)
    async def get_rule(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rules.rule(req.user.user_id, req.params["kind"], req.params["ruleId"])

    @endpoint("PUT", _RULE)
    async def put_rule(self, req: ClientRequest) -> dict[str, Any]:
        await self._rules.put_rule(
            req.user.user_id,
            req.params["kind"],
            req.params["ruleId"],
            req.json(),
            before=req.query.get("before") or None,
            after=req.query.get("after") or None,
        )
        return {}

    @endpoint("DELETE", _RULE)
    async def delete_rule(self, req: ClientRequest) -> dict[str, Any]:
        await self._rules.delete_rule(req.user.user_id, req.params["kind"], req.params["ruleId"])
        return {}

    @endpoint("GET", _RULE + "/enabled")
    async def get_enabled(self, req: ClientRequest) -> dict[str, Any]:
        rule = await self._rules.rule(req.user.user_id, req.params["kind"], req.params["ruleId"])
        return {"enabled": rule["enabled"]}

    @endpoint("PUT", _RULE + "/enabled")
    async def set_enabled(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        if "enabled" not in body:
            raise missing_param("'enabled' is required")
        await self._rules.set_enabled(
            req.user.user_id,
            req.params["kind"],
            req.params["ruleId"],
            opt_bool(body, "enabled", True),
        )
        return {}

    @endpoint("GET", "/pushrules/{rest:.*}")
    @endpoint("PUT", "/pushrules/{rest:.*}")
    @endpoint("DELETE", "/pushrules/{rest:.*}")
    async def malformed_path(self, req: ClientRequest) -> dict[str, Any]:
        """Any other path under /pushrules/: no scope, an unknown scope, no
        kind or rule id, an unknown attribute. A 400, as in Synapse, rather
        than 404: clients read 404 as "no such rule". The router tries the
        routes above first (they are longer), so this only catches the rest."""
        raise MatrixError(400, "M_UNRECOGNIZED", f"Unrecognised push rule path: {req.path}")

    @endpoint("GET", _RULE + "/actions")
    async def get_actions(self, req: ClientRequest) -> dict[str, Any]:
        rule = await self._rules.rule(req.user.user_id, req.params["kind"], req.params["ruleId"])
        return {"actions": rule["actions"]}

    @endpoint("PUT", _RULE + "/actions")
    async def set_actions(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        if "actions" not in body:
            raise missing_param("'actions' is required")
        await self._rules.set_actions(
            req.user.user_id, req.params["kind"], req.params["ruleId"], body["actions"]
        )
        return {}
