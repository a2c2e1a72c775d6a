"""Configuration: attrs classes loaded from YAML.

Every key has a default here and a line in config.example.yaml. Loading is
strict: an unknown key or a value of the wrong type stops start-up with a
message naming the key, because a silently ignored typo in a server config is
a security bug waiting to happen.
"""

from __future__ import annotations

import ipaddress
import re
import typing
from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml
from cattrs.errors import ClassValidationError
from unpaddedbase64 import decode_base64

from homeserver.cluster.roles import check_workers
from homeserver.config_secrets import SecretError, resolve_secrets
from homeserver.config_yaml import load_yaml
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
    # Delayed event management and look-ups (MSC4140), per user or, without
    # a token, per IP address (Synapse's rc_delayed_event_mgmt).
    delayed_event_mgmt: RateLimit = RateLimit(per_second=1.0, burst_count=5)
    # Per user, for reports of users (Synapse's rc_reports).
    reports: RateLimit = RateLimit(per_second=1.0, burst_count=5)


@attrs.frozen
class DelayedEventsConfig:
    """Delayed events (MSC4140), advertised as a capability."""

    # The longest delay a client may ask for.
    max_delay_ms: int = 24 * 60 * 60 * 1000
    # Delayed events a user may have scheduled at once; 0 disallows them.
    max_per_user: int = 100

    def validate(self) -> None:
        if self.max_delay_ms <= 0:
            raise ConfigError("delayed_events.max_delay_ms: expected a positive integer")
        if self.max_per_user < 0:
            raise ConfigError("delayed_events.max_per_user: expected 0 or more")


@attrs.frozen
class RetentionPolicyConfig:
    """A message retention policy (MSC1763), in milliseconds; None: no bound."""

    min_lifetime_ms: int | None = None
    max_lifetime_ms: int | None = None


@attrs.frozen
class RetentionConfig:
    """Message retention (MSC1763, as Synapse's `retention`): events older than
    their room's max_lifetime are purged by a background job (homeserver/retention/)."""

    enabled: bool = False
    # The policy of rooms without m.room.retention (and the parts a room's leaves out).
    default_policy: RetentionPolicyConfig = RetentionPolicyConfig()
    # Bounds a room's max_lifetime is clamped to (None: unbounded).
    allowed_lifetime_min_ms: int | None = None
    allowed_lifetime_max_ms: int | None = None
    # How often the purge job runs, and how many events one batch purges.
    purge_interval_ms: int = 60 * 60 * 1000
    # Smaller batches hold the event loop for less time each (bench/retention.py).
    purge_batch_size: int = 100
    # Log progress every this many batches within a run.
    log_every_batches: int = 100
    # After each batch the job rests this many times as long as the batch
    # took: 1.0 leaves the server at least half its time for requests while
    # a large backlog is purged (bench/retention.py); 0 purges flat out.
    purge_pause_factor: float = 1.0

    def validate(self) -> None:
        for key in ("allowed_lifetime_min_ms", "allowed_lifetime_max_ms"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigError(f"retention.{key}: expected a positive integer")
        for key in ("min_lifetime_ms", "max_lifetime_ms"):
            value = getattr(self.default_policy, key)
            if value is not None and value <= 0:
                raise ConfigError(f"retention.default_policy.{key}: expected a positive integer")
        low, high = self.allowed_lifetime_min_ms, self.allowed_lifetime_max_ms
        if low is not None and high is not None and low > high:
            raise ConfigError("retention.allowed_lifetime_min_ms: above allowed_lifetime_max_ms")
        if self.purge_interval_ms <= 0:
            raise ConfigError("retention.purge_interval_ms: expected a positive integer")
        if not 1 <= self.purge_batch_size <= 10_000:
            raise ConfigError("retention.purge_batch_size: expected 1 to 10000")
        if self.log_every_batches <= 0:
            raise ConfigError("retention.log_every_batches: expected a positive integer")
        if not 0 <= self.purge_pause_factor <= 100:
            raise ConfigError("retention.purge_pause_factor: expected 0 to 100")


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
    # MSC4306's default rules: messages in threads notify when the user is
    # subscribed to the thread, and only mentions otherwise.
    thread_subscription_rules: bool = False


@attrs.frozen
class UserDirectoryConfig:
    # Search every local user, not only those sharing a room or in public rooms.
    search_all_users: bool = False


@attrs.frozen
class SupportContact:
    """A way to reach the server's administrators, for /.well-known/matrix/support."""

    # m.role.admin, m.role.security, or a namespaced role of the deployment's own.
    role: str = "m.role.admin"
    matrix_id: str | None = None
    email_address: str | None = None


@attrs.frozen
class SupportConfig:
    """Who runs this server (MSC1929, spec v1.10): served at /.well-known/matrix/support."""

    contacts: list[SupportContact] = attrs.Factory(list)
    support_page: str | None = None

    def validate(self) -> None:
        for i, contact in enumerate(self.contacts):
            if contact.matrix_id is None and contact.email_address is None:
                raise ConfigError(f"support.contacts[{i}]: needs a matrix_id or an email_address")
            if contact.matrix_id is not None and not contact.matrix_id.startswith("@"):
                raise ConfigError(f"support.contacts[{i}].matrix_id: not a user ID")


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
class MediaEncryptionConfig:
    """Media files encrypted at rest (homeserver/media/encryption.py)."""

    enabled: bool = False
    # The master key: 32 bytes, base64, in this file (relative to data_dir;
    # `homeserver media-key generate` makes one) or in this environment variable.
    master_key_path: str | None = None
    master_key_env: str | None = None

    def validate(self) -> None:
        if self.enabled and (self.master_key_path is None) == (self.master_key_env is None):
            raise ConfigError(
                "media.encryption: name the master key with exactly one of"
                " master_key_path and master_key_env"
            )


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
    encryption: MediaEncryptionConfig = MediaEncryptionConfig()

    def validate(self) -> None:
        self.encryption.validate()
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


_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


@attrs.frozen
class WebConfig:
    """The look of the server's web pages (sign-in, consent, account):
    homeserver/web/. Colours go into the served stylesheet, never inline."""

    # The name shown in titles and headings.
    product_name: str = "Matrix"
    # An https:// URL or a path on this server; None: no logo.
    logo_url: str | None = None
    # CSS colours as #rgb or #rrggbb.
    primary_colour: str = "#0b6e4f"
    background_colour: str = "#f4f6f8"
    text_colour: str = "#1b1d21"
    # A line shown at the bottom of every page, and a link to the terms.
    footer_text: str | None = None
    terms_url: str | None = None

    def validate(self) -> None:
        for name in ("primary_colour", "background_colour", "text_colour"):
            if not _COLOUR.fullmatch(getattr(self, name)):
                raise ConfigError(f"web.{name}: expected a colour like #0b6e4f")
        logo = self.logo_url
        if logo is not None and not (
            logo.startswith("https://") or (logo.startswith("/") and not logo.startswith("//"))
        ):
            raise ConfigError("web.logo_url: expected an https:// URL or a path on this server")
        terms = self.terms_url
        if terms is not None and not terms.startswith(("https://", "http://")):
            raise ConfigError("web.terms_url: expected an http(s):// URL")


@attrs.frozen
class AttributeRequirement:
    """A claim an upstream provider must assert for a user to be let in:
    equal to `value`, or (for a list claim such as `groups`) containing it."""

    attribute: str
    value: str


@attrs.frozen
class UserMappingConfig:
    """Jinja2 templates over the provider's claims (`user`), as Synapse's
    `user_mapping_provider.config`."""

    localpart_template: str = "{{ user.preferred_username }}"
    display_name_template: str | None = None
    # Kept with the account's link to the provider (upstream_links.email).
    email_template: str | None = None


@attrs.frozen
class OidcProviderConfig:
    """One upstream OpenID Connect provider (homeserver/sso/)."""

    idp_id: str
    idp_name: str
    issuer: str
    client_id: str
    idp_icon: str | None = None
    idp_brand: str | None = None
    # Read the endpoints from <issuer>/.well-known/openid-configuration.
    discover: bool = True
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None
    client_secret: str | None = None
    # client_secret_basic, client_secret_post or private_key_jwt.
    client_auth_method: str = "client_secret_basic"
    # PEM private key for private_key_jwt, relative to data_dir.
    client_auth_key_file: str | None = None
    client_auth_signing_alg: str = "RS256"
    scopes: list[str] = attrs.Factory(lambda: ["openid", "profile"])
    id_token_signing_algs: list[str] = attrs.Factory(lambda: ["RS256"])
    # Also read the claims of the userinfo endpoint.
    user_profile_method: str = "auto"
    user_mapping_provider: UserMappingConfig = UserMappingConfig()
    attribute_requirements: list[AttributeRequirement] = attrs.Factory(list)
    # Link a first sign-in to an existing account of the mapped localpart.
    allow_existing_users: bool = False

    def validate(self, where: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._~-]{1,255}", self.idp_id):
            raise ConfigError(f"{where}.idp_id: letters, digits and . _ ~ - only")
        if self.client_auth_method not in _CLIENT_AUTH_METHODS:
            raise ConfigError(
                f"{where}.client_auth_method: one of {', '.join(_CLIENT_AUTH_METHODS)}"
            )
        if self.client_auth_method == "private_key_jwt" and self.client_auth_key_file is None:
            raise ConfigError(f"{where}.client_auth_key_file: required for private_key_jwt")
        if self.client_auth_method != "private_key_jwt" and self.client_secret is None:
            raise ConfigError(f"{where}.client_secret: required for {self.client_auth_method}")
        if not self.discover:
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if getattr(self, key) is None:
                    raise ConfigError(f"{where}.{key}: required when discover is false")
        if "openid" not in self.scopes:
            raise ConfigError(f"{where}.scopes: must include 'openid'")
        if not self.id_token_signing_algs or "none" in self.id_token_signing_algs:
            raise ConfigError(f"{where}.id_token_signing_algs: signing algorithms, not 'none'")
        if self.user_profile_method not in ("auto", "userinfo_endpoint"):
            raise ConfigError(f"{where}.user_profile_method: 'auto' or 'userinfo_endpoint'")


_CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


@attrs.frozen
class SsoConfig:
    """Legacy single sign-on (m.login.sso, m.login.token)."""

    # Client URL prefixes sent their loginToken without a confirmation page.
    client_whitelist: list[str] = attrs.Factory(list)
    # POST /login/get_token (MSC3882): a signed-in device logs in another.
    login_via_existing_session: bool = False


@attrs.frozen
class LdapAttributes:
    """Which directory attributes hold the user name, display name and email."""

    # Compared with the login's localpart; OpenLDAP: uid, Active Directory: sAMAccountName.
    uid: str = "uid"
    name: str = "cn"
    mail: str = "mail"


@attrs.frozen
class PasswordPolicyConfig:
    """The rules new passwords must follow (Synapse's `password_config.policy`)."""

    enabled: bool = False
    minimum_length: int = 0
    require_digit: bool = False
    require_symbol: bool = False
    require_lowercase: bool = False
    require_uppercase: bool = False


@attrs.frozen
class LdapConfig:
    """Sign-in against LDAP / Active Directory (homeserver/accounts/ldap.py)."""

    # One or more ldap:// or ldaps:// servers, tried in order (failover).
    uri: list[str] = attrs.Factory(list)
    # Upgrade ldap:// connections with StartTLS before any password is sent.
    start_tls: bool = False
    # CA bundle the directory's certificate must chain to (None: the system's).
    tls_ca_file: str | None = None
    # Check the directory's certificate and host name; only for test directories.
    tls_verify: bool = True
    # Where users are searched for.
    base: str = ""
    # Search-then-bind: the service account that searches (None: anonymous search).
    bind_dn: str | None = None
    bind_password: str | None = None
    # Direct bind: the user's DN (or AD's user@domain) with {localpart} filled in.
    bind_template: str | None = None
    # An extra filter the user's entry must match, e.g. "(memberOf=cn=chat,ou=groups,...)".
    user_filter: str | None = None
    attributes: LdapAttributes = LdapAttributes()
    # Create the Matrix account at the first successful sign-in.
    create_users: bool = True
    # false: only the directory's passwords sign in; local password hashes are refused.
    local_passwords_enabled: bool = True
    # Whole seconds to connect, and to wait for each answer from the directory.
    connect_timeout: int = 5
    timeout: int = 10

    def validate(self) -> None:
        if not self.uri:
            raise ConfigError("ldap.uri: at least one ldap:// or ldaps:// URI")
        for uri in self.uri:
            if not uri.lower().startswith(("ldap://", "ldaps://")):
                raise ConfigError(f"ldap.uri: expected ldap:// or ldaps://, got {uri!r}")
        if not self.base:
            raise ConfigError("ldap.base: the DN under which users are searched")
        if (self.bind_dn is None) != (self.bind_password is None):
            raise ConfigError("ldap.bind_dn and ldap.bind_password go together")
        if self.bind_password == "":
            # An empty password makes the bind anonymous (RFC 4513 5.1.2).
            raise ConfigError("ldap.bind_password: empty; leave both out for anonymous search")
        if self.bind_template is not None and "{localpart}" not in self.bind_template:
            raise ConfigError("ldap.bind_template: must contain {localpart}")
        if self.bind_template is not None and self.bind_dn is not None:
            raise ConfigError("ldap: bind_template (direct bind) or bind_dn (search), not both")
        if self.user_filter is not None and not (
            self.user_filter.startswith("(") and self.user_filter.endswith(")")
        ):
            raise ConfigError("ldap.user_filter: expected a filter in parentheses")
        if self.connect_timeout <= 0 or self.timeout <= 0:
            raise ConfigError("ldap.connect_timeout and ldap.timeout: positive seconds")


@attrs.frozen
class OAuthConfig:
    """The built-in OAuth 2.0 authorization server (homeserver/oauth)."""

    enabled: bool = False
    # Keep password registration (POST /register) open beside OAuth's
    # prompt=create; off, /register tells clients to use OAuth.
    legacy_registration: bool = False
    # How long a device authorization grant's user code is valid, and how
    # often its device may poll the token endpoint (RFC 8628).
    device_code_lifetime_s: int = 600
    device_poll_interval_s: int = 5
    # The RSA key signing ID tokens (clients asking for `openid`), relative
    # to data_dir; created at first start.
    signing_key_path: str = "oauth_signing_key.pem"

    def validate(self) -> None:
        if self.device_code_lifetime_s < 1 or self.device_poll_interval_s < 1:
            raise ConfigError("oauth.device_*: expected positive numbers of seconds")


@attrs.frozen
class EmailConfig:
    """Sending email: validating addresses for registration, password reset
    and adding an email to an account (homeserver/email/)."""

    # The From: of every mail, e.g. "Example Chat <noreply@example.com>".
    from_address: str
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    # A file holding the password instead (relative to data_dir).
    smtp_password_path: str | None = None
    # "starttls" (required), "tls" (implicit TLS, usually port 465) or "none".
    tls: str = "starttls"
    # The service's name in the mails' subject and text.
    app_name: str = "Matrix"
    # How long the link of a validation mail works.
    token_lifetime_ms: int = 60 * 60 * 1000
    # Registration needs a validated email address (Synapse's
    # registrations_require_3pid: [email]); otherwise it is offered.
    registration_requires_email: bool = False
    # Only addresses of these domains may be validated (empty: any).
    allowed_domains: list[str] = attrs.Factory(list)
    # Answer a password reset for an unknown address as for a known one (and
    # send nothing), so the answer does not tell who has an account here
    # (Synapse's request_token_inhibit_3pid_errors).
    hide_unknown_addresses: bool = False
    # Validation mails per address (Synapse's rc_3pid_validation).
    rate_limit: RateLimit = RateLimit(per_second=0.003, burst_count=5)

    def validate(self) -> None:
        if self.tls not in ("starttls", "tls", "none"):
            raise ConfigError("email.tls: expected starttls, tls or none")
        if "@" not in self.from_address:
            raise ConfigError("email.from_address: expected an email address")
        if self.smtp_password is not None and self.smtp_password_path is not None:
            raise ConfigError("email.smtp_password and email.smtp_password_path: not both")
        if not 0 < self.smtp_port < 65536:
            raise ConfigError("email.smtp_port: expected a port number")
        if self.token_lifetime_ms < 1000:
            raise ConfigError("email.token_lifetime_ms: expected at least 1000")


@attrs.frozen
class PresenceConfig:
    """Presence timers (homeserver/ephemeral/presence.py); Synapse's values."""

    # Online -> unavailable after this long without activity (Synapse's IDLE_TIMER).
    idle_timeout_ms: int = 5 * 60 * 1000
    # Offline once no /sync was in flight for this long (SYNC_ONLINE_TIMEOUT).
    sync_timeout_ms: int = 30 * 1000

    def validate(self) -> None:
        if self.idle_timeout_ms < 1000:
            raise ConfigError("presence.idle_timeout_ms: expected at least 1000")
        if self.sync_timeout_ms < 1000:
            raise ConfigError("presence.sync_timeout_ms: expected at least 1000")


@attrs.frozen
class WorkerConfig:
    """One process of a deployment of several (homeserver/cluster/roles.py)."""

    roles: list[str]
    client_listen: str | None = None
    federation_listen: str | None = None
    # Where the other workers reach this one (the internal API).
    internal_listen: str | None = None
    metrics_listen: str | None = None


@attrs.frozen
class ClusterConfig:
    """Several processes sharing one database as one server (homeserver/cluster/)."""

    # On: stream positions are shared with the other processes through
    # PostgreSQL LISTEN/NOTIFY. Also on whenever `workers` names any.
    enabled: bool = False
    # This process's name among the deployment's processes; unique per
    # process (a second process with the same name refuses to start).
    instance_name: str = "main"

    def validate(self) -> None:
        # (PostgreSQL keeps 63 bytes of a session's name: "homeserver:" and this.)
        if not self.instance_name or len(self.instance_name.encode()) > 50:
            raise ConfigError("cluster.instance_name: expected 1 to 50 bytes")


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
    password_policy: PasswordPolicyConfig = PasswordPolicyConfig()
    # Lifetime of an access token that comes with a refresh token.
    refreshable_access_token_lifetime_ms: int = 5 * 60 * 1000
    max_request_body_bytes: int = 1024 * 1024
    # Accept the client API's `access_token` query parameter, which spec
    # versions up to v1.19 require (deprecated since v1.11); false refuses it as
    # spec v1.20 (MSC4127) does, except for appservices' as_tokens.
    access_token_query_parameter: bool = True
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
    # Forget a room for a user as soon as they leave it (the spec's
    # m.forget_forced_upon_leave capability; Synapse's option of this name).
    forget_rooms_on_leave: bool = False
    log_level: str = "INFO"
    turn: TurnConfig = TurnConfig()
    push: PushConfig = PushConfig()
    user_directory: UserDirectoryConfig = UserDirectoryConfig()
    server_notices: ServerNoticesConfig = ServerNoticesConfig()
    # The look of the web pages (sign-in, consent, account).
    web: WebConfig = WebConfig()
    # MatrixRTC foci advertised in /.well-known/matrix/client, e.g.
    # [{"type": "livekit", "livekit_service_url": "https://..."}].
    rtc_foci: list[dict[str, Any]] = attrs.Factory(list)
    media: MediaConfig = MediaConfig()
    # CA bundle trusted by outbound HTTPS (push, identity servers, previews)
    # besides the system's; relative to data_dir. None: the system's only.
    outbound_tls_ca_file: str | None = None
    # Check no certificates on that outbound HTTPS. For test harnesses only.
    outbound_tls_insecure: bool = False
    # LDAP / Active Directory sign-in (None: local passwords only).
    ldap: LdapConfig | None = None
    # Application service (bridge, bot) registration YAML files; relative to data_dir.
    app_service_config_files: list[str] = attrs.Factory(list)
    # Upstream OpenID Connect providers people sign in with (homeserver/sso/).
    oidc_providers: list[OidcProviderConfig] = attrs.Factory(list)
    sso: SsoConfig = SsoConfig()
    oauth: OAuthConfig = OAuthConfig()
    delayed_events: DelayedEventsConfig = DelayedEventsConfig()
    # Outgoing email (None: no address is validated by this server).
    email: EmailConfig | None = None
    # The administrators' contacts and support page (/.well-known/matrix/support).
    support: SupportConfig = SupportConfig()
    # Where the admin API's data exports are written, one directory per export
    # (relative to data_dir; homeserver/export, docs/export.md).
    export_dir: str = "exports"
    # Message retention policies and their purge job (MSC1763).
    retention: RetentionConfig = RetentionConfig()
    # How long the original content of a redacted event is kept before the
    # purge job prunes it (Synapse's redaction_retention_period; None: forever).
    redaction_retention_period_ms: int | None = 7 * 24 * 60 * 60 * 1000
    # The processes of a deployment of several (docs/scaling.md): name ->
    # roles and listeners; empty: one process does everything.
    workers: dict[str, WorkerConfig] = attrs.Factory(dict)
    # Authenticates the workers' internal API to each other.
    worker_shared_secret: str | None = None
    # Several processes as one server (stream positions across processes).
    cluster: ClusterConfig = ClusterConfig()
    # Presence timers; in a deployment, one process applies them to all.
    presence: PresenceConfig = PresenceConfig()

    @property
    def cluster_mode(self) -> bool:
        """Whether this process shares streams and caches with others:
        `cluster.enabled`, or workers configured."""
        return self.cluster.enabled or bool(self.workers)

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
        if self.password_policy.minimum_length < 0:
            raise ConfigError("password_policy.minimum_length: must not be negative")
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
        self.web.validate()
        self.request_limits.validate()
        self.http.validate()
        self.oauth.validate()
        self.delayed_events.validate()
        self.retention.validate()
        if (
            self.redaction_retention_period_ms is not None
            and self.redaction_retention_period_ms < 0
        ):
            raise ConfigError("redaction_retention_period_ms: expected 0 or more, or null")
        if self.email is not None:
            self.email.validate()
        self.support.validate()
        self.cluster.validate()
        self.presence.validate()
        if self.cluster.enabled and self.database.dsn is None:
            raise ConfigError("cluster: the processes must share a database: set database.dsn")
        self._validate_federation()
        if self.ldap is not None:
            self.ldap.validate()
            if self.ldap.tls_ca_file is not None and not self.path(self.ldap.tls_ca_file).is_file():
                raise ConfigError(f"ldap.tls_ca_file: no such file: {self.ldap.tls_ca_file!r}")
        self._validate_oidc_providers()
        ca_file = self.outbound_tls_ca_file
        if ca_file is not None and not self.path(ca_file).is_file():
            raise ConfigError(f"outbound_tls_ca_file: no such file: {ca_file!r}")
        self._validate_workers()

    def _validate_workers(self) -> None:
        if self.workers and self.database.dsn is None:
            raise ConfigError("workers: the processes of a deployment share database.dsn")
        for name, worker in self.workers.items():
            for key in ("client_listen", "federation_listen", "internal_listen", "metrics_listen"):
                if getattr(worker, key) is not None:
                    try:
                        parse_listen(getattr(worker, key))
                    except ValueError as e:
                        raise ConfigError(f"workers.{name}.{key}: {e}") from None
        try:
            check_workers(self.workers, self.worker_shared_secret)
        except ValueError as e:
            raise ConfigError(str(e)) from None

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

    def _validate_oidc_providers(self) -> None:
        seen: set[str] = set()
        for i, provider in enumerate(self.oidc_providers):
            provider.validate(f"oidc_providers[{i}]")
            key_file = provider.client_auth_key_file
            if key_file is not None and not self.path(key_file).is_file():
                raise ConfigError(
                    f"oidc_providers[{i}].client_auth_key_file: no such file: {key_file!r}"
                )
            if provider.idp_id in seen:
                raise ConfigError(f"oidc_providers[{i}].idp_id: {provider.idp_id!r} is used twice")
            seen.add(provider.idp_id)


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

    def workers(value: Any, _: Any) -> dict[str, WorkerConfig]:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of worker names")
        parsed = {}
        for name, worker in value.items():
            try:
                parsed[name] = conv.structure(worker, WorkerConfig)
            except ClassValidationError as e:
                where = f"config.workers.{name}"
                raise ConfigError("; ".join(cattrs.transform_error(e, path=where))) from None
        return parsed

    conv.register_structure_hook_func(lambda t: t == dict[str, WorkerConfig], workers)
    return conv


_converter = _strict_converter()


def config_from_dict(data: Any) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a YAML mapping")
    try:
        config = _converter.structure(data, Config)
    except ClassValidationError as e:
        # A hook's own message (the workers') says more than cattrs' summary.
        own = e.subgroup(lambda x: isinstance(x, ConfigError))
        while isinstance(own, BaseExceptionGroup):
            own = own.exceptions[0]
        if own is not None:
            raise own from None
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
        data = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if isinstance(data, dict):
        try:
            resolve_secrets(data, Path(path).parent / str(data.get("data_dir", ".")))
        except SecretError as e:
            raise ConfigError(str(e)) from None
    config = config_from_dict(data)
    # A relative data_dir is relative to the config file, wherever the server starts.
    data_dir = Path(path).parent / config.data_dir
    return attrs.evolve(config, data_dir=str(data_dir.resolve()))


def config_to_dict(config: Config) -> dict[str, Any]:
    return _converter.unstructure(config)
