"""End-to-end encryption keys: device keys, one-time and fallback keys,
cross-signing keys and the signatures others uploaded for them.

Key objects are canonical JSON text. Signatures uploaded separately are
returned next to the key they sign, as [signer user, signer key id,
signature] triples, for the service to merge.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

import asyncpg
import attrs


class KeyConflictError(Exception):
    """An upload would change a key that must not change; nothing was stored."""


@attrs.frozen
class NewKey:
    """A one-time or fallback key to store."""

    algorithm: str
    key_id: str
    key_json: str


@attrs.frozen
class SignedKey:
    """A stored key object with the signatures uploaded for it by others."""

    user_id: str
    # The device id, or the cross-signing key type.
    name: str
    key_json: str
    # (signer user id, signer key id, signature)
    signatures: list[tuple[str, str, str]]
    # The device's display name; None for cross-signing keys.
    display_name: str | None = None


@attrs.frozen
class ClaimedKey:
    user_id: str
    device_id: str
    algorithm: str
    key_id: str
    key_json: str


@attrs.frozen
class KeyCounts:
    one_time: dict[str, int]
    unused_fallback: list[str]


@attrs.frozen
class CrossSigningKey:
    key_type: str
    public_key: str
    key_json: str


@attrs.frozen
class Signature:
    signer_user_id: str
    signer_key_id: str
    target_user_id: str
    target_key_id: str
    signature: str


# Signatures of the key named $target_user/$target_key, as a JSON array of triples.
_SIGNATURES = """(
    SELECT coalesce(json_agg(json_build_array(s.signer_user_id, s.signer_key_id, s.signature)
                             ORDER BY s.signer_user_id, s.signer_key_id), '[]')
    FROM e2e_signatures s
    WHERE s.target_user_id = {user} AND s.target_key_id = {key} {extra}
)"""

# $1 users, $2 device ids (NULL: all of that user's devices).
_QUERY_DEVICES = f"""
SELECT k.user_id, k.device_id, k.key_json, d.display_name,
       {_SIGNATURES.format(user="k.user_id", key="k.device_id", extra="")} AS signatures
FROM unnest($1::text[], $2::text[]) AS q(user_id, device_id)
JOIN e2e_device_keys k
  ON k.user_id = q.user_id AND (q.device_id IS NULL OR k.device_id = q.device_id)
JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
"""

_CROSS_SIGNING_SIGNATURES = _SIGNATURES.format(
    user="c.user_id", key="c.public_key", extra="AND s.signer_user_id IN ($2, c.user_id)"
)

# $1 users, $2 the requester: signatures by the requester or by the key's owner.
_QUERY_CROSS_SIGNING = f"""
SELECT c.user_id, c.key_type, c.key_json, {_CROSS_SIGNING_SIGNATURES} AS signatures
FROM e2e_cross_signing_keys c
WHERE c.user_id = ANY($1::text[])
"""

# One-time keys first, oldest first; a key locked by a concurrent claim is
# skipped rather than waited for, so no key is ever handed out twice. Where
# none is left, the fallback key of the algorithm is returned and marked used.
_CLAIM = """
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS w(user_id, device_id, algorithm)
),
claimed AS (
    DELETE FROM e2e_one_time_keys k
    WHERE k.id IN (
        SELECT p.id FROM wanted w
        CROSS JOIN LATERAL (
            SELECT o.id FROM e2e_one_time_keys o
            WHERE o.user_id = w.user_id AND o.device_id = w.device_id
              AND o.algorithm = w.algorithm
            ORDER BY o.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ) p
    )
    RETURNING k.user_id, k.device_id, k.algorithm, k.key_id, k.key_json
),
fallback AS (
    UPDATE e2e_fallback_keys f SET used = TRUE
    FROM wanted w
    WHERE f.user_id = w.user_id AND f.device_id = w.device_id AND f.algorithm = w.algorithm
      AND NOT EXISTS (
          SELECT 1 FROM claimed c
          WHERE c.user_id = w.user_id AND c.device_id = w.device_id
            AND c.algorithm = w.algorithm
      )
    RETURNING f.user_id, f.device_id, f.algorithm, f.key_id, f.key_json
)
SELECT * FROM claimed
UNION ALL
SELECT * FROM fallback
"""

_COUNTS = """
SELECT algorithm, count(*)::int AS n, FALSE AS fallback FROM e2e_one_time_keys
WHERE user_id = $1 AND device_id = $2
GROUP BY algorithm
UNION ALL
SELECT algorithm, 0, TRUE FROM e2e_fallback_keys
WHERE user_id = $1 AND device_id = $2 AND NOT used
"""

# A fallback key that is re-uploaded unchanged keeps its used flag.
_SET_FALLBACK = """
INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json)
SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[])
ON CONFLICT (user_id, device_id, algorithm) DO UPDATE
SET key_id = excluded.key_id, key_json = excluded.key_json,
    used = e2e_fallback_keys.used AND e2e_fallback_keys.key_id = excluded.key_id
           AND e2e_fallback_keys.key_json = excluded.key_json
"""


def _signatures(raw: str) -> list[tuple[str, str, str]]:
    return [(u, k, s) for u, k, s in json.loads(raw)]


class E2eKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def upload(
        self,
        user_id: str,
        device_id: str,
        device_keys_json: str | None,
        one_time_keys: Sequence[NewKey],
        fallback_keys: Sequence[NewKey],
    ) -> tuple[bool, KeyCounts]:
        """Store what a /keys/upload carries, in one transaction; return
        whether the device keys changed, and the device's key counts.

        Device keys may be uploaded again with other signatures or
        algorithms (clients add their self-signing signature), but the
        identity keys themselves never change: raises KeyConflictError
        (storing nothing) for that, or for a one-time key id reused with
        other content.
        Uploads of one device are serialised by an advisory lock, so two
        concurrent uploads of the same key id cannot both pass the check.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 14))",
                f"{user_id}\n{device_id}",
            )
            new_device_keys = False
            if device_keys_json is not None:
                stored = await conn.fetchrow(
                    """SELECT key_json, key_json::jsonb -> 'keys' = $3::jsonb -> 'keys' AS same
                       FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2""",
                    user_id,
                    device_id,
                    device_keys_json,
                )
                if stored is not None and not stored["same"]:
                    raise KeyConflictError("The identity keys of this device cannot be changed")
                if stored is None or stored["key_json"] != device_keys_json:
                    await conn.execute(
                        """INSERT INTO e2e_device_keys (user_id, device_id, key_json)
                           VALUES ($1, $2, $3)
                           ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = $3""",
                        user_id,
                        device_id,
                        device_keys_json,
                    )
                    new_device_keys = True
            if one_time_keys:
                algorithms = [k.algorithm for k in one_time_keys]
                key_ids = [k.key_id for k in one_time_keys]
                existing = await conn.fetch(
                    """SELECT o.algorithm, o.key_id, o.key_json FROM e2e_one_time_keys o
                       JOIN unnest($3::text[], $4::text[]) AS n(algorithm, key_id)
                         ON o.algorithm = n.algorithm AND o.key_id = n.key_id
                       WHERE o.user_id = $1 AND o.device_id = $2""",
                    user_id,
                    device_id,
                    algorithms,
                    key_ids,
                )
                stored_keys = {(r["algorithm"], r["key_id"]): r["key_json"] for r in existing}
                for key in one_time_keys:
                    known = stored_keys.get((key.algorithm, key.key_id))
                    if known is not None and known != key.key_json:
                        raise KeyConflictError(
                            f"One-time key {key.algorithm}:{key.key_id} already exists"
                            " with other content"
                        )
                await conn.execute(
                    """INSERT INTO e2e_one_time_keys
                           (user_id, device_id, algorithm, key_id, key_json)
                       SELECT $1, $2, algorithm, key_id, key_json
                       FROM unnest($3::text[], $4::text[], $5::text[])
                            WITH ORDINALITY AS n(algorithm, key_id, key_json, i)
                       ORDER BY i
                       ON CONFLICT DO NOTHING""",
                    user_id,
                    device_id,
                    algorithms,
                    key_ids,
                    [k.key_json for k in one_time_keys],
                )
            if fallback_keys:
                await conn.execute(
                    _SET_FALLBACK,
                    user_id,
                    device_id,
                    [k.algorithm for k in fallback_keys],
                    [k.key_id for k in fallback_keys],
                    [k.key_json for k in fallback_keys],
                )
            counts = await self._counts(conn, user_id, device_id)
        return new_device_keys, counts

    async def counts(self, user_id: str, device_id: str) -> KeyCounts:
        """The device's one-time keys per algorithm and its unused fallback
        key algorithms. One query."""
        async with self._pool.acquire() as conn:
            return await self._counts(conn, user_id, device_id)

    @staticmethod
    async def _counts(conn: asyncpg.Connection, user_id: str, device_id: str) -> KeyCounts:
        rows = await conn.fetch(_COUNTS, user_id, device_id)
        return KeyCounts(
            one_time={r["algorithm"]: r["n"] for r in rows if not r["fallback"]},
            unused_fallback=sorted(r["algorithm"] for r in rows if r["fallback"]),
        )

    async def claim(self, wanted: Collection[tuple[str, str, str]]) -> list[ClaimedKey]:
        """Hand out one key per distinct (user, device, algorithm): a one-time
        key (deleted) or else the fallback key (marked used). One statement."""
        if not wanted:
            return []
        users, devices, algorithms = zip(*wanted, strict=True)
        rows = await self._pool.fetch(_CLAIM, users, devices, algorithms)
        return [ClaimedKey(*r.values()) for r in rows]

    async def query_devices(self, wanted: Sequence[tuple[str, str | None]]) -> list[SignedKey]:
        """The device keys of (user, device) pairs, device None meaning all of
        the user's devices, with their display names and signatures."""
        if not wanted:
            return []
        rows = await self._pool.fetch(
            _QUERY_DEVICES, [u for u, _ in wanted], [d for _, d in wanted]
        )
        return [
            SignedKey(
                r["user_id"],
                r["device_id"],
                r["key_json"],
                _signatures(r["signatures"]),
                r["display_name"],
            )
            for r in rows
        ]

    async def query_cross_signing(
        self, user_ids: Collection[str], requester: str | None
    ) -> list[SignedKey]:
        """The cross-signing keys of the users, with the signatures made by
        `requester` or by the key's owner (only the owner's when None)."""
        if not user_ids:
            return []
        rows = await self._pool.fetch(_QUERY_CROSS_SIGNING, list(user_ids), requester)
        return [
            SignedKey(r["user_id"], r["key_type"], r["key_json"], _signatures(r["signatures"]))
            for r in rows
        ]

    async def cross_signing_keys(
        self, user_ids: Collection[str]
    ) -> dict[str, list[CrossSigningKey]]:
        """The stored cross-signing keys (without uploaded signatures) by user."""
        rows = await self._pool.fetch(
            """SELECT user_id, key_type, public_key, key_json FROM e2e_cross_signing_keys
               WHERE user_id = ANY($1::text[])""",
            list(user_ids),
        )
        found: dict[str, list[CrossSigningKey]] = {}
        for r in rows:
            found.setdefault(r["user_id"], []).append(
                CrossSigningKey(r["key_type"], r["public_key"], r["key_json"])
            )
        return found

    async def set_cross_signing_keys(self, user_id: str, keys: Sequence[CrossSigningKey]) -> None:
        """Replace the given cross-signing keys of the user, in one statement."""
        await self._pool.execute(
            """INSERT INTO e2e_cross_signing_keys (user_id, key_type, public_key, key_json)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])
               ON CONFLICT (user_id, key_type) DO UPDATE
               SET public_key = excluded.public_key, key_json = excluded.key_json""",
            user_id,
            [k.key_type for k in keys],
            [k.public_key for k in keys],
            [k.key_json for k in keys],
        )

    async def device_keys(self, user_id: str, device_ids: Collection[str]) -> dict[str, str]:
        """The stored device keys JSON of some of the user's devices, by device id."""
        rows = await self._pool.fetch(
            """SELECT device_id, key_json FROM e2e_device_keys
               WHERE user_id = $1 AND device_id = ANY($2::text[])""",
            user_id,
            list(device_ids),
        )
        return {r["device_id"]: r["key_json"] for r in rows}

    async def add_signatures(self, signatures: Sequence[Signature]) -> None:
        """Store verified signatures; one for the same signer key and target replaces the old."""
        if not signatures:
            return
        await self._pool.execute(
            """INSERT INTO e2e_signatures
                   (signer_user_id, signer_key_id, target_user_id, target_key_id, signature)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
               ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id)
               DO UPDATE SET signature = excluded.signature""",
            [s.signer_user_id for s in signatures],
            [s.signer_key_id for s in signatures],
            [s.target_user_id for s in signatures],
            [s.target_key_id for s in signatures],
            [s.signature for s in signatures],
        )
