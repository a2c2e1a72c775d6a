"""Server signing keys: ours as published, and other servers' as fetched.

`OurKeys` builds the signed answer of /_matrix/key/v2/server. `KeyRing`
answers "which verify keys of server S were valid at time T", from memory,
then PostgreSQL, then the network: S's own key endpoint (self-signed), then
the configured notaries (signed by the notary too). Concurrent lookups of one
server share one fetch. The key ring also answers notary queries made to us.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
from signedjson.key import decode_verify_key_bytes, encode_verify_key_base64, get_verify_key
from signedjson.sign import SignatureVerifyException, verify_signed_json
from signedjson.types import SigningKey, VerifyKey
from unpaddedbase64 import decode_base64

from federation.transport import FederationClient, FederationError
from homeserver.events.errors import SignatureError
from homeserver.events.signing import sign_json, verify_json_signature
from storage.database import now_ms
from storage.server_keys import ServerKeyStore, StoredServerKey

logger = logging.getLogger(__name__)

# Our key answer is valid this long; it is re-signed when a fraction of that has passed.
OUR_KEYS_VALIDITY_MS = 24 * 3600 * 1000
OUR_KEYS_REFRESH_MS = 3600 * 1000
# Spec: a key is used no longer than 7 days past the time it was fetched.
MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
# After a fetch that did not produce a wanted key, that server is not asked
# again for it this soon (a forged key id must not make us fetch per request).
REFETCH_AFTER_MISS_MS = 30_000
KEY_FETCH_TIMEOUT_S = 30.0


def key_id_of(signing_key: SigningKey | VerifyKey) -> str:
    return f"{signing_key.alg}:{signing_key.version}"


@attrs.frozen
class OldKey:
    """A key this server signed with before; objects up to expired_ts verify with it."""

    key_id: str
    verify_key: VerifyKey
    expired_ts: int


@attrs.frozen
class Notary:
    """A trusted key server and the keys its answers must be signed with."""

    server_name: str
    verify_keys: Mapping[str, VerifyKey]


def decode_verify_key(key_id: str, key_base64: str) -> VerifyKey:
    """A verify key from its id and unpadded base64; ValueError if unusable."""
    try:
        return decode_verify_key_bytes(key_id, decode_base64(key_base64))
    except Exception as e:
        raise ValueError(f"bad verify key {key_id}: {e}") from None


class OurKeys:
    """Our signing key, our old keys, and the signed answer that publishes them."""

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        old_keys: Sequence[OldKey] = (),
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.key_id = key_id_of(signing_key)
        self._verify_key = get_verify_key(signing_key)
        self._old = {k.key_id: k for k in old_keys if k.key_id != self.key_id}
        self._clock = clock
        self._response: dict[str, Any] | None = None
        self._signed_at = 0

    def response(self) -> dict[str, Any]:
        """The signed key answer; re-signed hourly, valid for a day."""
        now = self._clock()
        if self._response is None or now - self._signed_at >= OUR_KEYS_REFRESH_MS:
            self._response = sign_json(
                {
                    "server_name": self.server_name,
                    "valid_until_ts": now + OUR_KEYS_VALIDITY_MS,
                    "verify_keys": {
                        self.key_id: {"key": encode_verify_key_base64(self._verify_key)}
                    },
                    "old_verify_keys": {
                        k.key_id: {
                            "key": encode_verify_key_base64(k.verify_key),
                            "expired_ts": k.expired_ts,
                        }
                        for k in self._old.values()
                    },
                },
                self.server_name,
                self.signing_key,
            )
            self._signed_at = now
        return self._response

    def verify_keys(self, key_ids: Iterable[str], at_ts: int) -> dict[str, VerifyKey]:
        found: dict[str, VerifyKey] = {}
        for key_id in key_ids:
            if key_id == self.key_id:
                found[key_id] = self._verify_key
            elif (old := self._old.get(key_id)) is not None and at_ts <= old.expired_ts:
                found[key_id] = old.verify_key
        return found


def parse_key_response(
    response: Any, server_name: str, *, from_server: str, fetched_ts: int
) -> list[StoredServerKey]:
    """The keys of a key answer, after checking it is `server_name`'s and self-signed.

    Raises ValueError naming what is wrong.
    """
    if not isinstance(response, dict) or response.get("server_name") != server_name:
        raise ValueError(f"answer is not about {server_name}")
    valid_until = response.get("valid_until_ts")
    if type(valid_until) is not int:
        raise ValueError("valid_until_ts is not an integer")
    current = response.get("verify_keys")
    old = response.get("old_verify_keys", {})
    if not isinstance(current, dict) or not isinstance(old, dict):
        raise ValueError("verify_keys and old_verify_keys must be objects")
    key_json = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
    keys: dict[str, tuple[VerifyKey, int]] = {}
    for key_id, entry in current.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ValueError(f"verify key {key_id} has no key")
        until = min(valid_until, fetched_ts + MAX_KEY_VALIDITY_MS)
        keys[key_id] = (decode_verify_key(key_id, entry["key"]), until)
    signatures = response.get("signatures", {})
    own = signatures.get(server_name) if isinstance(signatures, dict) else None
    signed_by = [k for k in keys if isinstance(own, dict) and k in own]
    if not signed_by:
        raise ValueError(f"answer is not signed by a key of {server_name}")
    for key_id in signed_by:
        try:
            verify_signed_json(response, server_name, keys[key_id][0])
        except SignatureVerifyException:
            raise ValueError(f"bad self-signature with {key_id}") from None
    for key_id, entry in old.items():
        if key_id in keys:
            continue
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("key"), str)
            or type(entry.get("expired_ts")) is not int
        ):
            raise ValueError(f"old verify key {key_id} needs key and expired_ts")
        keys[key_id] = (decode_verify_key(key_id, entry["key"]), entry["expired_ts"])
    return [
        StoredServerKey(
            server_name,
            key_id,
            encode_verify_key_base64(verify_key),
            until,
            from_server,
            fetched_ts,
            key_json,
        )
        for key_id, (verify_key, until) in keys.items()
    ]


@attrs.frozen
class _Known:
    verify_key: VerifyKey
    valid_until_ts: int
    stored: StoredServerKey


class KeyRing:
    """Other servers' verify keys, cached in memory and PostgreSQL."""

    def __init__(
        self,
        store: ServerKeyStore,
        client: FederationClient,
        ours: OurKeys,
        notaries: Sequence[Notary] = (),
        *,
        clock: Callable[[], int] = now_ms,
        refetch_after_miss_ms: int = REFETCH_AFTER_MISS_MS,
    ) -> None:
        self._store = store
        self._client = client
        self.ours = ours
        self._notaries = list(notaries)
        self._clock = clock
        self._refetch_after_miss_ms = refetch_after_miss_ms
        self._known: dict[str, dict[str, _Known]] = {}
        self._misses: dict[tuple[str, str], int] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}

    async def verify_keys(
        self, server_name: str, key_ids: Iterable[str], at_ts: int
    ) -> dict[str, VerifyKey]:
        """The keys among `key_ids` of `server_name` valid for an object made at `at_ts`.

        Unknown or no longer valid keys are fetched (once per server at a
        time); keys that still cannot be found are left out of the answer.
        """
        key_ids = list(key_ids)
        if server_name == self.ours.server_name:
            return self.ours.verify_keys(key_ids, at_ts)
        await self._load(server_name)
        found = self._valid(server_name, key_ids, at_ts)
        wanted = [k for k in key_ids if k not in found]
        now = self._clock()
        if wanted and any(
            now - self._misses.get((server_name, k), -(2**62)) >= self._refetch_after_miss_ms
            for k in wanted
        ):
            await self._fetch_shared(server_name)
            found = self._valid(server_name, key_ids, at_ts)
            for key_id in wanted:
                if key_id not in found:
                    self._misses[(server_name, key_id)] = now
                else:
                    self._misses.pop((server_name, key_id), None)
        return found

    async def verify_json(self, obj: Mapping[str, Any], server_name: str, at_ts: int) -> None:
        """Check `server_name`'s signature on `obj` with keys valid at `at_ts`.

        Raises SignatureError.
        """
        signatures = obj.get("signatures")
        by_server = signatures.get(server_name) if isinstance(signatures, Mapping) else None
        if not isinstance(by_server, Mapping):
            raise SignatureError(f"no signature from {server_name}")
        keys = await self.verify_keys(server_name, by_server.keys(), at_ts)
        verify_json_signature(obj, server_name, lambda _s, key_id: keys.get(key_id))

    def _valid(self, server_name: str, key_ids: Iterable[str], at_ts: int) -> dict[str, VerifyKey]:
        known = self._known.get(server_name, {})
        return {
            k: known[k].verify_key
            for k in key_ids
            if k in known and at_ts <= known[k].valid_until_ts
        }

    async def _load(self, server_name: str) -> None:
        if server_name in self._known:
            return
        stored = await self._store.keys_of([server_name])
        self._known.setdefault(server_name, {})
        self._remember(stored)

    def _remember(self, keys: Iterable[StoredServerKey]) -> None:
        for key in keys:
            self._known.setdefault(key.server_name, {})[key.key_id] = _Known(
                decode_verify_key(key.key_id, key.verify_key), key.valid_until_ts, key
            )

    async def _fetch_shared(self, server_name: str) -> None:
        task = self._inflight.get(server_name)
        if task is None:
            task = asyncio.create_task(self._fetch(server_name))
            self._inflight[server_name] = task
            task.add_done_callback(lambda _: self._inflight.pop(server_name, None))
        await asyncio.shield(task)

    async def _fetch(self, server_name: str) -> None:
        """Ask the server itself, then each notary, until one answers."""
        try:
            keys = await self.fetch_direct(server_name)
        except (FederationError, ValueError) as e:
            logger.info("fetching the keys of %s directly failed: %s", server_name, e)
            keys = []
        for notary in self._notaries:
            if keys:
                break
            try:
                keys = await self.fetch_from_notary(notary, server_name)
            except (FederationError, ValueError) as e:
                logger.info("notary %s gave no keys of %s: %s", notary.server_name, server_name, e)
        if keys:
            self._remember(keys)
            await self._store.store(keys)

    async def fetch_direct(self, server_name: str) -> list[StoredServerKey]:
        """The keys from `server_name`'s own /_matrix/key/v2/server, checked."""
        response = await self._client.get_json(
            server_name,
            "/_matrix/key/v2/server",
            signed=False,
            ignore_backoff=True,
            timeout_s=KEY_FETCH_TIMEOUT_S,
        )
        return parse_key_response(
            response, server_name, from_server=server_name, fetched_ts=self._clock()
        )

    async def fetch_from_notary(self, notary: Notary, server_name: str) -> list[StoredServerKey]:
        """`server_name`'s keys as `notary` vouches for them (both signatures checked)."""
        response = await self._client.post_json(
            notary.server_name,
            "/_matrix/key/v2/query",
            {"server_keys": {server_name: {}}},
            signed=False,
            ignore_backoff=True,
            timeout_s=KEY_FETCH_TIMEOUT_S,
        )
        answers = response.get("server_keys") if isinstance(response, dict) else None
        if not isinstance(answers, list):
            raise ValueError("notary answer has no server_keys list")
        keys: list[StoredServerKey] = []
        for answer in answers:
            if not isinstance(answer, dict) or answer.get("server_name") != server_name:
                continue
            try:
                verify_json_signature(
                    answer, notary.server_name, lambda _s, k: notary.verify_keys.get(k)
                )
            except SignatureError as e:
                raise ValueError(f"notary signature: {e}") from None
            keys += parse_key_response(
                answer, server_name, from_server=notary.server_name, fetched_ts=self._clock()
            )
        return keys

    async def notary_answers(
        self, criteria: Mapping[str, Mapping[str, int]], default_minimum: int | None = None
    ) -> list[dict[str, Any]]:
        """Our answer to a notary query, each key answer with our signature added.

        `criteria`: server name -> {key id: minimum_valid_until_ts}; no key ids
        means every key, with `default_minimum` (else now) as the minimum.
        Answers not valid long enough are fetched again from the server first.
        """
        answers: list[dict[str, Any]] = []
        ours = self.ours
        minimum_now = default_minimum if default_minimum is not None else self._clock()
        for server_name, wanted in criteria.items():
            if server_name == ours.server_name:
                answers.append(ours.response())
                continue
            await self._load(server_name)
            known = self._known.get(server_name, {})
            if wanted:
                stale = any(
                    k not in known or known[k].valid_until_ts < m for k, m in wanted.items()
                )
            else:
                stale = all(k.valid_until_ts < minimum_now for k in known.values())
            if stale:
                try:
                    await self._fetch_shared(server_name)
                except Exception:
                    logger.exception("notary fetch of %s failed", server_name)
                known = self._known.get(server_name, {})
            texts = {
                k.stored.key_json for key_id, k in known.items() if not wanted or key_id in wanted
            }
            for text in sorted(texts):
                answers.append(sign_json(json.loads(text), ours.server_name, ours.signing_key))
        return answers
