"""Delayed events driven by the real matrix-js-sdk (Node.js) over HTTP:
tests/interop/js/delayed_events_flow.mjs uses `_unstable_sendDelayedEvent`,
`_unstable_sendDelayedStateEvent`, `_unstable_getDelayedEvents` and
`_unstable_updateDelayedEvent` as Element Call does."""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "delayed_events_flow.mjs"


async def test_js_sdk_delayed_events(hs: RunningServer) -> None:
    result = await run_node_script(SCRIPT, hs.url)

    assert result["supported"] is True
    # The delayed message came over /sync after its delay, marked for its sender.
    assert result["message_waited_ms"] >= 300
    assert result["message_unsigned_delay_id"] == result["message_delay_id"]

    [listed] = result["listed"]
    assert listed["delay_id"] == result["state_delay_id"]
    assert listed["type"] == "org.example.call.member"
    assert listed["state_key"] == result["user_id"]
    assert listed["delay"] == 60_000 and listed["running_since"] > 0
    assert listed["content"] == {"left": True}
    assert result["restart"] == {} and result["send"] == {}
    assert result["state_content"] == {"left": True} and result["state_key"] == result["user_id"]

    assert result["cancel"] == {}
    assert result["bodies"] == ["later", "marker"]
    assert result["remaining"] == 0
    assert result["unknown"]["httpStatus"] == 404
    assert result["unknown"]["errcode"] == "M_NOT_FOUND"
