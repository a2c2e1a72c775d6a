"""Checks on signed key objects shared by device keys, cross-signing keys
and signature uploads: canonical form, single ed25519 keys, signatures."""

from __future__ import annotations

import json
from typing import Any

from canonicaljson import encode_canonical_json
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

ED25519 = "ed25519"


def canonical(value: Any) -> str:
    return encode_canonical_json(value).decode()


def unsigned_part(key: dict[str, Any]) -> str:
    """The canonical JSON of a key object without its signatures and unsigned
    data: what a signature covers, and what two uploads of a key must share."""
    return canonical({k: v for k, v in key.items() if k not in ("signatures", "unsigned")})


def signature_of(key: dict[str, Any], user_id: str, key_id: str) -> str | None:
    """The signature `user_id` made with `key_id` on the object, if it carries one."""
    signatures = key.get("signatures")
    if not isinstance(signatures, dict):
        return None
    by_user = signatures.get(user_id)
    if not isinstance(by_user, dict):
        return None
    value = by_user.get(key_id)
    return value if isinstance(value, str) else None


def signer_key_ids(key: dict[str, Any], user_id: str) -> list[str]:
    """The ids of the keys of `user_id` that signed the object."""
    signatures = key.get("signatures")
    by_user = signatures.get(user_id) if isinstance(signatures, dict) else None
    return list(by_user) if isinstance(by_user, dict) else []


def verifies(key: dict[str, Any], user_id: str, key_id: str, public_key: str) -> bool:
    """Whether the object carries a valid signature by `user_id`'s ed25519 key
    `key_id` ("ed25519:..."), whose unpadded base64 public key is given."""
    if not key_id.startswith(f"{ED25519}:") or signature_of(key, user_id, key_id) is None:
        return False
    try:
        verify_signed_json(key, user_id, decode_verify_key_bytes(key_id, decode_base64(public_key)))
    except (SignatureVerifyException, ValueError, TypeError):
        return False
    return True


def single_ed25519_key(key: dict[str, Any]) -> str | None:
    """The public key of a cross-signing key object, which holds exactly one
    ed25519 key named after itself ("ed25519:<public key>": "<public key>")."""
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    ((key_id, public_key),) = keys.items()
    if not isinstance(public_key, str) or key_id != f"{ED25519}:{public_key}":
        return None
    try:
        if len(decode_base64(public_key)) != 32:
            return None
    except ValueError:
        return None
    return public_key


def loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def with_signatures(key: dict[str, Any], extra: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The key object with uploaded signatures merged into its own."""
    if not extra:
        return key
    signatures: dict[str, dict[str, str]] = {
        user: dict(sigs) for user, sigs in key.get("signatures", {}).items()
    }
    for user, key_id, signature in extra:
        signatures.setdefault(user, {})[key_id] = signature
    return {**key, "signatures": signatures}
