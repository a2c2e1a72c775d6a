"""One-time keys are claimed in the order they were uploaded (MSC4225, spec v1.13)."""

from __future__ import annotations

from typing import Any

from tests.test_e2e_keys import device  # noqa: F401 (the fixture)


async def test_keys_are_claimed_oldest_upload_first(device: Any) -> None:  # noqa: F811
    alice, bob = await device("alice"), await device("bob")
    # Uploaded in three requests whose key ids sort against upload order.
    for prefix in ("z", "m", "a"):
        await alice.ok(
            "POST",
            "/keys/upload",
            {
                **({"device_keys": alice.device_keys()} if prefix == "z" else {}),
                "one_time_keys": alice.one_time_keys(prefix, 2),
            },
        )

    claimed = [next(iter(await bob.claim(alice))) for _ in range(6)]

    # Each upload's keys come out before any later upload's (no order is
    # specified within one upload).
    prefixes = [key_id.split(":")[1][0] for key_id in claimed]
    assert prefixes == ["z", "z", "m", "m", "a", "a"]
    assert sorted(claimed) == sorted(f"signed_curve25519:{p}{i}" for p in "zma" for i in (0, 1))
    assert await bob.claim(alice) == {}
