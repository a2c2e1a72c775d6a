"""createRoom's remote invites in the background: per server, in order,
an unreachable server retried and finally given up, a refusal refusing one."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from homeserver.errors import MatrixError
from homeserver.rooms.remote_invites import RemoteInvites


class Servers:
    """Invitees' servers that answer as the test says: `down` counts the
    attempts a server still fails, `refuse` the users it refuses."""

    def __init__(self, down: dict[str, int], refuse: set[str]) -> None:
        self.down = down
        self.refuse = refuse
        self.attempts: list[str] = []
        self.invited: list[tuple[str, str, str, dict[str, Any]]] = []

    async def invite(self, sender: str, room_id: str, target: str, extra: dict[str, Any]) -> None:
        server = target.partition(":")[2]
        self.attempts.append(target)
        if self.down.get(server, 0) > 0:
            self.down[server] -= 1
            raise MatrixError(502, "M_UNKNOWN", f"Could not reach {server}")
        if target in self.refuse:
            raise MatrixError(403, "M_FORBIDDEN", "Not welcome")
        self.invited.append((sender, room_id, target, extra))


async def test_each_server_gets_its_invites_in_order_and_a_dead_one_is_retried(caplog: Any):
    servers = Servers(down={"slow.example": 2, "dead.example": 10}, refuse={"@x:ok.example"})
    invites = RemoteInvites(servers.invite, retry_delays_s=(0.01, 0.01, 0.01))
    caplog.set_level(logging.INFO, logger="homeserver.rooms.remote_invites")
    await invites.start(
        "@alice:here",
        "!room:here",
        [
            "@a:slow.example",
            "@x:ok.example",
            "@b:slow.example",
            "@y:ok.example",
            "@d:dead.example",
            "@e:dead.example",
        ],
        {"is_direct": True},
    )
    done = [target for _, _, target, _ in servers.invited]
    assert sorted(done) == ["@a:slow.example", "@b:slow.example", "@y:ok.example"]
    assert [t for t in done if t.endswith("slow.example")] == ["@a:slow.example", "@b:slow.example"]
    assert all(extra == {"is_direct": True} for *_, extra in servers.invited)
    # A refusal refuses that invite only; the server's next invitee is still asked.
    assert servers.attempts.count("@x:ok.example") == 1
    # The dead server: its first invitee tried once per round (4 rounds), the second never.
    assert servers.attempts.count("@d:dead.example") == 4
    assert "@e:dead.example" not in servers.attempts
    assert "gave up inviting 2 users of dead.example" in caplog.text


async def test_stop_cancels_invites_still_waiting():
    servers = Servers(down={"dead.example": 10}, refuse=set())
    invites = RemoteInvites(servers.invite, retry_delays_s=(3600.0,))
    job = invites.start("@alice:here", "!room:here", ["@d:dead.example"], {})
    await asyncio.sleep(0.1)  # the first attempt fails; the job waits to retry
    await invites.stop()
    assert job.cancelled()
    assert servers.attempts == ["@d:dead.example"]
