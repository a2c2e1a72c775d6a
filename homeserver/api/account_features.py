"""The unstable features of /versions that the account and safety features
add (homeserver/api/discovery.py lists them): each flag is here only because
what it names works."""

from __future__ import annotations

ACCOUNT_UNSTABLE_FEATURES: dict[str, bool] = {}
