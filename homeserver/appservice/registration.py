"""Application service registrations: the YAML files `app_service_config_files` lists.

A registration (the Application Service API's "Registration" section) says
which users, aliases and rooms a bridge or bot owns, the tokens each side
authenticates with, and where its events go. They are loaded once at start-up;
a file that cannot be used stops the server with a ConfigError naming the file
and the field, because a half-understood registration would let a bridge act
as users it does not own or refuse ones it does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from homeserver.config import ConfigError
from homeserver.identifiers import is_valid_localpart, user_id_for

# The unstable names of the MSCs a registration may opt in to.
MSC2409_PUSH_EPHEMERAL = "de.sorunome.msc2409.push_ephemeral"
MSC3202_DEVICE_MASQUERADING = "org.matrix.msc3202"
MSC4190_DEVICE_MANAGEMENT = "io.element.msc4190"


@attrs.frozen
class Namespace:
    """One `namespaces` entry: ids its regex matches in full belong to the appservice."""

    regex: re.Pattern[str]
    exclusive: bool

    def matches(self, value: str) -> bool:
        return self.regex.fullmatch(value) is not None


def _in(namespaces: Iterable[Namespace], value: str, *, exclusive_only: bool = False) -> bool:
    return any(ns.matches(value) for ns in namespaces if ns.exclusive or not exclusive_only)


@attrs.frozen
class AppService:
    """One registration, as loaded and checked."""

    id: str
    url: str | None  # None: no pushes
    as_token: str
    hs_token: str
    sender: str  # full user id of sender_localpart
    users: tuple[Namespace, ...]
    aliases: tuple[Namespace, ...]
    rooms: tuple[Namespace, ...]
    rate_limited: bool
    protocols: tuple[str, ...]
    receive_ephemeral: bool
    device_masquerading: bool
    device_management: bool

    def is_user_in_namespace(self, user_id: str) -> bool:
        return user_id == self.sender or _in(self.users, user_id)

    def is_alias_in_namespace(self, alias: str) -> bool:
        return _in(self.aliases, alias)

    def is_room_in_namespace(self, room_id: str) -> bool:
        return _in(self.rooms, room_id)

    def is_exclusive_user(self, user_id: str) -> bool:
        """Whether nobody but this appservice may register or act as `user_id`."""
        return user_id == self.sender or _in(self.users, user_id, exclusive_only=True)

    def is_exclusive_alias(self, alias: str) -> bool:
        return _in(self.aliases, alias, exclusive_only=True)


class AppServices:
    """All registrations, looked up by id and by the token they send."""

    def __init__(self, services: Sequence[AppService] = ()) -> None:
        self._all = tuple(services)
        self._by_id = {s.id: s for s in self._all}
        self._by_as_token = {s.as_token: s for s in self._all}

    def all(self) -> Sequence[AppService]:
        return self._all

    def by_id(self, id: str) -> AppService | None:
        return self._by_id.get(id)

    def by_as_token(self, token: str) -> AppService | None:
        return self._by_as_token.get(token)

    def user_owners(self, user_id: str) -> list[AppService]:
        """The appservices whose user namespace holds `user_id`."""
        return [s for s in self._all if s.is_user_in_namespace(user_id)]

    def alias_owners(self, alias: str) -> list[AppService]:
        return [s for s in self._all if s.is_alias_in_namespace(alias)]

    def exclusive_user_owner(self, user_id: str) -> AppService | None:
        return next((s for s in self._all if s.is_exclusive_user(user_id)), None)

    def exclusive_alias_owner(self, alias: str) -> AppService | None:
        return next((s for s in self._all if s.is_exclusive_alias(alias)), None)

    def for_protocol(self, protocol: str) -> list[AppService]:
        return [s for s in self._all if protocol in s.protocols]


def load_appservices(paths: Iterable[str | Path], server_name: str) -> AppServices:
    """Every registration file in `paths`, checked alone and against each other."""
    services: list[AppService] = []
    seen_ids: dict[str, Path] = {}
    seen_tokens: dict[str, tuple[Path, str]] = {}
    for path in map(Path, paths):
        service = load_registration(path, server_name)
        if service.id in seen_ids:
            raise ConfigError(
                f"{path}: id: {service.id!r} is also the id in {seen_ids[service.id]}"
            )
        seen_ids[service.id] = path
        for field, token in (("as_token", service.as_token), ("hs_token", service.hs_token)):
            if token in seen_tokens:
                other_path, other_field = seen_tokens[token]
                raise ConfigError(
                    f"{path}: {field}: the same token is the {other_field} of {other_path}"
                )
            seen_tokens[token] = (path, field)
        services.append(service)
    return AppServices(services)


def load_registration(path: Path, server_name: str) -> AppService:
    """One registration file, or a ConfigError naming it and the field at fault."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"app_service_config_files: cannot read {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a registration must be a YAML mapping")
    try:
        return _parse(data, server_name)
    except _FieldError as e:
        raise ConfigError(f"{path}: {e.field}: {e.reason}") from None


class _FieldError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _string(data: dict[str, Any], field: str, *, nullable: bool = False) -> Any:
    if field not in data:
        raise _FieldError(field, "required")
    value = data[field]
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        raise _FieldError(field, "expected a non-empty string")
    return value


def _flag(data: dict[str, Any], field: str, default: bool) -> bool:
    value = data.get(field, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _FieldError(field, "expected true or false")
    return value


def _namespaces(data: dict[str, Any], kind: str) -> tuple[Namespace, ...]:
    entries = data.get(kind)
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise _FieldError(f"namespaces.{kind}", "expected a list")
    found = []
    for i, entry in enumerate(entries):
        where = f"namespaces.{kind}[{i}]"
        if not isinstance(entry, dict):
            raise _FieldError(where, "expected a mapping with regex and exclusive")
        regex = entry.get("regex")
        if not isinstance(regex, str):
            raise _FieldError(f"{where}.regex", "required, a string")
        try:
            pattern = re.compile(regex)
        except re.error as e:
            raise _FieldError(f"{where}.regex", f"not a valid regular expression: {e}") from None
        exclusive = entry.get("exclusive")
        if not isinstance(exclusive, bool):
            raise _FieldError(f"{where}.exclusive", "required, true or false")
        found.append(Namespace(pattern, exclusive))
    return tuple(found)


def _parse(data: dict[str, Any], server_name: str) -> AppService:
    service_id = _string(data, "id")
    url = _string(data, "url", nullable=True)
    if url is not None and not url.startswith(("http://", "https://")):
        raise _FieldError("url", "expected an http:// or https:// URL, or null")
    as_token = _string(data, "as_token")
    hs_token = _string(data, "hs_token")
    if as_token == hs_token:
        raise _FieldError("hs_token", "must differ from as_token")
    localpart = _string(data, "sender_localpart")
    if not is_valid_localpart(localpart):
        raise _FieldError("sender_localpart", f"not a valid user id localpart: {localpart!r}")
    if "namespaces" not in data:
        raise _FieldError("namespaces", "required")
    namespaces = data["namespaces"]
    if not isinstance(namespaces, dict):
        raise _FieldError("namespaces", "expected a mapping of users, aliases and rooms")
    for kind in namespaces:
        if kind not in ("users", "aliases", "rooms"):
            raise _FieldError(f"namespaces.{kind}", "unknown; expected users, aliases or rooms")
    protocols = data.get("protocols") or []
    if not isinstance(protocols, list) or not all(isinstance(p, str) and p for p in protocols):
        raise _FieldError("protocols", "expected a list of protocol names")
    return AppService(
        id=service_id,
        url=url,
        as_token=as_token,
        hs_token=hs_token,
        sender=user_id_for(localpart, server_name),
        users=_namespaces(namespaces, "users"),
        aliases=_namespaces(namespaces, "aliases"),
        rooms=_namespaces(namespaces, "rooms"),
        rate_limited=_flag(data, "rate_limited", True),
        protocols=tuple(protocols),
        receive_ephemeral=_flag(data, "receive_ephemeral", False)
        or _flag(data, MSC2409_PUSH_EPHEMERAL, False),
        device_masquerading=_flag(data, MSC3202_DEVICE_MASQUERADING, False),
        device_management=_flag(data, MSC4190_DEVICE_MANAGEMENT, False),
    )
