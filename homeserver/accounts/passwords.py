"""Password hashing with bcrypt, run in a thread.

bcrypt at a useful cost takes a quarter of a second of CPU: on the event loop
that would stall every other request, and bcrypt releases the GIL.
"""

from __future__ import annotations

import asyncio

import bcrypt

# bcrypt reads 72 bytes. Older bcrypt releases cut longer passwords there
# silently, and hashes imported from other servers were made that way, so we
# cut the same way rather than refuse long passwords.
_BCRYPT_INPUT_BYTES = 72


def _secret(password: str) -> bytes:
    return password.encode()[:_BCRYPT_INPUT_BYTES]


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._rounds)
        hashed = await asyncio.to_thread(bcrypt.hashpw, _secret(password), salt)
        return hashed.decode()

    async def check(self, password: str, password_hash: str | None) -> bool:
        if not password_hash:
            return False
        try:
            return await asyncio.to_thread(
                bcrypt.checkpw, _secret(password), password_hash.encode()
            )
        except ValueError:  # not a bcrypt hash
            return False
