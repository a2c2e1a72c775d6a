"""Fuzzing the client-server API from the spec: no request gets a 5xx, and
every 4xx is a Matrix error (a JSON object with an `errcode`).

Schemathesis generates requests for every operation of the spec's OpenAPI
definitions (tests/spec, bundled from matrix-org/matrix-spec), sent
over real HTTP to our server running as a process, with the access token of a
real user. Path parameters are sometimes swapped for that user's id, a room
they are in and an event in it, so that the fuzzer reaches the code behind
the "not found" answers too. The number of examples per operation bounds
the run (a few minutes on two cores).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st

from tests.drills.harness import DrillPostgres, HomeserverProcess
from tests.interop.matrix_client import register

pytestmark = pytest.mark.drills

SPEC = Path(__file__).parent.parent / "spec" / "client-server.json"
EXAMPLES_PER_OPERATION = 2
# Operations that would end the fuzzing user's session or take away its room:
# the fuzzer would then only see 401s and 403s for the rest of the run.
EXCLUDED_PATHS = (
    r"/logout(/all)?$",
    r"/account/deactivate$",
    r"/account/password$",
    r"/delete_devices$",
    r"/devices/\{deviceId\}$",
    r"/rooms/\{roomId\}/(leave|forget|upgrade)$",
)


@attrs.frozen
class Target:
    """The running server and the real things the fuzzer may aim at."""

    url: str
    token: str
    ids: dict[str, str]


# Filled by the `target` fixture before the first example is generated; read
# by the path-parameter hook below, which runs inside Hypothesis.
REAL_IDS: dict[str, str] = {}

schema = schemathesis.openapi.from_dict(json.loads(SPEC.read_text()))
for pattern in EXCLUDED_PATHS:
    schema = schema.exclude(path_regex=pattern)


@schema.hook
def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
    """Half of the examples aim at the real user, room and event instead."""

    def aimed(parameters: Any) -> Any:
        if not isinstance(parameters, dict):
            return parameters  # a negative example without path parameters
        return {name: REAL_IDS.get(name, value) for name, value in parameters.items()}

    return st.one_of(strategy, strategy.map(aimed))


# Long polls (/sync, /events, /notifications...) wait as long as they are
# asked to; the fuzzer asks for at most this, so that the run stays bounded.
LONG_POLL_MAX_MS = 2000


def bound_long_polls(query: Any) -> None:
    """Cap the wait of a long poll; other values are left as generated."""
    if not isinstance(query, dict):
        return
    for name in ("timeout", "timeout_ms"):
        value = query.get(name)
        if isinstance(value, int | str) and str(value).isdigit():
            if int(value) > LONG_POLL_MAX_MS:
                query[name] = LONG_POLL_MAX_MS


@pytest.fixture(scope="module")
async def target() -> AsyncIterator[Target]:
    with tempfile.TemporaryDirectory(prefix="hs-fuzz-") as tmp:
        async for target in _run_target(Path(tmp)):
            yield target


async def _run_target(directory: Path) -> AsyncIterator[Target]:
    postgres = DrillPostgres(directory / "postgres")
    await asyncio.to_thread(postgres.start)
    server = HomeserverProcess(
        directory / "hs", await asyncio.to_thread(postgres.create_database, "hs")
    )
    try:
        await server.start()
        async with aiohttp.ClientSession() as http:
            alice = await register(http, server.url, "alice", "fuzz-password")
            room_id = await alice.create_room(room_alias_name="fuzz")
            event_id = await alice.send_text(room_id, "hello")
        REAL_IDS.update(
            userId=alice.user_id,
            roomId=room_id,
            roomIdOrAlias=room_id,
            eventId=event_id,
            deviceId=alice.device_id,
            serverName="localhost",
            roomAlias="#fuzz:localhost",
        )
        yield Target(server.url, alice.access_token, dict(REAL_IDS))
        assert server.running, f"the server died under fuzzing:\n{server.log_tail()}"
    finally:
        await server.stop()
        await asyncio.to_thread(postgres.cleanup)


@pytest.fixture(scope="module")
def session() -> requests.Session:
    return requests.Session()


def assert_matrix_answer(case: Any, response: requests.Response) -> None:
    """No server error; a Matrix error body on every 4xx and gateway error.

    A gateway error (502, 504) is the right answer when a remote homeserver or
    identity server named in the request does not answer (nothing on this
    machine does); a name that is no server name at all must be refused with a
    400 before anything is tried.
    """
    what = f"{case.method} {response.request.url}"
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if status < 400:
        return
    assert status < 500 or status in (502, 504), f"{what} -> {status}: {response.text[:500]}"
    if status == 401 and isinstance(body, dict) and "flows" in body:
        return  # user-interactive authentication asks for a stage: not an error
    assert isinstance(body, dict) and isinstance(body.get("errcode"), str), (
        f"{what} -> {status} without a Matrix error: {response.text[:500]}"
    )
    assert "bad server name" not in body.get("error", ""), (
        f"{what} -> {status}: a malformed server name must be a 400: {response.text[:500]}"
    )


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_fuzz_client_server_api(case: Any, target: Target, session: requests.Session) -> None:
    bound_long_polls(case.query)
    response = case.call(
        base_url=target.url,
        session=session,
        headers={"Authorization": f"Bearer {target.token}"},
        timeout=30,
    )
    assert_matrix_answer(case, response)
