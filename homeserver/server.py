"""The composition root: builds every service from the config, mounts the HTTP
apps, and owns start-up and shutdown. Nothing else constructs services.

Long on purpose: it is the composition root, where every service is built
and wired explicitly, once (docs/architecture.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from signedjson.types import SigningKey

from federation.api import FederationVersionApi
from federation.api_e2e import FederationE2eApi
from federation.api_hierarchy import FederationHierarchyApi
from federation.api_joins import FederationJoinsApi
from federation.api_keys import KeysApi
from federation.api_media import FederationMediaApi
from federation.api_membership import FederationMembershipApi
from federation.api_openid import FederationOpenIdApi
from federation.api_query import FederationQueryApi
from federation.api_rooms import FederationRoomsApi
from federation.api_send import FederationSendApi
from federation.api_threepid import FederationThreepidApi
from federation.api_timestamps import FederationTimestampApi
from federation.auth import RequestVerifier, sign_request
from federation.backfill import FederationBackfill
from federation.backoff import Backoff
from federation.catch_up_on_start import CatchUpOnStart
from federation.discovery import DnsSrv, HttpWellKnown, ServerResolver
from federation.e2e_remote import FederationRemoteKeys
from federation.edu_registry import EduRegistry
from federation.edus import DEVICE_LIST_UPDATE, DIRECT_TO_DEVICE, SIGNING_KEY_UPDATE
from federation.handshakes import MembershipHandshakes
from federation.hierarchy_client import FederationHierarchy
from federation.http import MAX_FEDERATION_BODY_BYTES, FederationRouter
from federation.inbound.edus import EphemeralEdus
from federation.inbound.fetching import RemoteEvents
from federation.inbound.pdus import PduProcessor
from federation.joins import JoinService
from federation.keys import KeyRing, Notary, OldKey, OurKeys, decode_verify_key
from federation.media_fetch import FederationMediaFetcher
from federation.membership import RemoteMembership
from federation.queries import FederationQueries
from federation.receiver import TransactionReceiver
from federation.sender import FederationSender
from federation.serving import FederationReads
from federation.third_party_invites import InviteExchange
from federation.timestamps import FederationTimestamps, TimestampServing
from federation.transport import FederationClient
from federation.user_devices import UserDevices
from homeserver.account_data import AccountDataService
from homeserver.accounts.client_registration import ClientRegistration
from homeserver.accounts.guests import GuestAccounts
from homeserver.accounts.ldap.directory import LdapDirectory
from homeserver.accounts.ldap.sign_in import LdapSignIn
from homeserver.accounts.login import PasswordChecker
from homeserver.accounts.password_policy import PasswordPolicy
from homeserver.accounts.password_reset import PasswordReset
from homeserver.accounts.passwords import PasswordHasher
from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import SessionService
from homeserver.accounts.threepids import AccountThreepids
from homeserver.admin.account_moderation import AccountModeration
from homeserver.admin.audit import AuditLog
from homeserver.admin.compliance import ComplianceSearch
from homeserver.admin.gate import AdminGate
from homeserver.admin.legal_holds import LegalHolds
from homeserver.admin.media import AdminMedia
from homeserver.admin.moderation import Moderation
from homeserver.admin.notices import ServerNotices
from homeserver.admin.reports import AdminReports
from homeserver.admin.rooms import AdminRooms
from homeserver.admin.server import BackgroundUpdates
from homeserver.admin.shared_secret import SharedSecretRegistration
from homeserver.admin.tokens import AdminTokens
from homeserver.admin.user_reports import AdminUserReports
from homeserver.admin.users import AdminUsers
from homeserver.api.account_moderation import AccountModerationApi
from homeserver.api.admin.appservices import AdminAppServicesApi
from homeserver.api.admin.audit import AdminAuditApi
from homeserver.api.admin.compliance import AdminComplianceApi
from homeserver.api.admin.export import AdminExportApi
from homeserver.api.admin.legal_holds import AdminLegalHoldsApi
from homeserver.api.admin.media import AdminMediaApi
from homeserver.api.admin.notices import AdminNoticesApi
from homeserver.api.admin.oauth import AdminOAuthApi
from homeserver.api.admin.reports import AdminReportsApi
from homeserver.api.admin.rooms import AdminRoomsApi
from homeserver.api.admin.server import AdminServerApi
from homeserver.api.admin.tokens import AdminTokensApi
from homeserver.api.admin.user_redact import AdminUserRedactApi
from homeserver.api.admin.user_reports import AdminUserReportsApi
from homeserver.api.admin.users import AdminUsersApi, SharedSecretApi
from homeserver.api.appservice import AppServiceApi
from homeserver.api.completion import drain_writes
from homeserver.api.dehydrated_device import DehydratedDeviceApi
from homeserver.api.delayed_events import DelayedEventsApi
from homeserver.api.devices import DevicesApi
from homeserver.api.directory import DirectoryApi
from homeserver.api.discovery import DiscoveryApi
from homeserver.api.email_validation import SUBMIT_PATH, EmailValidationApi
from homeserver.api.ephemeral import EphemeralApi
from homeserver.api.http import Authenticator, Router, matrix_middleware
from homeserver.api.internal import internal_app
from homeserver.api.jump_to_date import JumpToDateApi
from homeserver.api.keys import E2eKeysApi
from homeserver.api.legacy_events import LegacyEventsApi
from homeserver.api.listener import Listener
from homeserver.api.media import MediaApi
from homeserver.api.misc import OpenIdApi
from homeserver.api.mutual_rooms import MutualRoomsApi
from homeserver.api.oauth import OAuthApi, OAuthMetadataApi
from homeserver.api.password_policy import PasswordPolicyApi
from homeserver.api.profile import ProfileApi
from homeserver.api.push_rules import PushRulesApi
from homeserver.api.pushers import PushersApi
from homeserver.api.relations import RelationsApi
from homeserver.api.room_history import RoomHistoryApi
from homeserver.api.room_keys import RoomKeysApi
from homeserver.api.room_summary import RoomSummaryApi
from homeserver.api.rooms import RoomsApi
from homeserver.api.search import SearchApi
from homeserver.api.session import SessionApi
from homeserver.api.sliding_sync import SlidingSyncApi
from homeserver.api.sso import SsoApi
from homeserver.api.support import SupportApi
from homeserver.api.sync import SyncApi
from homeserver.api.tags import TagsApi
from homeserver.api.thirdparty import ThirdPartyApi
from homeserver.api.thread_subscriptions import ThreadSubscriptionsApi
from homeserver.api.threepids import ThreepidOnBindApi, ThreepidsApi
from homeserver.api.to_device import ToDeviceApi
from homeserver.api.upstream import UpstreamApi
from homeserver.api.user_data import UserDataApi
from homeserver.api.user_directory import UserDirectoryApi
from homeserver.api.user_reports import UserReportsApi
from homeserver.api.voip import VoipApi
from homeserver.api.web_account import AccountPages
from homeserver.api.web_consent import ConsentPages
from homeserver.api.web_sign_in import SignInPages
from homeserver.appservice.accounts import AppServiceAccounts
from homeserver.appservice.aliases import AppServiceAliases
from homeserver.appservice.auth import AppServiceAuth
from homeserver.appservice.client import AppServiceClient
from homeserver.appservice.delivery.metrics import DeliveryMetrics
from homeserver.appservice.delivery.service import AppServiceDelivery
from homeserver.appservice.directory import AppServiceDirectory
from homeserver.appservice.ping import AppServicePing
from homeserver.appservice.queries import AppServiceQueries
from homeserver.appservice.registration import load_appservices
from homeserver.cluster.duties import DutyRunner
from homeserver.cluster.federation_shards import sender_shards
from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.cluster.outbox_wakes import OutboxWakes
from homeserver.cluster.owners import RoomWriteRouting, route_room_writes
from homeserver.cluster.presence import PresenceTimeouts, SharedPresenceService
from homeserver.cluster.roles import Duty, ProcessRoles
from homeserver.cluster.wiring import (
    ephemeral_follower,
    make_notifier,
    presence_service,
    session_name,
    stream_ids,
    typing_service,
)
from homeserver.cluster.worker_mode import name_responses, opens
from homeserver.config import Config, parse_listen
from homeserver.delayed_events.scheduler import DelayedEventScheduler
from homeserver.delayed_events.service import DelayedEventLimits, DelayedEvents
from homeserver.devices_sync import DeviceListService
from homeserver.e2e.backup import KeyBackupService
from homeserver.e2e.changes import KeyChanges
from homeserver.e2e.cross_signing import CrossSigningService
from homeserver.e2e.dehydrated import DehydratedDevices
from homeserver.e2e.keys import KeyService
from homeserver.e2e.sync_counts import KeyCountsSyncProvider
from homeserver.email.mailer import Mailer
from homeserver.email.validation import EmailValidation
from homeserver.ephemeral.common import StreamPublisher
from homeserver.ephemeral.presence import now_ms
from homeserver.ephemeral.receipts import ReceiptService
from homeserver.erasure.content import ErasedContent
from homeserver.erasure.redact_job import UserRedactions
from homeserver.export.exporter import Exporter
from homeserver.export.jobs import ExportJobs
from homeserver.filters import FilterService
from homeserver.identity.bindings import ThreepidBindings
from homeserver.identity.client import IdentityServerClient
from homeserver.identity.invites import ThirdPartyInvites
from homeserver.ignored import IgnoredUsers
from homeserver.invite_permission import InvitePermission
from homeserver.keyfiles import ensure_self_signed_certificate, ensure_signing_key, load_signing_key
from homeserver.media.download import MediaDownloads
from homeserver.media.expiry import MediaExpiry
from homeserver.media.files import MediaFiles
from homeserver.media.key_commands import media_master_key
from homeserver.media.manage import MediaManager
from homeserver.media.preview import UrlPreviewer
from homeserver.media.safe_fetch import AddressPolicy, SafeFetcher
from homeserver.media.thumbnailer import Thumbnailer
from homeserver.media.upload import MediaUploader, UploadLimits
from homeserver.metrics import Metrics
from homeserver.mutual_rooms import MutualRooms
from homeserver.oauth.authorization import AuthorizationRequests
from homeserver.oauth.clients import OAuthClients
from homeserver.oauth.device_flow import DeviceAuthorizations
from homeserver.oauth.grants import OAuthGrants
from homeserver.oauth.id_tokens import IdTokens, load_or_create_key
from homeserver.oauth.metadata import account_management_uri, issuer_of
from homeserver.oauth.refresh_reuse import LegacyRefreshGuard
from homeserver.oauth.tokens import OAuthTokens
from homeserver.openid import OpenIdTokens
from homeserver.profile import ProfileService
from homeserver.public_addresses import public_addresses
from homeserver.push.counts import UnreadCounts
from homeserver.push.notification_list import NotificationList
from homeserver.push.notifications import PushNotifier
from homeserver.push.pushers import PusherService
from homeserver.push.rules import PushRulesService
from homeserver.push.sender import PushSender
from homeserver.push.stream import PushStream
from homeserver.ratelimit import RateLimiter
from homeserver.retention.job import PurgeJob, PurgeSettings
from homeserver.retention.media_refs import MediaRefsRecorder
from homeserver.retention.metrics import PurgeMetrics
from homeserver.retention.policy import RetentionPolicies
from homeserver.rooms.carry_over import UpgradeCarryOver
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.forget_on_leave import ForgetOnLeave
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.guest_access import GuestAccessRules
from homeserver.rooms.hierarchy import SpaceHierarchy
from homeserver.rooms.hierarchy_serving import HierarchyServing
from homeserver.rooms.history import HistoryService
from homeserver.rooms.jump_to_date import JumpToDate
from homeserver.rooms.pipeline import EventPipeline
from homeserver.rooms.profile_updates import MemberProfileUpdater
from homeserver.rooms.relations import RelationsService
from homeserver.rooms.reports import ReportService
from homeserver.rooms.restricted import RestrictedJoins
from homeserver.rooms.room_summary import RoomSummaries
from homeserver.rooms.search import SearchService
from homeserver.rooms.self_destruct import SelfDestructingEvents
from homeserver.rooms.service import RoomService
from homeserver.rooms.thread_subscriptions import ThreadSubscriptions
from homeserver.rooms.upgrade import RoomUpgrader
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.sliding_sync.extensions import ExtensionProviders, SlidingSyncExtensions
from homeserver.sliding_sync.rooms import RoomDataBuilder
from homeserver.sliding_sync.service import SlidingSyncService
from homeserver.sso.login_tokens import TokenLogin
from homeserver.sso.provider import OidcProvider
from homeserver.sso.upstream import ProviderHttp, UpstreamSignIn
from homeserver.sync.event_stream import EventStream
from homeserver.sync.initial_sync import InitialSync
from homeserver.sync.rooms import RoomsSyncProvider
from homeserver.sync.service import SyncProvider, SyncService
from homeserver.sync.shared_reads import SharedReads
from homeserver.tags import TagService
from homeserver.tls_trust import outbound_ssl_context
from homeserver.to_device import ToDeviceService
from homeserver.turn import TurnService
from homeserver.uia import CROSS_SIGNING_RESET, UiaService
from homeserver.user_directory import UserDirectory
from homeserver.user_reports import UserReports
from homeserver.web.browser_sessions import BrowserSessions
from homeserver.web.form_keys import FormKeys, derive_form_key
from homeserver.web.links import UPSTREAM_PREFIX
from homeserver.web.pages import PageRenderer
from storage.account_data import AccountDataStore
from storage.admin_audit import AuditStore
from storage.admin_media import AdminMediaStore
from storage.admin_reports import AdminReportStore
from storage.admin_room_tasks import AdminRoomTaskStore
from storage.admin_rooms import AdminRoomStore
from storage.admin_tokens import AdminTokenStore
from storage.admin_users import AdminUserStore
from storage.appservice_delivery import AppServiceDeliveryStore
from storage.appservice_directory import AppServiceDirectoryStore
from storage.browser_sessions import BrowserSessionStore
from storage.compliance_search import ComplianceSearchStore
from storage.database import EmbeddedPostgres, create_pool, migrate
from storage.dehydrated_devices import DehydratedDeviceStore
from storage.delayed_events import DelayedEventStore
from storage.destinations import DestinationStore
from storage.device_lists import DeviceListStore
from storage.directory import DirectoryStore
from storage.e2e_keys import E2eKeyStore
from storage.e2e_remote import RemoteKeyStore
from storage.erasure import ErasureStore
from storage.event_expiry import EventExpiryStore
from storage.event_stream import EventStreamStore
from storage.events import EventStore
from storage.export import ExportStore
from storage.export_jobs import ExportJobStore
from storage.federation_inbound import InboundTransactionStore
from storage.federation_reads import FederationReadStore
from storage.federation_sender import FederationSenderStore
from storage.filters import FilterStore
from storage.guests import GuestStore
from storage.history import HistoryStore
from storage.invite_permission import InvitePermissionStore
from storage.key_backup import KeyBackupStore
from storage.ldap_users import LdapUserStore
from storage.legal_holds import LegalHoldStore
from storage.login_tokens import LoginTokenStore
from storage.media import MediaStore
from storage.mutual_rooms import MutualRoomStore
from storage.oauth_clients import OAuthClientStore
from storage.oauth_grants import OAuthGrantStore
from storage.oauth_sessions import OAuthSessionStore
from storage.openid import OpenIdStore
from storage.push import PushStore
from storage.push_stream import PushStreamStore
from storage.pushers import PusherStore
from storage.receipts import ReceiptStore
from storage.relations import RelationStore
from storage.remote_media import RemoteMediaStore
from storage.remote_membership import RemoteMembershipStore
from storage.reports import ReportStore
from storage.restricted_joins import RestrictedJoinStore
from storage.retention import RetentionStore
from storage.room_servers import RoomServersStore
from storage.rooms import RoomStore
from storage.search import SearchStore
from storage.server_keys import ServerKeyStore
from storage.sessions import SessionStore
from storage.shared_secret_nonces import SharedSecretNonceStore
from storage.sliding_sync import SlidingSyncStore
from storage.state import StateStore
from storage.sync import SyncStore
from storage.thread_subscriptions import ThreadSubscriptionStore
from storage.threepid_validation import ThreepidValidationStore
from storage.threepids import ThreepidBindingStore
from storage.timestamps import TimestampStore
from storage.to_device import ToDeviceStore
from storage.uia import RegistrationTokenStore, UiaStore
from storage.upstream import UpstreamStore
from storage.user_directory import UserDirectoryStore
from storage.user_redactions import UserRedactionStore
from storage.user_reports import UserReportStore
from storage.user_threepids import UserThreepidStore
from storage.users import UserStore

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE = "homeserver"


async def open_database(
    config: Config, worker: str | None = None
) -> tuple[asyncpg.Pool, EmbeddedPostgres | None]:
    """Connect to the configured PostgreSQL, or start the embedded one, and migrate."""
    embedded = None
    dsn = config.database.dsn
    if dsn is None:
        embedded = EmbeddedPostgres(config.path("postgres"))
        await asyncio.to_thread(embedded.start)
        dsn = await asyncio.to_thread(embedded.create_database, EMBEDDED_DATABASE)
        logger.info("started embedded PostgreSQL in %s", embedded.pgdata)
    pool = await create_pool(
        dsn,
        min_size=config.database.min_pool_size,
        max_size=config.database.max_pool_size,
        application_name=session_name(config, worker),
    )
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool, embedded


class HomeServer:
    def __init__(self, config: Config, roles: ProcessRoles | None = None) -> None:
        self.config = config
        # Which duties and listeners this process has (homeserver/cluster/roles.py).
        self.roles = roles or ProcessRoles.single_process()
        self.metrics = Metrics()
        self.pool: asyncpg.Pool | None = None
        self.pipeline: EventPipeline | None = None
        self._embedded: EmbeddedPostgres | None = None
        self.cache_invalidations = CacheInvalidations()
        self._runners: list[web.AppRunner] = []
        self._listeners: list[Listener] = []
        self.client_port: int | None = None
        self.federation_port: int | None = None
        self.metrics_port: int | None = None
        self.internal_port: int | None = None
        self._forwarded_writes: RoomWriteRouting | None = None
        # Bridges and bots; a bad registration file stops start-up here.
        self.appservices = load_appservices(
            (config.path(p) for p in config.app_service_config_files), config.server_name
        )

    async def start(self) -> None:
        config = self.config
        self.signing_key = await asyncio.to_thread(self._prepare_key_files)
        # Before anything is started: a wrong media master key stops the start.
        self.media_files = await asyncio.to_thread(self._prepare_media_files)
        self.pool, self._embedded = await open_database(config, self.roles.worker)
        pool = self.pool
        self.metrics.watch_pool(
            lambda: (pool.get_size(), pool.get_idle_size(), pool.get_max_size())
        )
        self.notifier = await make_notifier(pool, config, self.roles.worker)
        self.event_stream = stream_ids(pool, self.notifier, "events")
        await self.event_stream.start()
        self.notifier.notify("events", self.event_stream.current)
        self.duties = await DutyRunner.open(
            pool, self.roles, config.database.dsn, session_name(config, self.roles.worker)
        )
        client_app = await self._build_client_app(pool)
        if config.cluster_mode:
            # Before serving: what this process caches from now on is kept true.
            await self.cache_invalidations.start(pool)
        client_app.on_cleanup.append(self.duties.close)
        if self.roles.worker is not None:
            name_responses(client_app, self.roles.worker)
        host, port = parse_listen(config.client_listen)
        if opens(config, self.roles, "client_listen"):
            self.client_port = await self._serve(client_app, host, port, cancel_on_disconnect=True)
        else:  # its cleanup stops the duties it started
            await self._serve_nowhere(client_app)
        self.federation_port = await self._serve_federation()
        self.internal_port = await self._serve_internal()
        if config.metrics.enabled:
            host, port = parse_listen(config.metrics.listen)
            self.metrics_port = await self._serve(self._build_metrics_app(), host, port)
        logger.info(
            "%s is serving clients on %s and federation on %s",
            config.server_name,
            # A worker names only the listeners it opened (a sender has none).
            config.client_listen if self.client_port else "no listener here",
            config.federation_listen if self.federation_port else "no listener here",
        )

    def _prepare_key_files(self) -> SigningKey:
        """Create what a first start needs on disk; return the signing key."""
        config = self.config
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        ensure_signing_key(config.path(config.signing_key_path))
        ensure_self_signed_certificate(
            config.path(config.tls_certificate_path),
            config.path(config.tls_private_key_path),
            config.server_name,
        )
        return load_signing_key(config.path(config.signing_key_path))

    def _prepare_media_files(self) -> MediaFiles:
        """The media store, its master key checked (MediaKeyError if wrong or missing)."""
        config = self.config
        files = MediaFiles(config.path(config.media.store_path), media_master_key(config))
        files.prepare()
        return files

    async def _admin_apis(
        self,
        app: web.Application,
        pool: asyncpg.Pool,
        users: AdminUsers,
        rooms: AdminRooms,
        notices: ServerNotices,
        registration: SharedSecretRegistration,
        compliance: ComplianceSearch,
    ) -> list[object]:
        """The admin API (/_synapse/admin) over the services the client API uses.

        Mounted after the media repository, whose manager it uses.
        """
        users.share_invalidations(self.cache_invalidations)
        await users.start()
        await rooms.start()

        async def stop_admin_tasks(_: web.Application) -> None:
            await rooms.stop()

        app.on_cleanup.append(stop_admin_tasks)
        return [
            AdminUsersApi(users),
            SharedSecretApi(registration, self.config.server_name),
            AdminRoomsApi(rooms),
            AdminTokensApi(AdminTokens(AdminTokenStore(pool))),
            AdminReportsApi(AdminReports(AdminReportStore(pool))),
            AdminUserReportsApi(AdminUserReports(UserReportStore(pool))),
            AdminNoticesApi(notices),
            AdminServerApi(BackgroundUpdates()),
            AdminAppServicesApi(self.appservice_delivery),
            AdminAuditApi(AuditLog(AuditStore(pool))),
            AdminComplianceApi(compliance),
            AdminLegalHoldsApi(LegalHolds(LegalHoldStore(pool))),
            AdminMediaApi(
                AdminMedia(self.media_manager, AdminMediaStore(pool), self.config.server_name)
            ),
            await self._export_api(app, pool),
        ]

    async def _export_api(self, app: web.Application, pool: asyncpg.Pool) -> AdminExportApi:
        """Data exports as background jobs (homeserver/export), stopped with the client app."""
        config = self.config
        exporter = Exporter(
            ExportStore(pool, config.server_name),
            EventFormatter(self.event_store),
            ErasedContent(ErasureStore(pool), self.state_store, self.event_store),
            self.media_files,
            config.server_name,
        )
        jobs = ExportJobs(
            ExportJobStore(pool),
            exporter,
            config.path(config.export_dir),
            runner=session_name(config, self.roles.worker),
        )
        await jobs.start()

        async def stop_exports(_: web.Application) -> None:
            await jobs.stop()

        app.on_cleanup.append(stop_exports)
        return AdminExportApi(jobs, config.server_name)

    async def _user_redactions_api(
        self, app: web.Application, pool: asyncpg.Pool, rooms: RoomService
    ) -> AdminUserRedactApi:
        """Redacting all of a user's events (admin jobs resumed at start-up,
        stopped between two redactions at shutdown)."""
        redactions = UserRedactions(
            UserRedactionStore(pool), rooms, runner=session_name(self.config, self.roles.worker)
        )
        await redactions.start()

        async def stop_redactions(_: web.Application) -> None:
            await redactions.stop()

        app.on_cleanup.append(stop_redactions)
        return AdminUserRedactApi(redactions)

    def _ldap_sign_in(
        self, pool: asyncpg.Pool, users: UserStore, accounts: AccountService
    ) -> LdapSignIn | None:
        """Passwords checked against LDAP / Active Directory, if `ldap` is configured."""
        ldap = self.config.ldap
        if ldap is None:
            return None
        ca_file = str(self.config.path(ldap.tls_ca_file)) if ldap.tls_ca_file else None
        return LdapSignIn(
            LdapDirectory(ldap, ca_file),
            accounts,
            users,
            LdapUserStore(pool),
            self.config.server_name,
            create_users=ldap.create_users,
            local_passwords_enabled=ldap.local_passwords_enabled,
        )

    def _email_validation(self, pool: asyncpg.Pool) -> EmailValidation | None:
        """Addresses validated by mail, if `email` is configured."""
        email = self.config.email
        if email is None:
            return None
        password = email.smtp_password
        if email.smtp_password_path is not None:
            password = self.config.path(email.smtp_password_path).read_text().strip()
        return EmailValidation(
            ThreepidValidationStore(pool),
            UserThreepidStore(pool),
            Mailer(email, password, self.outbound_ssl),
            email,
            submit_url=self._client_base_url().rstrip("/") + SUBMIT_PATH,
            limiter=RateLimiter(email.rate_limit, enabled=self.config.rate_limits.enabled),
        )

    def _client_base_url(self) -> str:
        """The client API's public base URL (see public_addresses)."""
        config = self.config
        return public_addresses(
            config.server_name,
            client_port=parse_listen(config.client_listen)[1],
            federation_port=parse_listen(config.federation_listen)[1],
            public_baseurl=config.public_baseurl,
            federation_public_address=config.federation_public_address,
        ).client_base_url

    def _oauth_apis(
        self, pool: asyncpg.Pool, sessions: SessionService, base_url: str
    ) -> list[object]:
        """The OAuth 2.0 API (homeserver/oauth) when `oauth.enabled`, and the
        admin API over its sessions."""
        config = self.config
        apis: list[object] = [AdminOAuthApi(self.oauth_grants, config.server_name)]
        if not config.oauth.enabled:
            return apis
        clients = OAuthClients(OAuthClientStore(pool))
        grants = OAuthGrantStore(pool)
        registration_open = config.enable_registration
        id_tokens = IdTokens(
            load_or_create_key(config.path(config.oauth.signing_key_path)), issuer_of(base_url)
        )
        apis += [
            OAuthMetadataApi(base_url, registration_open=registration_open),
            OAuthApi(
                clients,
                AuthorizationRequests(clients, grants, registration_open=registration_open),
                OAuthTokens(
                    clients,
                    grants,
                    OAuthSessionStore(pool),
                    sessions,
                    id_tokens,
                    self.upstream_sign_in,
                ),
                DeviceAuthorizations(
                    clients,
                    grants,
                    base_url=base_url,
                    lifetime_s=config.oauth.device_code_lifetime_s,
                    poll_interval_s=config.oauth.device_poll_interval_s,
                ),
                id_tokens,
            ),
        ]
        return apis

    async def _build_client_app(self, pool: asyncpg.Pool) -> web.Application:
        config = self.config
        # Push gateways, identity servers and URL previews (outbound_tls_ca_file).
        ca_file = config.outbound_tls_ca_file
        self.outbound_ssl = outbound_ssl_context(
            config.path(ca_file) if ca_file else None, insecure=config.outbound_tls_insecure
        )
        users = UserStore(pool)
        hasher = PasswordHasher(config.bcrypt_rounds)
        password_policy = PasswordPolicy(config.password_policy)
        sessions = SessionService(
            SessionStore(pool),
            refreshable_lifetime_ms=config.refreshable_access_token_lifetime_ms,
        )
        # In-process caches kept true across a deployment's processes.
        shared = self.cache_invalidations
        sessions.share_invalidations(shared)
        registration_tokens = RegistrationTokenStore(pool)
        accounts = AccountService(
            users,
            sessions,
            hasher,
            registration_tokens,
            config.server_name,
            reserved=lambda user_id: self.appservices.exclusive_user_owner(user_id) is not None,
            password_policy=password_policy,
        )
        passwords = PasswordChecker(users, hasher, self._ldap_sign_in(pool, users, accounts))
        # The OAuth 2.0 authorization server's grants (homeserver/oauth), for
        # its web pages; with OAuth on they approve cross-signing resets (UIA).
        self.oauth_grants = OAuthGrants(
            OAuthGrantStore(pool),
            OAuthClients(OAuthClientStore(pool)),
            OAuthSessionStore(pool),
            sessions,
        )
        oauth_on = config.oauth.enabled
        reset_url = (
            f"{account_management_uri(self._client_base_url())}?action={CROSS_SIGNING_RESET}"
        )
        emails = self._email_validation(pool)
        account_threepids = AccountThreepids(UserThreepidStore(pool))
        uia = UiaService(
            UiaStore(pool),
            passwords,
            registration_tokens,
            config.server_name,
            sso_enabled=bool(config.oidc_providers),
            reset_approvals=self.oauth_grants if oauth_on else None,
            reset_url=reset_url if oauth_on else None,
            emails=emails,
            account_threepids=account_threepids,
        )
        appservice_accounts = AppServiceAccounts(
            self.appservices, accounts, sessions, users, server_name=config.server_name
        )
        await appservice_accounts.ensure_senders()
        # Requests to the appservices: user and alias queries, lookups, pings.
        appservice_client = AppServiceClient(ssl_context=self.outbound_ssl)

        async def close_appservice_client(_: web.Application) -> None:
            await appservice_client.close()

        appservice_queries = AppServiceQueries(
            self.appservices, appservice_client, users, server_name=config.server_name
        )
        appservice_aliases = AppServiceAliases(self.appservices, appservice_queries)
        limits = config.rate_limits
        limiters = {
            name: RateLimiter(getattr(limits, name), enabled=limits.enabled)
            for name in ("login", "registration", "client_writes")
        }
        app = web.Application(
            middlewares=[matrix_middleware(self.metrics)],
            client_max_size=config.max_request_body_bytes,
        )
        appservice_auth = AppServiceAuth(
            self.appservices, users, SessionStore(pool), server_name=config.server_name
        )
        appservice_auth.share_invalidations(shared)
        authenticator = Authenticator(
            sessions.authenticate,
            appservice_auth.requester,
            appservice_auth.is_unlimited,
            query_tokens=config.access_token_query_parameter,
        )
        router = Router(
            app,
            authenticator,
            limiters,
            AdminGate(users, AuditStore(pool)),
        )
        # Other servers' profiles, aliases and rooms, over the federation
        # client that comes with the federation listener.
        queries = FederationQueries(lambda: self.federation_client)
        profiles = ProfileService(
            users,
            server_name=config.server_name,
            remote=queries,
            unknown_user=appservice_queries.query_user,
        )
        state = StateStore(pool)
        events = EventStore(pool, state)
        events.share_invalidations(shared)
        # Shared with the federation listener, which serves reads of the same rooms.
        self.event_store, self.state_store, self.profiles = events, state, profiles
        self.pipeline = EventPipeline(
            events,
            state,
            self.event_stream,
            self.notifier,
            server_name=config.server_name,
            signing_key=self.signing_key,
        )
        # A worker's room writes go to the room's owner (cluster/forwarding.py).
        self._forwarded_writes = await route_room_writes(
            app,
            self.pipeline,
            pool,
            workers=config.workers,
            roles=self.roles,
            secret=config.worker_shared_secret,
        )
        room_store = RoomStore(pool)
        moderation = Moderation(AdminUserStore(pool), AdminRoomStore(pool))
        moderation.share_invalidations(shared)
        await moderation.start()
        # Shared with the federation listener, which authorises other servers' joins.
        self.restricted_joins = RestrictedJoins(
            events, RestrictedJoinStore(pool), server_name=config.server_name
        )
        guest_access = GuestAccessRules(events, GuestStore(pool), self.pipeline)
        # Invite blocking (MSC4380), also asked by the federation listener and /sync.
        self.invite_permission = InvitePermission(InvitePermissionStore(pool))
        self.invite_permission.share_invalidations(shared)
        await self.invite_permission.start()
        rooms = RoomService(
            self.pipeline,
            events,
            room_store,
            profiles,
            server_name=config.server_name,
            default_room_version=config.default_room_version,
            moderation=moderation,
            remote=RemoteMembership(
                lambda: self.federation_client,
                lambda: self.key_ring,
                self.pipeline,
                queries,
                server_name=config.server_name,
                signing_key=self.signing_key,
            ),
            remote_memberships=RemoteMembershipStore(pool),
            restricted=self.restricted_joins,
            guest_access=guest_access,
            limits=config.request_limits,
            appservice_aliases=appservice_aliases,
            invite_policy=self.invite_permission,
        )
        profiles.add_listener(MemberProfileUpdater(rooms).profile_changed)

        async def stop_remote_invites(_: web.Application) -> None:
            await rooms.stop()

        app.on_cleanup.append(stop_remote_invites)
        app.on_cleanup.append(close_appservice_client)
        history_store = HistoryStore(pool)
        erased_content = ErasedContent(ErasureStore(pool), state, events)
        retention_store = RetentionStore(pool)
        retention = await self._retention_policies(retention_store)
        visibility = HistoryVisibility(state, events, history_store, erased_content, retention)
        thread_subscriptions = ThreadSubscriptions(
            ThreadSubscriptionStore(pool), events, visibility, self.notifier
        )
        account_data_store = AccountDataStore(pool)
        ignored = IgnoredUsers(account_data_store)
        ignored.share_invalidations(shared)
        relations = RelationsService(
            RelationStore(pool),
            events,
            room_store,
            history_store,
            visibility,
            account_data_store,
        )
        formatter = EventFormatter(events, relations)
        directory_store = DirectoryStore(pool)
        directory = DirectoryService(
            self.pipeline,
            events,
            room_store,
            directory_store,
            server_name=config.server_name,
            remote=queries,
            appservices=appservice_aliases,
        )
        self.directory = directory
        # Spaces and room summaries of rooms on other servers (federation hierarchy).
        room_servers = RoomServersStore(pool)
        remote_hierarchy = FederationHierarchy(lambda: self.federation_client, config.server_name)
        self.hierarchy = SpaceHierarchy(
            events,
            room_store,
            directory_store,
            access=room_servers,
            server_name=config.server_name,
            remote=remote_hierarchy,
        )
        self.hierarchy_serving = HierarchyServing(
            self.hierarchy, directory_store, room_servers, server_name=config.server_name
        )
        room_summary_api = RoomSummaryApi(
            RoomSummaries(
                directory,
                directory_store,
                room_store,
                room_servers,
                server_name=config.server_name,
                remote=remote_hierarchy,
            )
        )
        # Events other servers name for a time, fetched as backfilled history.
        timestamp_backfill = FederationBackfill(
            lambda: self.federation_client,
            lambda: self.key_ring,
            events,
            directory_store,
            self.pipeline,
            server_name=config.server_name,
        )
        # Jump to date, asking other servers where our history has a gap.
        jump_to_date_api = JumpToDateApi(
            JumpToDate(
                TimestampStore(pool),
                room_store,
                visibility,
                remote=FederationTimestamps(
                    lambda: self.federation_client, timestamp_backfill, events
                ),
            )
        )
        directory_api = DirectoryApi(
            directory,
            RoomUpgrader(self.pipeline, events, rooms, directory, directory_store),
            self.hierarchy,
        )
        account_data = AccountDataService(account_data_store, self.notifier, room_store)
        account_data.add_listener(self.invite_permission.account_data_changed)
        account_data.add_listener(ignored.account_data_changed)
        tags = TagService(account_data, account_data_store)
        await account_data.start()
        push_store = PushStore(pool)
        push_rules = PushRulesService(
            push_store,
            account_data,
            thread_subscription_rules=config.push.thread_subscription_rules,
        )
        push_rules.share_invalidations(shared)
        push_notifier = PushNotifier(
            push_rules,
            push_store,
            server_name=config.server_name,
            thread_subscriptions=thread_subscriptions,
        )
        self.pipeline.add_transaction_hook(push_notifier.in_transaction)
        push_rules.add_listener(push_notifier.user_changed)
        # Rule and pusher changes of other processes reach user_changed through
        # their caches' invalidations; missed ones (a lost channel) through this.
        shared.register("push_room_facts", lambda _key: None, push_notifier.forget_rooms)
        carry_over = UpgradeCarryOver(
            push_rules, account_data, account_data_store, events, server_name=config.server_name
        )
        self.pipeline.add_commit_hook(carry_over.on_commit)
        user_directory = UserDirectory(
            UserDirectoryStore(pool), search_all_users=config.user_directory.search_all_users
        )
        self.pipeline.add_commit_hook(user_directory.on_commit)
        if config.forget_rooms_on_leave:
            forgetter = ForgetOnLeave(room_store, server_name=config.server_name)
            self.pipeline.add_commit_hook(forgetter.on_commit)
        # Last: the guest access change is fully recorded before guests leave.
        self.pipeline.add_commit_hook(guest_access.on_commit)
        if config.enable_ephemeral_messages:
            await self._start_self_destruct(app, pool, events)
        await self._start_purge_job(app, pool, events, retention_store, retention)
        delayed = await self._start_delayed_events(
            app, pool, events, rooms, limiters["client_writes"]
        )
        filters = FilterService(FilterStore(pool))
        presence = presence_service(pool, self.notifier, shared, config, self.roles.worker)
        await presence.start()
        if isinstance(presence, SharedPresenceService):
            # One process of a deployment times everyone out (cluster/presence.py).
            timeouts = PresenceTimeouts(presence, now_ms)
            await self.duties.run(
                app, Duty.PRESENCE_TIMEOUTS, timeouts.start, timeouts.stop, always_leased=True
            )
        typing = await typing_service(pool, self.notifier, room_store, presence)
        typing.start()
        receipts = ReceiptService(
            ReceiptStore(pool),
            StreamPublisher("receipts", stream_ids(pool, self.notifier, "receipts"), self.notifier),
            room_store,
            account_data,
            presence,
        )
        await receipts.start()
        pusher_store = PusherStore(pool)
        pusher_store.share_invalidations(shared)
        pusher_store.add_put_listener(push_notifier.user_changed)
        push_sender = PushSender(
            pusher_store,
            push_store,
            room_store,
            receipts,
            include_content=config.push.include_content,
            active_users=presence.syncing_users if config.push.suppress_when_active else None,
            ssl_context=self.outbound_ssl,
        )
        # The pushers' duty reads the notification rows (push/stream.py).
        self.push_stream = PushStream(PushStreamStore(pool), events, push_sender, self.notifier)
        identity_client = IdentityServerClient(
            ssl_context=self.outbound_ssl,
            # Unbinding is signed like a federation request.
            sign=lambda method, uri, destination, content: sign_request(
                method=method,
                uri=uri,
                origin=config.server_name,
                destination=destination,
                content=content,
                signing_key=self.signing_key,
            ),
        )

        async def close_identity_client(_: web.Application) -> None:
            await identity_client.close()

        app.on_cleanup.append(close_identity_client)
        threepid_bindings = ThreepidBindings(ThreepidBindingStore(pool), identity_client)
        # Also completed by identity servers calling the federation listener.
        self.third_party_invites = third_party_invites = ThirdPartyInvites(
            identity_client,
            rooms,
            room_store,
            events,
            server_name=config.server_name,
            forwarder=InviteExchange(lambda: self.federation_client),
        )
        to_device = ToDeviceService(
            ToDeviceStore(pool),
            StreamPublisher(
                "to_device", stream_ids(pool, self.notifier, "to_device"), self.notifier
            ),
            server_name=config.server_name,
            limits=config.request_limits,
        )
        await to_device.start()
        device_lists = DeviceListService(
            DeviceListStore(pool),
            StreamPublisher(
                "device_lists", stream_ids(pool, self.notifier, "device_lists"), self.notifier
            ),
        )
        await device_lists.start()
        sessions.add_device_listener(device_lists)
        # Where device list and cross-signing changes are announced; the
        # federation sender adds its listener here.
        self.key_changes = KeyChanges(device_lists)
        sessions.add_device_listener(self.key_changes)
        e2e_keys = E2eKeyStore(pool)
        # Remote users' keys over federation (the client comes with the
        # federation listener, which also registers the EDU handlers).
        self.remote_keys = FederationRemoteKeys(
            RemoteKeyStore(pool),
            lambda: self.federation_client,
            device_lists,
            self.notifier,
            server_name=config.server_name,
        )
        self.key_service = KeyService(
            e2e_keys,
            DeviceListStore(pool),
            self.key_changes,
            server_name=config.server_name,
            remote=self.remote_keys,
            limits=config.request_limits,
        )
        # The key counts of /sync and sliding sync, kept until keys change.
        key_counts = KeyCountsSyncProvider(e2e_keys)
        key_counts.share_invalidations(shared)
        self.key_service.add_counts_listener(key_counts.forget)
        sessions.add_device_listener(key_counts)
        self.to_device = to_device
        # The federation sender, built with the federation listener, hears these.
        self.typing, self.receipts, self.presence = typing, receipts, presence
        # In a cluster they hear every process's through this instead.
        self.ephemeral_follower = follower = await ephemeral_follower(
            pool, self.notifier, self.roles
        )
        if follower is not None:
            app.on_cleanup.append(lambda _: follower.stop())
        if follower is not None:
            follower.listen(read_receipts=self.push_stream.receipts_stored)
        else:
            receipts.add_listener(self.push_stream.receipt_stored, private=True)
        # Leased in a cluster even without workers: its processes push once.
        await self.duties.run(
            app,
            Duty.PUSHER,
            self.push_stream.start,
            self.push_stream.stop,
            always_leased=config.cluster_mode,
        )
        await self._start_appservice_delivery(app, pool, events, formatter, directory)

        async def stop_ephemeral(_: web.Application) -> None:
            typing.stop()
            await presence.stop()

        app.on_cleanup.append(stop_ephemeral)
        # The parts of a /sync response, in the order they are built.
        # What the polls woken by one event read once for all (sync/shared_reads.py).
        shared_reads = SharedReads(SyncStore(pool), events, self.notifier)
        sync_providers: list[SyncProvider] = [
            RoomsSyncProvider(
                SyncStore(pool),
                events,
                state,
                visibility,
                EventFormatter(shared_reads, relations),
                ignored,
                RemoteMembershipStore(pool),
                invite_policy=self.invite_permission,
                shared=shared_reads,
            ),
            account_data,
            push_rules,
            typing,
            receipts,
            presence,
            UnreadCounts(push_store, receipts),
            to_device,
            device_lists,
            key_counts,
        ]
        # Simplified sliding sync's extensions: the /sync v2 providers, reshaped.
        sliding_sync_extensions = SlidingSyncExtensions(
            ExtensionProviders(
                account_data=account_data,
                push_rules=push_rules,
                receipts=receipts,
                typing=typing,
                device_lists=device_lists,
                key_counts=key_counts,
            ),
            ToDeviceStore(pool),
            thread_subscriptions,
        )
        self.sliding_sync_extensions = sliding_sync_extensions
        # Shared with the federation listener, which answers OpenID userinfo too.
        self.openid_tokens = OpenIdTokens(OpenIdStore(pool))
        host, port = parse_listen(config.client_listen)
        fed_host, fed_port = parse_listen(config.federation_listen)
        guests = GuestAccounts(
            users,
            GuestStore(pool),
            accounts,
            sessions,
            registration_tokens,
            enabled=config.allow_guest_access,
        )
        addresses = public_addresses(
            config.server_name,
            client_port=port,
            federation_port=fed_port,
            public_baseurl=config.public_baseurl,
            federation_public_address=config.federation_public_address,
        )
        # One signed-in browser across the server's web pages (OAuth 2.0,
        # single sign-on, the account page); see homeserver/web.
        self.browser_sessions = BrowserSessions(
            BrowserSessionStore(pool),
            secure_cookie=addresses.client_base_url.startswith("https:"),
        )
        # Upstream OpenID Connect providers and legacy SSO (homeserver/sso).
        provider_http = ProviderHttp(self.outbound_ssl)
        app.on_cleanup.append(lambda _: provider_http.close())
        self.upstream_sign_in = UpstreamSignIn(
            [
                OidcProvider(
                    p,
                    provider_http,
                    f"{addresses.client_base_url.rstrip('/')}{UPSTREAM_PREFIX}/{p.idp_id}/callback",
                    config.path(p.client_auth_key_file) if p.client_auth_key_file else None,
                )
                for p in config.oidc_providers
            ],
            UpstreamStore(pool),
            users,
            accounts,
            profiles,
            sessions,
            self.browser_sessions,
            config.server_name,
        )
        token_login = TokenLogin(
            LoginTokenStore(pool),
            users,
            sessions,
            self.upstream_sign_in,
            get_login_token_enabled=config.sso.login_via_existing_session,
        )
        # The pages people see: sign-in, registration, OAuth consent and
        # device codes, the account page (homeserver/web, api/web_*.py).
        web_pages = PageRenderer(config.web)
        # The OAuth authorization server's OAuthGrants (homeserver/oauth), or
        # None while OAuth is off: its pages then say so.
        web_grants = self.oauth_grants if config.oauth.enabled else None
        router.mount(
            SignInPages(
                pages=web_pages,
                browser_sessions=self.browser_sessions,
                form_keys=FormKeys(
                    derive_form_key(bytes(self.signing_key)),
                    secure_cookie=addresses.client_base_url.startswith("https:"),
                ),
                passwords=passwords,
                accounts=accounts,
                registration_tokens=registration_tokens,
                login_ip_limiter=limiters["login"],
                login_account_limiter=RateLimiter(limits.login, enabled=limits.enabled),
                registration_limiter=limiters["registration"],
                upstream_links=self.upstream_sign_in.links(),
                server_name=config.server_name,
                enable_registration=config.enable_registration,
                registration_requires_token=config.registration_requires_token,
            ),
            ConsentPages(
                pages=web_pages,
                browser_sessions=self.browser_sessions,
                grants=web_grants,
                registration_open=config.enable_registration,
                upstream=self.upstream_sign_in,
            ),
            AccountPages(
                pages=web_pages,
                browser_sessions=self.browser_sessions,
                sessions=sessions,
                profiles=profiles,
                accounts=accounts,
                passwords=passwords,
                threepids=threepid_bindings,
                grants=web_grants,
            ),
        )
        account_moderation = AccountModeration(
            users,
            AdminUserStore(pool),
            sessions,
            server_name=config.server_name,
            on_change=[appservice_auth.account_changed],
        )
        router.mount(
            DiscoveryApi(
                server_name=config.server_name,
                public_baseurl=addresses.client_base_url,
                federation_address=addresses.federation_address,
                default_room_version=config.default_room_version,
                rtc_foci=config.rtc_foci,
                change_password=config.ldap is None or config.ldap.local_passwords_enabled,
                get_login_token=config.sso.login_via_existing_session,
                delayed_events=delayed.capability(),
                account_moderation=account_moderation.capability,
                forget_on_leave=config.forget_rooms_on_leave,
                threepid_changes=emails is not None,
            ),
            SupportApi(config.support),
            SessionApi(
                server_name=config.server_name,
                accounts=accounts,
                guests=guests,
                sessions=sessions,
                passwords=passwords,
                uia=uia,
                registration_tokens=registration_tokens,
                login_account_limiter=RateLimiter(limits.login, enabled=limits.enabled),
                enable_registration=config.enable_registration,
                threepids=threepid_bindings,
                registration=ClientRegistration(
                    accounts,
                    sessions,
                    uia,
                    guests,
                    requires_token=config.registration_requires_token,
                    emails=account_threepids if emails is not None else None,
                    requires_email=config.email is not None
                    and config.email.registration_requires_email,
                ),
                account_threepids=account_threepids,
                password_reset=PasswordReset(uia, account_threepids, accounts, passwords)
                if emails is not None
                else None,
                appservices=appservice_accounts,
                token_login=token_login,
                oauth_enabled=oauth_on,
                legacy_refresh=LegacyRefreshGuard(OAuthSessionStore(pool), sessions),
                password_registration=not oauth_on or config.oauth.legacy_registration,
            ),
            UpstreamApi(
                self.upstream_sign_in,
                self.browser_sessions,
                secure_cookie=addresses.client_base_url.startswith("https:"),
            ),
            SsoApi(
                upstream=self.upstream_sign_in,
                token_login=token_login,
                browser_sessions=self.browser_sessions,
                uia=uia,
                client_whitelist=config.sso.client_whitelist,
                public_baseurl=addresses.client_base_url,
            ),
            *self._oauth_apis(pool, sessions, addresses.client_base_url),
            DevicesApi(sessions, uia, appservice_accounts),
            ProfileApi(profiles),
            RoomsApi(rooms, third_party_invites, delayed),
            DelayedEventsApi(
                delayed,
                authenticator,
                RateLimiter(limits.delayed_event_mgmt, enabled=limits.enabled),
            ),
            AccountModerationApi(account_moderation),
            UserReportsApi(
                UserReports(
                    UserReportStore(pool),
                    RateLimiter(limits.reports, enabled=limits.enabled),
                    server_name=config.server_name,
                )
            ),
            MutualRoomsApi(MutualRooms(MutualRoomStore(pool))),
            ThreepidsApi(threepid_bindings, account_threepids, uia, emails),
            EmailValidationApi(emails, addresses.client_base_url.rstrip("/") + SUBMIT_PATH),
            ThreepidOnBindApi(third_party_invites),
            RoomHistoryApi(
                HistoryService(
                    history_store,
                    visibility,
                    events,
                    state,
                    room_store,
                    ignored,
                    # Older history of rooms joined through other servers.
                    remote=FederationBackfill(
                        lambda: self.federation_client,
                        lambda: self.key_ring,
                        events,
                        directory_store,
                        self.pipeline,
                        server_name=config.server_name,
                    ),
                ),
                formatter,
            ),
            directory_api,
            room_summary_api,
            jump_to_date_api,
            RelationsApi(relations, formatter),
            SearchApi(
                SearchService(
                    SearchStore(pool),
                    events,
                    state,
                    visibility,
                    formatter,
                ),
                ReportService(
                    ReportStore(pool),
                    events,
                    room_store,
                    visibility,
                ),
            ),
            UserDataApi(account_data, filters),
            ThreadSubscriptionsApi(thread_subscriptions),
            PasswordPolicyApi(password_policy),
            DehydratedDeviceApi(
                DehydratedDevices(
                    DehydratedDeviceStore(pool),
                    sessions,
                    self.key_service,
                    ToDeviceStore(pool),
                    self.notifier,
                )
            ),
            EphemeralApi(typing, receipts, presence),
            SyncApi(
                SyncService(self.notifier, sync_providers, room_store, presence),
                filters,
            ),
            SlidingSyncApi(
                SlidingSyncService(
                    self.notifier,
                    SlidingSyncStore(pool),
                    SyncStore(pool),
                    RoomDataBuilder(
                        SlidingSyncStore(pool),
                        SyncStore(pool),
                        events,
                        state,
                        visibility,
                        formatter,
                        RemoteMembershipStore(pool),
                        push_store,
                        receipts,
                    ),
                    ignored,
                    sliding_sync_extensions,
                    presence,
                    invite_policy=self.invite_permission,
                ),
                sliding_sync_extensions,
            ),
            LegacyEventsApi(
                EventStream(
                    self.notifier,
                    SyncStore(pool),
                    EventStreamStore(pool),
                    events,
                    room_store,
                    visibility,
                    formatter,
                    [account_data, typing, receipts, presence],
                    presence,
                ),
                InitialSync(
                    SyncService(self.notifier, sync_providers, room_store),
                    HistoryService(history_store, visibility, events, state, room_store, ignored),
                    room_store,
                    formatter,
                    account_data,
                    [receipts, presence],
                ),
                formatter,
            ),
            PushRulesApi(push_rules),
            PushersApi(
                PusherService(pusher_store),
                NotificationList(pusher_store, events, receipts, formatter),
            ),
            OpenIdApi(self.openid_tokens, config.server_name),
            ToDeviceApi(to_device),
            E2eKeysApi(
                self.key_service,
                CrossSigningService(e2e_keys, self.key_changes),
                uia,
            ),
            RoomKeysApi(KeyBackupService(KeyBackupStore(pool))),
            TagsApi(tags),
            UserDirectoryApi(user_directory),
            VoipApi(TurnService(config.turn)),
            ThirdPartyApi(appservice_queries),
            AppServiceApi(
                AppServicePing(
                    self.appservices, appservice_client, wake=self.appservice_delivery.wake
                ),
                AppServiceDirectory(AppServiceDirectoryStore(pool)),
            ),
            await self._media_api(app, pool),
            *await self._admin_apis(
                app,
                pool,
                AdminUsers(
                    users=users,
                    store=AdminUserStore(pool),
                    accounts=accounts,
                    sessions=sessions,
                    hasher=hasher,
                    profiles=profiles,
                    rooms=rooms,
                    room_store=room_store,
                    write_limiter=limiters["client_writes"],
                    moderation=moderation,
                    server_name=config.server_name,
                ),
                AdminRooms(
                    store=AdminRoomStore(pool),
                    tasks=AdminRoomTaskStore(pool),
                    rooms=rooms,
                    events=events,
                    history=history_store,
                    formatter=formatter,
                    server_name=config.server_name,
                    runner=session_name(config, self.roles.worker),
                ),
                ServerNotices(
                    config.server_notices,
                    users=users,
                    rooms=rooms,
                    room_store=room_store,
                    store=AdminRoomStore(pool),
                    tags=tags,
                    server_name=config.server_name,
                ),
                SharedSecretRegistration(
                    secret=config.registration_shared_secret,
                    nonces=SharedSecretNonceStore(pool),
                    accounts=accounts,
                    sessions=sessions,
                    profiles=profiles,
                ),
                ComplianceSearch(ComplianceSearchStore(pool), events, formatter),
            ),
            await self._user_redactions_api(app, pool, rooms),
        )
        return app

    async def _start_self_destruct(
        self, app: web.Application, pool: asyncpg.Pool, events: EventStore
    ) -> None:
        """Self-destructing messages (MSC2228): scheduled as they are
        committed, censored by a background task stopped with the client app."""
        assert self.pipeline is not None
        expiry = SelfDestructingEvents(EventExpiryStore(pool), events)
        self.pipeline.add_commit_hook(expiry.on_commit)
        await self.duties.run(app, Duty.SELF_DESTRUCT, expiry.start, expiry.stop)

    async def _retention_policies(self, store: RetentionStore) -> RetentionPolicies | None:
        """Rooms' retention policies (MSC1763) in memory, if retention is enabled."""
        if not self.config.retention.enabled:
            return None
        policies = RetentionPolicies(store, self.config.retention)
        policies.share_invalidations(self.cache_invalidations)
        await policies.load()
        return policies

    async def _start_purge_job(
        self,
        app: web.Application,
        pool: asyncpg.Pool,
        events: EventStore,
        store: RetentionStore,
        policies: RetentionPolicies | None,
    ) -> None:
        """The purge job of retention and redacted content (homeserver/retention/),
        with the commit hooks keeping its policies and media references current."""
        assert self.pipeline is not None
        self.pipeline.add_commit_hook(MediaRefsRecorder(store).on_commit)
        config = self.config
        if policies is not None:
            self.pipeline.add_commit_hook(policies.on_commit)
        elif config.redaction_retention_period_ms is None:
            return
        self.purge_job = PurgeJob(
            store,
            events,
            policies,
            MediaManager(MediaStore(pool), self.media_files),
            PurgeMetrics(self.metrics.registry),
            PurgeSettings(
                server_name=config.server_name,
                batch_size=config.retention.purge_batch_size,
                interval_ms=config.retention.purge_interval_ms,
                log_every_batches=config.retention.log_every_batches,
                pause_factor=config.retention.purge_pause_factor,
                redaction_retention_ms=config.redaction_retention_period_ms,
            ),
        )
        # One process of a deployment purges at a time; another takes over
        # when it dies (homeserver/cluster/lease.py).
        await self.duties.run(
            app,
            Duty.RETENTION_PURGE,
            self.purge_job.start,
            self.purge_job.stop,
            always_leased=True,
        )

    async def _start_delayed_events(
        self,
        app: web.Application,
        pool: asyncpg.Pool,
        events: EventStore,
        rooms: RoomService,
        write_limiter: RateLimiter,
    ) -> DelayedEvents:
        """Delayed events (MSC4140): the scheduler sends what is due (from
        start-up on) and cancels delayed state others overwrite."""
        assert self.pipeline is not None
        store = DelayedEventStore(pool)
        scheduler = DelayedEventScheduler(store, rooms, events, write_limiter)
        self.pipeline.add_commit_hook(scheduler.on_commit)
        await self.duties.run(app, Duty.DELAYED_EVENTS, scheduler.start, scheduler.stop)
        limits = self.config.delayed_events
        return DelayedEvents(
            store,
            events,
            scheduler,
            DelayedEventLimits(max_delay_ms=limits.max_delay_ms, max_per_user=limits.max_per_user),
        )

    async def _media_api(self, app: web.Application, pool: asyncpg.Pool) -> MediaApi:
        """The content repository. Remote media is fetched over federation
        (the client is made later, with the federation listener)."""
        config = self.config
        media = config.media
        files = self.media_files
        store = MediaStore(pool)
        # For the admin API (quarantine, protection, deletion).
        self.media_manager = MediaManager(store, files)
        expiry = MediaExpiry(
            store, self.media_manager, unused_expiration_time_ms=media.unused_expiration_time_ms
        )
        await self.duties.run(app, Duty.MEDIA_EXPIRY, expiry.start, expiry.stop)
        uploader = MediaUploader(
            store,
            files,
            server_name=config.server_name,
            limits=UploadLimits(
                max_upload_size=media.max_upload_size,
                max_user_quota_bytes=media.max_user_quota_bytes,
                max_pending_media_uploads=media.max_pending_media_uploads,
                unused_expiration_time_ms=media.unused_expiration_time_ms,
                authenticated=media.enable_authenticated_media,
            ),
        )
        downloads = MediaDownloads(
            store,
            files,
            server_name=config.server_name,
            unused_expiration_time_ms=media.unused_expiration_time_ms,
            authenticated_media=media.enable_authenticated_media,
            remote=FederationMediaFetcher(
                RemoteMediaStore(pool),
                files,
                lambda: self.federation_client,
                max_size=media.max_upload_size,
            ),
        )
        previewer = None
        if media.url_preview_enabled:
            fetcher = SafeFetcher(
                AddressPolicy(media.url_preview_ip_range_whitelist),
                max_size=media.url_preview_max_size,
                timeout_s=media.url_preview_timeout_s,
                ssl_context=self.outbound_ssl,
            )
            previewer = UrlPreviewer(
                store, uploader, fetcher, max_image_pixels=media.max_image_pixels
            )

            async def close_previews(_: web.Application) -> None:
                await fetcher.close()

            app.on_cleanup.append(close_previews)
        thumbnailer = Thumbnailer(
            store,
            files,
            downloads,
            sizes=media.thumbnail_sizes,
            max_image_pixels=media.max_image_pixels,
        )
        # Also served to other servers by the federation listener.
        self.media_downloads, self.thumbnailer = downloads, thumbnailer
        return MediaApi(uploader, downloads, thumbnailer, previewer, files)

    async def _serve_federation(self) -> int | None:
        config = self.config
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(
            config.path(config.tls_certificate_path), config.path(config.tls_private_key_path)
        )
        app = web.Application(
            middlewares=[matrix_middleware(self.metrics)],
            client_max_size=max(config.max_request_body_bytes, MAX_FEDERATION_BODY_BYTES),
        )
        assert self.pool is not None
        pool = self.pool
        insecure = config.federation_insecure

        def session() -> aiohttp.ClientSession:
            return self.federation_client.session()

        backoff = Backoff(
            DestinationStore(pool), min_interval_ms=config.federation_min_retry_interval_ms
        )
        self.federation_client = FederationClient(
            server_name=config.server_name,
            signing_key=self.signing_key,
            resolver=ServerResolver(HttpWellKnown(session, verify_tls=not insecure), DnsSrv()),
            backoff=backoff,
            verify_tls=not insecure,
            blocked_networks=() if insecure else config.federation_ip_range_blacklist,
        )
        self.key_ring = KeyRing(
            ServerKeyStore(pool),
            self.federation_client,
            OurKeys(
                config.server_name,
                self.signing_key,
                [
                    OldKey(k.key_id, decode_verify_key(k.key_id, k.key), k.expired_ts)
                    for k in config.old_signing_keys
                ],
            ),
            [
                Notary(
                    n.server_name,
                    {i: decode_verify_key(i, key) for i, key in n.verify_keys.items()},
                )
                for n in config.trusted_key_servers
            ],
        )
        # Inbound EDUs (from /send transactions) by edu_type: services register here.
        self.edu_registry = EduRegistry()
        self.edu_registry.register(DIRECT_TO_DEVICE, self.to_device.receive)
        self.edu_registry.register(DEVICE_LIST_UPDATE, self.remote_keys.device_list_update)
        self.edu_registry.register(SIGNING_KEY_UPDATE, self.remote_keys.signing_key_update)
        if config.federation_sender_enabled:
            # Before close_client: cleanup runs in this order.
            await self._start_federation_sender(app, pool, backoff)
        if self.roles.worker is not None:
            name_responses(app, self.roles.worker)

        async def close_client(_: web.Application) -> None:
            await self.federation_client.close()

        app.on_cleanup.append(close_client)
        read_store = FederationReadStore(pool)
        reads = FederationReads(
            self.event_store,
            self.state_store,
            read_store,
            server_name=config.server_name,
            erasure=ErasureStore(pool),
        )
        assert self.pipeline is not None
        EphemeralEdus(self.typing, self.receipts, self.presence, reads, read_store).register(
            self.edu_registry
        )
        pdus = PduProcessor(
            self.event_store,
            reads,
            read_store,
            self.pipeline,
            self.key_ring,
            RemoteEvents(self.federation_client, self.key_ring),
            server_name=config.server_name,
        )
        receiver = TransactionReceiver(InboundTransactionStore(pool), pdus, self.edu_registry)
        if config.federation_sender_enabled and self.roles.runs(Duty.FEDERATION_SENDER):
            self._catch_up_on_start(app, read_store, pdus)
        FederationRouter(app, RequestVerifier(self.key_ring, config.server_name)).mount(
            FederationSendApi(receiver),
            FederationVersionApi(),
            FederationOpenIdApi(self.openid_tokens),
            KeysApi(self.key_ring),
            FederationRoomsApi(reads),
            FederationHierarchyApi(self.hierarchy_serving),
            FederationTimestampApi(TimestampServing(reads, TimestampStore(pool))),
            FederationQueryApi(self.profiles, self.directory, server_name=config.server_name),
            FederationMediaApi(
                self.media_downloads,
                self.thumbnailer,
                self.media_files,
                server_name=config.server_name,
            ),
            FederationThreepidApi(self.third_party_invites),
            FederationE2eApi(
                self.key_service,
                UserDevices(
                    E2eKeyStore(pool),
                    SessionStore(pool),
                    RemoteKeyStore(pool),
                    server_name=config.server_name,
                ),
            ),
            FederationMembershipApi(
                MembershipHandshakes(
                    self.event_store,
                    reads,
                    read_store,
                    self.pipeline,
                    self.key_ring,
                    UserStore(pool),
                    server_name=config.server_name,
                    signing_key=self.signing_key,
                    invite_policy=self.invite_permission,
                )
            ),
            FederationJoinsApi(
                JoinService(
                    self.event_store,
                    reads,
                    read_store,
                    self.pipeline,
                    self.key_ring,
                    self.restricted_joins,
                    server_name=config.server_name,
                    signing_key=self.signing_key,
                )
            ),
        )
        host, port = parse_listen(config.federation_listen)
        if not opens(config, self.roles, "federation_listen"):
            await self._serve_nowhere(app)
            return None
        return await self._serve(app, host, port, tls)

    def _catch_up_on_start(
        self, app: web.Application, read_store: FederationReadStore, pdus: PduProcessor
    ) -> None:
        """Ask the other servers of shared rooms for what they sent while we
        were down, in the background; cancelled first when the app stops."""
        catch_up = CatchUpOnStart(
            server_name=self.config.server_name,
            client=self.federation_client,
            read_store=read_store,
            events=self.event_store,
            pdus=pdus,
        )
        task = asyncio.create_task(catch_up.run())

        async def cancel(_: web.Application) -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.on_cleanup.insert(0, cancel)

    async def _start_federation_sender(
        self, app: web.Application, pool: asyncpg.Pool, backoff: Backoff
    ) -> None:
        """Outbound federation: follows the event stream and hears the
        ephemeral and key services; stopped when the federation app stops.
        One sender per shard of the destinations (homeserver/cluster/federation_shards.py)."""
        # Workers tell the shard holders of the EDUs they store; a process
        # alone (or each of `cluster.enabled` without workers) sends them itself.
        wakes = OutboxWakes(self.cache_invalidations) if self.roles.worker is not None else None
        for shard in sender_shards(self.config.workers, self.roles):
            sender = FederationSender(
                server_name=self.config.server_name,
                store=FederationSenderStore(pool, shard=shard.name),
                notifier=self.notifier,
                client=self.federation_client,
                backoff=backoff,
                e2e_keys=E2eKeyStore(pool),
                sessions=SessionStore(pool),
                owns=shard.owns,
                outbox_stored=wakes.stored if wakes is not None else None,
            )
            if wakes is not None:
                wakes.listen(sender.outbox_filled, sender.outbox_missed)
            if self.ephemeral_follower is not None:
                self.ephemeral_follower.listen(
                    typing=sender.typing_changes,
                    receipts=sender.receipts_stored,
                    presence=sender.presence_changed,
                )
            else:
                self.typing.add_listener(sender.typing_changed)
                self.receipts.add_listener(sender.receipt_stored)
                self.presence.add_listener(sender.presence_changed)
            self.key_changes.add_listener(sender.keys_changed)
            await self.duties.run(
                app,
                Duty.FEDERATION_SENDER,
                sender.start,
                sender.stop,
                lease=shard.lease,
                defer_to=shard.defer_to,
            )

    async def _start_appservice_delivery(
        self,
        app: web.Application,
        pool: asyncpg.Pool,
        events: EventStore,
        formatter: EventFormatter,
        directory: DirectoryService,
    ) -> None:
        """Pushes to the application services: follows the streams, hears
        typing, presence and published aliases; stopped with the client app."""
        self.appservice_delivery = delivery = AppServiceDelivery(
            appservices=self.appservices,
            store=AppServiceDeliveryStore(pool),
            events=events,
            formatter=formatter,
            notifier=self.notifier,
            typing_users=(self.ephemeral_follower or self.typing).typing_users,
            metrics=DeliveryMetrics(self.metrics.registry),
            server_name=self.config.server_name,
            ssl_context=self.outbound_ssl,
        )
        if self.ephemeral_follower is not None:
            self.ephemeral_follower.listen(
                typing=delivery.typing_changes, presence=delivery.presence_changed
            )
        else:
            self.typing.add_listener(delivery.typing_changed)
            self.presence.add_listener(delivery.presence_changed)
        directory.add_alias_listener(delivery.aliases_changed)
        await self.duties.run(app, Duty.APPSERVICE_SENDER, delivery.start, delivery.stop)

    def _build_metrics_app(self) -> web.Application:
        async def render(_: web.Request) -> web.Response:
            return web.Response(body=self.metrics.render(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", render)
        return app

    async def _serve(
        self,
        app: web.Application,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        *,
        cancel_on_disconnect: bool = False,
    ) -> int:
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5,
            # Stop a request's work when its client hangs up (writes are shielded, completion.py).
            handler_cancellation=cancel_on_disconnect,
        )
        await runner.setup()
        self._runners.append(runner)
        listener = await Listener.start(runner, host, port, self.config.http, tls)
        self._listeners.append(listener)
        return listener.port

    async def _serve_internal(self) -> int | None:
        """A worker's internal listener (homeserver/api/internal.py)."""
        worker = self.roles.worker
        if worker is None:
            return None
        secret = self.config.worker_shared_secret
        assert secret is not None  # the config requires it with workers
        host, port = parse_listen(self.config.workers[worker].internal_listen or "")
        status = {"worker": worker, "roles": sorted(self.roles.roles)}
        app = internal_app(
            secret,
            lambda: {
                **status,
                "duties": self.duties.held(),
                # Which database session hears the other processes (operators, tests).
                "invalidation_listener_pid": self.cache_invalidations.listening_pid,
            },
            self._forwarded_writes,
        )
        return await self._serve(app, host, port)

    async def _serve_nowhere(self, app: web.Application) -> None:
        """An app this worker opens no listener for: set up all the same, so
        that stopping the server runs its cleanup (the duties it started)."""
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)

    async def stop(self) -> None:
        """Stop taking requests, let the ones in flight finish, then close the database."""
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await drain_writes()
        if self.pipeline is not None:
            await self.pipeline.drain()
        await self.cache_invalidations.stop()
        notifier = getattr(self, "notifier", None)
        if notifier is not None:
            await notifier.close()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
