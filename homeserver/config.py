"""Configuration: attrs classes loaded from YAML.

Every key has a default here and a line in config.example.yaml. Loading is
strict: an unknown key or a value of the wrong type stops start-up with a
message naming the key, because a silently ignored typo in a server config is
a security bug waiting to happen.
"""

from __future__ import annotations

import ipaddress
import typing
from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml
from cattrs.errors import ClassValidationError
from unpaddedbase64 import decode_base64

from homeserver.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from homeserver.public_addresses import split_server_name


class ConfigError(Exception):
    """The configuration file cannot be used; the message says why."""


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 hosts in brackets) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@attrs.frozen
class RateLimit:
    """A token bucket: `burst_count` requests at once, refilled at `per_second`."""

    per_second: float
    burst_count: int


@attrs.frozen
class RateLimits:
    enabled: bool = True
    # Per client IP address and per account being logged in to.
    login: RateLimit = RateLimit(per_second=0.17, burst_count=3)
    # Per client IP address.
    registration: RateLimit = RateLimit(per_second=0.17, burst_count=3)
    # Per user, for every authenticated request that writes (PUT, POST, DELETE).
    client_writes: RateLimit = RateLimit(per_second=10.0, burst_count=100)


@attrs.frozen
class DatabaseConfig:
    # None: start the embedded PostgreSQL in <data_dir>/postgres.
    dsn: str | None = None
    min_pool_size: int = 2
    max_pool_size: int = 20


@attrs.frozen
class MetricsConfig:
    enabled: bool = False
    listen: str = "127.0.0.1:9092"


@attrs.frozen
class TurnConfig:
    """TURN for VoIP calls, with coturn's REST-API shared-secret credentials."""

    uris: list[str] = attrs.Factory(list)
    shared_secret: str | None = None
    user_lifetime_ms: int = 24 * 60 * 60 * 1000
    allow_guests: bool = True


@attrs.frozen
class PushConfig:
    # Send event content to push gateways (false: pushes carry no `content`;
    # sender, room name and counts are still sent, as Synapse's include_content).
    include_content: bool = True
    # Send no push while one of the user's clients is syncing.
    suppress_when_active: bool = False


@attrs.frozen
class UserDirectoryConfig:
    # Search every local user, not only those sharing a room or in public rooms.
    search_all_users: bool = False


@attrs.frozen
class OldSigningKey:
    """A signing key this server used before: objects it signed until expired_ts verify."""

    key_id: str
    # The verify (public) key, unpadded base64.
    key: str
    expired_ts: int


@attrs.frozen
class TrustedKeyServer:
    """A notary asked for other servers' keys, and the keys its answers are signed with."""

    server_name: str
    verify_keys: dict[str, str] = attrs.Factory(dict)


# Addresses outbound federation never connects to (unless federation_insecure):
# loopback, private, link-local, CGNAT, multicast and reserved ranges.
DEFAULT_FEDERATION_IP_RANGE_BLACKLIST = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "192.0.0.0/24",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "0.0.0.0/8",
    "::1/128",
    "::/128",
    "fe80::/10",
    "fc00::/7",
    "ff00::/8",
    "2001:db8::/32",
]


@attrs.frozen
class ThumbnailSize:
    """A thumbnail size offered for images; requests get the best fitting one."""

    width: int
    height: int
    # "crop": exactly this size, cut from the middle; "scale": fits inside it.
    method: str


@attrs.frozen
class MediaConfig:
    # Where media files are kept, relative to data_dir.
    store_path: str = "media"
    max_upload_size: int = 50 * 1024 * 1024
    # Total bytes of uploads per user; None: unlimited.
    max_user_quota_bytes: int | None = None
    # Serve media only on the authenticated /_matrix/client/v1/media endpoints;
    # the legacy /_matrix/media/v3 ones answer 404 for media uploaded meanwhile.
    enable_authenticated_media: bool = True
    # Media ids reserved with /create and not yet uploaded to, per user.
    max_pending_media_uploads: int = 5
    # How long a reserved media id waits for its upload.
    unused_expiration_time_ms: int = 24 * 60 * 60 * 1000
    # Larger images get no thumbnails (decompression bombs).
    max_image_pixels: int = 32_000_000
    thumbnail_sizes: list[ThumbnailSize] = attrs.Factory(
        lambda: [
            ThumbnailSize(32, 32, "crop"),
            ThumbnailSize(96, 96, "crop"),
            ThumbnailSize(320, 240, "scale"),
            ThumbnailSize(640, 480, "scale"),
            ThumbnailSize(800, 600, "scale"),
        ]
    )
    url_preview_enabled: bool = False
    # Networks URL previews may reach although they are not public, e.g.
    # ["127.0.0.0/8"] for tests.
    url_preview_ip_range_whitelist: list[str] = attrs.Factory(list)
    url_preview_max_size: int = 10 * 1024 * 1024
    url_preview_timeout_s: float = 10.0

    def validate(self) -> None:
        for i, size in enumerate(self.thumbnail_sizes):
            if size.method not in ("crop", "scale") or size.width < 1 or size.height < 1:
                raise ConfigError(
                    f"media.thumbnail_sizes[{i}]: expected a positive width and height"
                    " and method crop or scale"
                )
        for network in self.url_preview_ip_range_whitelist:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                raise ConfigError(
                    f"media.url_preview_ip_range_whitelist: not a network: {network!r}"
                ) from None
        if self.max_upload_size < 1:
            raise ConfigError("media.max_upload_size: expected a positive integer")


@attrs.frozen
class HttpConfig:
    """What the HTTP listeners (client and federation) accept of a request's
    head, and how long they wait for a slow client."""

    # Longest request target (path and query string), in bytes: 414 beyond.
    max_url_bytes: int = 8192
    # Longest header line (name and value), in bytes: 431 beyond.
    max_header_bytes: int = 8192
    # Most header lines in one request: 431 beyond.
    max_headers: int = 100
    # A request's headers must be complete this long after its first byte.
    header_timeout_s: float = 30.0
    # A request body must be complete this long after its headers, plus one
    # second for every body_min_rate_bytes received (large uploads).
    body_timeout_s: float = 60.0
    body_min_rate_bytes: int = 1024
    # A connection that sends no request for this long is closed.
    idle_timeout_s: float = 75.0

    def validate(self) -> None:
        sizes = ("max_url_bytes", "max_header_bytes", "max_headers", "body_min_rate_bytes")
        for name in sizes:
            if getattr(self, name) < 1:
                raise ConfigError(f"http.{name}: expected a positive integer")
        for name in ("header_timeout_s", "body_timeout_s", "idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"http.{name}: expected a positive number of seconds")


@attrs.frozen
class ServerNoticesConfig:
    """Server notices (admin API send_server_notice); off while the localpart is None."""

    system_mxid_localpart: str | None = None
    system_mxid_display_name: str = "Server Notices"
    room_name: str = "Server Notices"


@attrs.frozen
class RequestLimits:
    """How much one client request may ask for: each list in a body that
    costs work per entry (an event, a lookup, a remote call) has a ceiling,
    so that one request cannot occupy the server for minutes."""

    # Users invited by one createRoom (`invite` and `invite_3pid` together).
    max_invites_per_create_room: int = 100
    # Entries of createRoom's `initial_state` (each is an event).
    max_initial_state_per_create_room: int = 100
    # Users named in one POST /keys/query.
    max_users_per_key_query: int = 10_000
    # Devices named in one POST /keys/claim.
    max_devices_per_key_claim: int = 10_000
    # Messages (one per user and device) in one PUT /sendToDevice.
    max_messages_per_to_device: int = 10_000
    # Servers named by `via` (or `server_name`) in one join or knock: each
    # one not answering may cost a connection attempt before the next.
    max_via_servers: int = 20

    def validate(self) -> None:
        for field in attrs.fields(RequestLimits):
            if getattr(self, field.name) < 1:
                raise ConfigError(f"request_limits.{field.name}: expected a positive integer")


@attrs.frozen
class Config:
    server_name: str
    # Relative to the directory of the config file.
    data_dir: str = "."
    client_listen: str = "127.0.0.1:8008"
    federation_listen: str = "127.0.0.1:8448"
    # The address clients use to reach this server, for .well-known/matrix/client.
    public_baseurl: str | None = None
    # The host:port other servers use, for .well-known/matrix/server.
    federation_public_address: str | None = None
    signing_key_path: str = "signing.key"
    tls_certificate_path: str = "tls.crt"
    tls_private_key_path: str = "tls.key"
    database: DatabaseConfig = DatabaseConfig()
    enable_registration: bool = False
    registration_requires_token: bool = True
    registration_shared_secret: str | None = None
    # Guest accounts (POST /register?kind=guest) and their upgrade to full ones.
    allow_guest_access: bool = False
    bcrypt_rounds: int = 12
    # Lifetime of an access token that comes with a refresh token.
    refreshable_access_token_lifetime_ms: int = 5 * 60 * 1000
    max_request_body_bytes: int = 1024 * 1024
    http: HttpConfig = HttpConfig()
    rate_limits: RateLimits = RateLimits()
    request_limits: RequestLimits = RequestLimits()
    metrics: MetricsConfig = MetricsConfig()
    # Accept self-signed certificates and loopback/private addresses for
    # outbound federation. For tests only.
    federation_insecure: bool = False
    # Networks outbound federation never connects to (ignored with federation_insecure).
    federation_ip_range_blacklist: list[str] = attrs.Factory(
        lambda: list(DEFAULT_FEDERATION_IP_RANGE_BLACKLIST)
    )
    # Signing keys used before the current one (key rotation), still published.
    old_signing_keys: list[OldSigningKey] = attrs.Factory(list)
    # Notaries asked for a server's keys when it cannot be asked itself.
    trusted_key_servers: list[TrustedKeyServer] = attrs.Factory(list)
    # Send new events and EDUs to the other servers in our rooms.
    federation_sender_enabled: bool = True
    # Wait after a first failure to reach a server; doubles with each failure.
    federation_min_retry_interval_ms: int = 30_000
    default_room_version: str = DEFAULT_ROOM_VERSION
    # Redact messages at the time their `org.matrix.self_destruct_after` says (MSC2228).
    enable_ephemeral_messages: bool = False
    log_level: str = "INFO"
    turn: TurnConfig = TurnConfig()
    push: PushConfig = PushConfig()
    user_directory: UserDirectoryConfig = UserDirectoryConfig()
    server_notices: ServerNoticesConfig = ServerNoticesConfig()
    # MatrixRTC foci advertised in /.well-known/matrix/client, e.g.
    # [{"type": "livekit", "livekit_service_url": "https://..."}].
    rtc_foci: list[dict[str, Any]] = attrs.Factory(list)
    media: MediaConfig = MediaConfig()
    # CA bundle trusted by outbound HTTPS (push, identity servers, previews)
    # besides the system's; relative to data_dir. None: the system's only.
    outbound_tls_ca_file: str | None = None
    # Check no certificates on that outbound HTTPS. For test harnesses only.
    outbound_tls_insecure: bool = False
    # Application service (bridge, bot) registration YAML files; relative to data_dir.
    app_service_config_files: list[str] = attrs.Factory(list)

    def path(self, name: str) -> Path:
        """A path from the config, relative paths taken from the data directory."""
        p = Path(name)
        return p if p.is_absolute() else Path(self.data_dir) / p

    def validate(self) -> None:
        """Checks that need more than a type: raise ConfigError naming the key."""
        checks: list[tuple[str, Any]] = [
            ("client_listen", self.client_listen),
            ("federation_listen", self.federation_listen),
            ("metrics.listen", self.metrics.listen),
        ]
        for key, value in checks:
            try:
                parse_listen(value)
            except ValueError as e:
                raise ConfigError(f"{key}: {e}") from None
        if not self.server_name or "/" in self.server_name:
            raise ConfigError(f"server_name: not a valid server name: {self.server_name!r}")
        try:
            split_server_name(self.server_name)
        except ValueError as e:
            raise ConfigError(f"server_name: {e}") from None
        if self.default_room_version not in KNOWN_ROOM_VERSIONS:
            raise ConfigError(
                f"default_room_version: unknown room version {self.default_room_version!r}"
            )
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("bcrypt_rounds: expected an integer from 4 to 31")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError("log_level: expected one of DEBUG, INFO, WARNING, ERROR")
        self.media.validate()
        self.request_limits.validate()
        self.http.validate()
        self._validate_federation()
        ca_file = self.outbound_tls_ca_file
        if ca_file is not None and not self.path(ca_file).is_file():
            raise ConfigError(f"outbound_tls_ca_file: no such file: {ca_file!r}")

    def _validate_federation(self) -> None:
        if self.federation_min_retry_interval_ms < 1:
            raise ConfigError("federation_min_retry_interval_ms: expected a positive integer")
        for network in self.federation_ip_range_blacklist:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(
                    f"federation_ip_range_blacklist: not a network: {network!r}"
                ) from None
        for i, old in enumerate(self.old_signing_keys):
            if not old.key_id.startswith("ed25519:"):
                raise ConfigError(f"old_signing_keys[{i}].key_id: expected ed25519:<version>")
            _check_verify_key(old.key, f"old_signing_keys[{i}].key")
        for i, notary in enumerate(self.trusted_key_servers):
            if not notary.verify_keys:
                raise ConfigError(f"trusted_key_servers[{i}].verify_keys: at least one key")
            for key_id, key in notary.verify_keys.items():
                if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
                    raise ConfigError(
                        f"trusted_key_servers[{i}].verify_keys: expected ed25519:<version> ids"
                    )
                if not isinstance(key, str):
                    raise ConfigError(f"trusted_key_servers[{i}].verify_keys.{key_id}: a string")
                _check_verify_key(key, f"trusted_key_servers[{i}].verify_keys.{key_id}")


def _check_verify_key(key: str, where: str) -> None:
    try:
        raw = decode_base64(key)
    except Exception:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{where}: expected an unpadded base64 ed25519 key")


def _strict_converter() -> cattrs.Converter:
    """A converter that refuses extra keys and never coerces between types."""
    conv = cattrs.Converter(forbid_extra_keys=True)

    def exact(kind: type, name: str) -> Any:
        def hook(value: Any, _: type) -> Any:
            if isinstance(value, bool) and kind is not bool:
                raise ValueError(f"expected {name}")
            if kind is float and isinstance(value, int):
                return float(value)
            if not isinstance(value, kind):
                raise ValueError(f"expected {name}")
            return value

        return hook

    conv.register_structure_hook(str, exact(str, "a string"))
    conv.register_structure_hook(int, exact(int, "an integer"))
    conv.register_structure_hook(float, exact(float, "a number"))
    conv.register_structure_hook(bool, exact(bool, "true or false"))

    def a_list(value: Any, kind: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("expected a list")
        (item,) = typing.get_args(kind)
        return [conv.structure(v, item) for v in value]

    def a_dict(value: Any, kind: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping")
        return value

    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is list, a_list)
    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is dict, a_dict)
    return conv


_converter = _strict_converter()


def config_from_dict(data: Any) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a YAML mapping")
    try:
        config = _converter.structure(data, Config)
    except ClassValidationError as e:
        lines = cattrs.transform_error(e, path="config")
        raise ConfigError("; ".join(lines)) from None
    config.validate()
    return config


def load_config(path: str | Path) -> Config:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    config = config_from_dict(data)
    # A relative data_dir is relative to the config file, wherever the server starts.
    data_dir = Path(path).parent / config.data_dir
    return attrs.evolve(config, data_dir=str(data_dir.resolve()))


def config_to_dict(config: Config) -> dict[str, Any]:
    return _converter.unstructure(config)
