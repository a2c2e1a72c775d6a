"""Cross-signing: a user's master, self-signing and user-signing keys, and
the signatures made with them (and with devices) on keys.

The master key signs the other two. The self-signing key signs the user's
own devices; the user-signing key signs other users' master keys; a device
may sign its user's master key. Every signature is verified before it is
stored.
"""

from __future__ import annotations

from typing import Any

from homeserver.e2e.changes import KeyChanges
from homeserver.e2e.signing import (
    canonical,
    loads,
    signature_of,
    signer_key_ids,
    single_ed25519_key,
    unsigned_part,
    verifies,
)
from homeserver.errors import MatrixError, bad_json, invalid_param, missing_param
from homeserver.identifiers import split_user_id
from storage.e2e_keys import CrossSigningKey, E2eKeyStore, Signature

KEY_TYPES = ("master", "self_signing", "user_signing")


def _invalid_signature(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_SIGNATURE", message)


def _failure(errcode: str, message: str) -> dict[str, str]:
    return {"errcode": errcode, "error": message}


class CrossSigningService:
    def __init__(self, store: E2eKeyStore, changes: KeyChanges) -> None:
        self._store = store
        self._changes = changes

    async def needs_authentication(self, user_id: str, body: dict[str, Any]) -> bool:
        """Whether an upload must pass user-interactive authentication: not
        the first one (no master key yet, as Synapse allows, since clients
        set up cross-signing right after registration), nor a repeat of the
        stored keys."""
        stored = {
            k.key_type: k
            for k in (await self._store.cross_signing_keys([user_id])).get(user_id, [])
        }
        if "master" not in stored:
            return False
        for key_type in KEY_TYPES:
            given = body.get(f"{key_type}_key")
            if given is None:
                continue
            if key_type not in stored or canonical(given) != stored[key_type].key_json:
                return True
        return False

    async def upload_keys(self, user_id: str, body: dict[str, Any]) -> None:
        """POST /keys/device_signing/upload, once authorised."""
        stored = {
            k.key_type: k
            for k in (await self._store.cross_signing_keys([user_id])).get(user_id, [])
        }
        new: dict[str, tuple[dict[str, Any], str]] = {}
        for key_type in KEY_TYPES:
            key = body.get(f"{key_type}_key")
            if key is not None:
                new[key_type] = (key, self._check_key(key, user_id, key_type))
        if not new:
            return
        if "master" in new:
            master_public = new["master"][1]
        elif "master" in stored:
            master_public = stored["master"].public_key
        else:
            raise missing_param("No master key available")
        for key_type in ("self_signing", "user_signing"):
            if key_type in new and not verifies(
                new[key_type][0], user_id, f"ed25519:{master_public}", master_public
            ):
                raise _invalid_signature(f"The {key_type} key is not signed by the master key")
        # A repeated upload of stored keys changes nothing and tells no one.
        changed = [
            CrossSigningKey(t, public, canonical(key))
            for t, (key, public) in new.items()
            if t not in stored or stored[t].key_json != canonical(key)
        ]
        if not changed:
            return
        await self._store.set_cross_signing_keys(user_id, changed)
        await self._changes.signing_keys_changed(
            user_id, public=bool({"master", "self_signing"} & {k.key_type for k in changed})
        )

    @staticmethod
    def _check_key(key: Any, user_id: str, key_type: str) -> str:
        """The public key of a well-formed cross-signing key of the user."""
        if not isinstance(key, dict):
            raise bad_json(f"'{key_type}_key' must be an object")
        if key.get("user_id") != user_id:
            raise invalid_param(f"The {key_type} key must be for {user_id}")
        usage = key.get("usage")
        if not isinstance(usage, list) or key_type not in usage:
            raise invalid_param(f"The {key_type} key's usage must include '{key_type}'")
        public_key = single_ed25519_key(key)
        if public_key is None:
            raise invalid_param(f"The {key_type} key must hold exactly one ed25519 key")
        signatures = key.get("signatures", {})
        if not isinstance(signatures, dict):
            raise bad_json(f"'{key_type}_key.signatures' must be an object")
        return public_key

    async def upload_signatures(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /keys/signatures/upload: {user: {key id: signed object}}.

        The valid signatures are stored; each invalid one is reported in
        `failures` under its user and key id.
        """
        for target_user, objects in body.items():
            if split_user_id(target_user) is None:
                raise invalid_param(f"'{target_user}' is not a user id")
            if not isinstance(objects, dict) or not all(
                isinstance(o, dict) for o in objects.values()
            ):
                raise bad_json(f"'{target_user}' must map key ids to signed key objects")
        keys = await self._store.cross_signing_keys({user_id, *body})
        mine = {k.key_type: k for k in keys.get(user_id, [])}
        own_objects: dict[str, dict[str, Any]] = body.get(user_id, {})
        master = mine.get("master")
        # Devices that are signed, and devices that sign the master key.
        device_ids = {k for k in own_objects if master is None or k != master.public_key}
        if master is not None and master.public_key in own_objects:
            signed_master = own_objects[master.public_key]
            device_ids.update(
                key_id.removeprefix("ed25519:")
                for key_id in signer_key_ids(signed_master, user_id)
                if key_id.startswith("ed25519:")
            )
        device_keys = {
            device_id: loads(text)
            for device_id, text in (await self._store.device_keys(user_id, device_ids)).items()
        }
        failures: dict[str, dict[str, dict[str, str]]] = {}
        signatures: dict[tuple[str, str, str, str], Signature] = {}
        signed_devices: list[str] = []
        signed_own_master = False
        for target_user, objects in body.items():
            for key_id, signed in objects.items():
                if target_user == user_id:
                    found = self._own_signatures(user_id, key_id, signed, mine, device_keys)
                else:
                    their_master = next(
                        (k for k in keys.get(target_user, []) if k.key_type == "master"), None
                    )
                    found = self._other_signature(
                        user_id, target_user, key_id, signed, mine.get("user_signing"), their_master
                    )
                if isinstance(found, dict):
                    failures.setdefault(target_user, {})[key_id] = found
                    continue
                for signature in found:
                    key = (
                        signature.signer_user_id,
                        signature.signer_key_id,
                        signature.target_user_id,
                        signature.target_key_id,
                    )
                    signatures[key] = signature
                if target_user == user_id and master is not None and key_id == master.public_key:
                    signed_own_master = True
                elif target_user == user_id:
                    signed_devices.append(key_id)
        await self._store.add_signatures(list(signatures.values()))
        if signed_devices:
            await self._changes.device_keys_changed(user_id, signed_devices)
        if signed_own_master:
            await self._changes.signing_keys_changed(user_id, public=True)
        others = {s.target_user_id for s in signatures.values()} - {user_id}
        if others:
            await self._changes.signed_by_user(user_id, sorted(others))
        return {"failures": failures}

    @staticmethod
    def _own_signatures(
        user_id: str,
        key_id: str,
        signed: dict[str, Any],
        mine: dict[str, CrossSigningKey],
        device_keys: dict[str, dict[str, Any]],
    ) -> list[Signature] | dict[str, str]:
        """A device signed by the self-signing key, or the master key signed
        by devices; a failure object otherwise."""
        master = mine.get("master")
        if master is not None and key_id == master.public_key:
            if unsigned_part(signed) != unsigned_part(loads(master.key_json)):
                return _failure("M_INVALID_PARAM", "The object is not the stored master key")
            found = []
            for signer_key_id in signer_key_ids(signed, user_id):
                device_id = signer_key_id.removeprefix("ed25519:")
                device = device_keys.get(device_id)
                if device is None or signer_key_id == f"ed25519:{master.public_key}":
                    continue
                public_key = device.get("keys", {}).get(signer_key_id)
                if not isinstance(public_key, str) or not verifies(
                    signed, user_id, signer_key_id, public_key
                ):
                    return _failure("M_INVALID_SIGNATURE", f"Invalid signature by {signer_key_id}")
                signature = signature_of(signed, user_id, signer_key_id)
                assert signature is not None
                found.append(Signature(user_id, signer_key_id, user_id, key_id, signature))
            if not found:
                return _failure("M_INVALID_SIGNATURE", "No signature by a device of the user")
            return found
        device = device_keys.get(key_id)
        if device is None:
            return _failure("M_NOT_FOUND", "Unknown device or key")
        self_signing = mine.get("self_signing")
        if self_signing is None:
            return _failure("M_MISSING_PARAM", "No self-signing key is uploaded")
        if unsigned_part(signed) != unsigned_part(device):
            return _failure("M_INVALID_PARAM", "The object is not the stored device keys")
        signer_key_id = f"ed25519:{self_signing.public_key}"
        if not verifies(signed, user_id, signer_key_id, self_signing.public_key):
            return _failure("M_INVALID_SIGNATURE", "Invalid signature by the self-signing key")
        signature = signature_of(signed, user_id, signer_key_id)
        assert signature is not None
        return [Signature(user_id, signer_key_id, user_id, key_id, signature)]

    @staticmethod
    def _other_signature(
        user_id: str,
        target_user: str,
        key_id: str,
        signed: dict[str, Any],
        user_signing: CrossSigningKey | None,
        their_master: CrossSigningKey | None,
    ) -> list[Signature] | dict[str, str]:
        """Another user's master key signed by the user's user-signing key."""
        if their_master is None or key_id != their_master.public_key:
            return _failure("M_NOT_FOUND", "Only another user's master key can be signed")
        if user_signing is None:
            return _failure("M_MISSING_PARAM", "No user-signing key is uploaded")
        if unsigned_part(signed) != unsigned_part(loads(their_master.key_json)):
            return _failure("M_INVALID_PARAM", "The object is not the stored master key")
        signer_key_id = f"ed25519:{user_signing.public_key}"
        if not verifies(signed, user_id, signer_key_id, user_signing.public_key):
            return _failure("M_INVALID_SIGNATURE", "Invalid signature by the user-signing key")
        signature = signature_of(signed, user_id, signer_key_id)
        assert signature is not None
        return [Signature(user_id, signer_key_id, target_user, key_id, signature)]
