"""The unstable features of /versions that the account and safety features
add (homeserver/api/discovery.py lists them): each flag is here only because
what it names works."""

from __future__ import annotations

ACCOUNT_UNSTABLE_FEATURES: dict[str, bool] = {
    # Mutual rooms (MSC2666): the unstable endpoint, and the stable
    # /_matrix/client/v1/mutual_rooms ahead of the spec version naming it.
    "uk.half-shot.msc2666.query_mutual_rooms": True,
    "uk.half-shot.msc2666.query_mutual_rooms.stable": True,
    # Invite blocking (MSC4380), with the stable identifiers (spec v1.18),
    # as Synapse and Tuwunel advertise it.
    "org.matrix.msc4380": True,
    "org.matrix.msc4380.stable": True,
    # The admin suspend and lock endpoints (MSC4323), also under its prefix.
    "uk.timedout.msc4323": True,
}
