"""Errors raised by the event graph engine.

They live in one small module so that every part of the engine (parsing,
signing, auth rules, state resolution) and the services above it can catch
them without importing each other.
"""

from __future__ import annotations


class InvalidEventError(ValueError):
    """A PDU or JSON value is malformed: wrong shape, type, size, hash or signature.

    Such an event is dropped outright, never stored as rejected, because it
    cannot even be identified reliably.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EventTooLargeError(InvalidEventError):
    """The event, or one of its size-limited fields, is over the spec's byte limit.

    Its own class because clients get 413 M_TOO_LARGE for it, not 400.
    """


class AuthError(Exception):
    """A well-formed event fails the authorization rules.

    `rule` names the rule that failed (for example "4.2" or "m.room.member"), so
    that the reason stored with a rejected event points at the spec.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


class InvalidJSONError(ValueError):
    """JSON text or a JSON value breaks the spec's rules (syntax, numbers, strings).

    API layers map it to M_NOT_JSON / M_BAD_JSON; event parsing turns it into
    `InvalidEventError`, since such an event is dropped.
    """


class SignatureError(Exception):
    """A signed JSON object lacks a valid signature from an entity that must sign it."""
