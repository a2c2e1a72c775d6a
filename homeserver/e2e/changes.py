"""Where key changes go: the device list stream (other users' clients
refetch the keys) and listeners (the federation sender, which will turn them
into m.device_list_update and m.signing_key_update EDUs)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs

from homeserver.devices_sync import DeviceListService


@attrs.frozen
class DeviceKeysChanged:
    """Devices of a local user were added, deleted, or got new keys or signatures."""

    user_id: str
    device_ids: tuple[str, ...]
    deleted: bool = False


@attrs.frozen
class SigningKeysChanged:
    """A local user's master or self-signing key was replaced or got new signatures."""

    user_id: str


KeyChange = DeviceKeysChanged | SigningKeysChanged
KeyChangeListener = Callable[[KeyChange], Awaitable[None]]


class KeyChanges:
    def __init__(self, device_lists: DeviceListService) -> None:
        self._device_lists = device_lists
        self._listeners: list[KeyChangeListener] = []

    def add_listener(self, listener: KeyChangeListener) -> None:
        self._listeners.append(listener)

    async def _tell(self, change: KeyChange) -> None:
        for listener in self._listeners:
            await listener(change)

    async def device_keys_changed(self, user_id: str, device_ids: Sequence[str]) -> None:
        await self._device_lists.record_change(user_id)
        await self._tell(DeviceKeysChanged(user_id, tuple(device_ids)))

    async def signing_keys_changed(self, user_id: str, *, public: bool) -> None:
        """`public` is False when only the user-signing key changed, which
        nobody but the user sees: only their own clients refetch."""
        if not public:
            await self._device_lists.record_private_change(user_id, user_id)
            return
        await self._device_lists.record_change(user_id)
        await self._tell(SigningKeysChanged(user_id))

    async def signed_by_user(self, signer: str, user_ids: Sequence[str]) -> None:
        """`signer` signed these users' master keys: the signer's clients
        refetch their keys (the signature is visible to the signer only, so
        no one else is told, and nothing goes to other servers)."""
        for user_id in user_ids:
            await self._device_lists.record_private_change(user_id, signer)

    async def devices_changed(
        self, user_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        """Called by the session service; the device list stream already has
        the change (DeviceListService is a device listener itself)."""
        if added:
            await self._tell(DeviceKeysChanged(user_id, tuple(added)))
        if removed:
            await self._tell(DeviceKeysChanged(user_id, tuple(removed), deleted=True))
