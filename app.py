"""Herald's composition root: settings → stores → adapter → bot → channels → workers → routes.

`python app.py` starts the bot on http://localhost:3978/api/messages with embedded defaults.
Everything is built here and passed down; nothing below reads the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from botbuilder.core import ConversationState, Storage, UserState
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import CallerIdConstants
from botframework.connector.auth import AuthenticationConstants

from api.auth import ApiKeyAuth, ensure_generated_key, hash_key
from api.devices import DevicesApi
from api.engagement import EngagementApi
from api.entra import EntraConfig, EntraTokens
from api.graph import GraphApi
from api.health import HealthApi
from api.http import echo_request_id, errors_middleware, request_id_middleware
from api.inbox import InboxApi, InboxLinks
from api.inbox_feed import InboxFeed
from api.landing import LandingPages
from api.link_tokens import LinkTokens, load_or_create_secret
from api.notifications import NotificationsApi
from api.openapi import OpenApi
from api.operator import OperatorApi
from api.pages import LivePages
from api.preferences import PreferencesApi
from api.push import PushApi, PushLinks
from api.push_page import PushPage
from api.resend import ResendApi
from api.routing import ROUTES, RouteTable
from api.users import UsersApi
from bots.endpoint import MessagesEndpoint
from bots.herald_bot import HeraldBot
from bots.teams import TeamChannels
from config import Settings
from delivery.allowed_hosts import AllowedHosts
from delivery.apns import ApnsChannel, ApnsConfig
from delivery.audience import Audiences
from delivery.budget import BudgetStore, LaneBudget, LocalBudget, SharedBudget
from delivery.channel import Channel, ChannelRegistry
from delivery.conversation import ConversationChannel
from delivery.fairness import FairClock
from delivery.mobile import MobilePush, UnreachableDevices
from delivery.outbox import Outbox
from delivery.outbox_sqlite import SqliteOutbox
from delivery.ratelimit import KeyedBuckets
from delivery.reach import TeamsReach
from delivery.router import Router
from delivery.vapid import VapidKeys
from delivery.webpush import WebPushChannel
from delivery.worker import Backoff, DeliveryWorker
from dialogs.calendar import CalendarFlow
from dialogs.card_actions import CardActions
from dialogs.consent import ConsentFlow
from dialogs.engagement_flow import EngagementFlow
from dialogs.history import HistoryFlow
from dialogs.main_dialog import MainDialog
from dialogs.preferences_flow import PreferencesFlow
from dialogs.prompt_dialog import PromptAnswers
from dialogs.services import DialogServices
from engagement import EngagementService
from errors import SettingsError
from logs import AccessLog, MalformedRequests, configure_logging
from preferences.rules import DeliveryPolicy
from preferences.service import PreferencesService
from proactive.adapter import HeraldAdapter
from proactive.connector import HttpConnectorTransport, MsalTokenProvider, NoTokens, TokenProvider
from proactive.rosters import ConnectorRosters
from proactive.service_url import ServiceUrlPolicy
from proactive.tenants import TenantServiceUrls
from sources.graph import GraphClient, GraphConfig, MsalGraphTokens
from sources.graph_directory import GraphAppInstaller, GraphDirectory
from sources.graph_source import GraphSource
from storage.devices import DeviceStore
from storage.graph_subscriptions import (
    GraphChangeInbox,
    GraphResourceStore,
    GraphSubscriptionStore,
)
from storage.protocols import (
    ConversationStore,
    InboxStore,
    NotificationStore,
    PromptStore,
    UserStore,
)
from storage.sqlite import SqliteDatabase
from storage.sqlite_bot_state import SqliteBotStorage
from storage.sqlite_conversations import SqliteConversationStore
from storage.sqlite_devices import SqliteDeviceStore
from storage.sqlite_graph import (
    SqliteGraphChangeInbox,
    SqliteGraphResourceStore,
    SqliteGraphSubscriptionStore,
)
from storage.sqlite_notifications import SqliteInboxStore, SqliteNotificationStore
from storage.sqlite_prompts import SqlitePromptStore
from storage.sqlite_subscriptions import SqliteSubscriptionStore
from storage.sqlite_users import SqliteUserStore
from storage.subscriptions import SubscriptionStore

__all__ = ["HERALD", "Herald", "Stores", "create_app", "main"]

log = logging.getLogger("herald")


@dataclass(frozen=True, slots=True)
class _BotConfig:
    """The attribute names botbuilder's configuration-based authentication reads.

    Any of the `TO_*`/`OAUTH_URL`/`CALLER_ID` names set switches botbuilder to its
    parameterized authentication, which then needs them all (_bot_config fills them in).
    """

    APP_ID: str
    APP_PASSWORD: str
    APP_TYPE: str
    APP_TENANTID: str
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str | None = None
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str | None = None
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str | None = None
    OAUTH_URL: str | None = None
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL: str | None = None
    CALLER_ID: str | None = None


def _bot_config(settings: Settings) -> _BotConfig:
    """botbuilder's configuration: the public cloud, with the OpenID metadata URLs the
    settings name (Bot Framework mode only; Emulator mode checks no tokens)."""
    config = _BotConfig(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password.get_secret_value(),
        APP_TYPE=settings.app_type,
        APP_TENANTID=settings.app_tenant_id,
    )
    channel_keys = settings.channel_openid_metadata_url
    emulator_keys = settings.emulator_openid_metadata_url
    if settings.emulator_mode or not (channel_keys or emulator_keys):
        return config
    return dataclasses.replace(
        config,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL,
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        OAUTH_URL=AuthenticationConstants.OAUTH_URL,
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=channel_keys
        or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL=emulator_keys
        or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        CALLER_ID=CallerIdConstants.public_azure_channel,
    )


@dataclass(frozen=True, slots=True)
class Stores:
    """Every store on the configured backend (HERALD_STORE, HERALD_QUEUE), and its lifecycle."""

    users: UserStore
    conversations: ConversationStore
    notifications: NotificationStore
    inbox: InboxStore
    outbox: Outbox
    bot_storage: Storage
    prompts: PromptStore
    subscriptions: SubscriptionStore
    devices: DeviceStore
    graph_subscriptions: GraphSubscriptionStore
    graph_changes: GraphChangeInbox
    graph_resources: GraphResourceStore
    budgets: BudgetStore | None
    """Where the instances share each Teams tenant's send budget (None: one instance, its
    budget in memory)."""
    open: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    check: Callable[[], Awaitable[dict[str, bool]]]
    """What /readyz reports: each part of the backend and whether it answers now."""
    description: str
    shared: bool
    """Several instances share it over the network: Herald starts (not ready) while it is
    unreachable, and polls it for work other instances queued."""
    sqlite: SqliteDatabase | None = None
    """The embedded database, when that is the backend (tests look into it)."""


def _sqlite_stores(settings: Settings) -> Stores:
    db = SqliteDatabase(settings.database_path)

    async def check() -> dict[str, bool]:
        try:
            await db.fetchone("SELECT 1")
        except Exception:
            return {"store": False}
        return {"store": True}

    return Stores(
        users=SqliteUserStore(db),
        conversations=SqliteConversationStore(db),
        notifications=SqliteNotificationStore(db),
        inbox=SqliteInboxStore(db, retention_seconds=settings.history_days * 86400),
        outbox=SqliteOutbox(db),
        bot_storage=SqliteBotStorage(db),
        prompts=SqlitePromptStore(db),
        subscriptions=SqliteSubscriptionStore(db),
        devices=SqliteDeviceStore(db),
        graph_subscriptions=SqliteGraphSubscriptionStore(db),
        graph_changes=SqliteGraphChangeInbox(db),
        graph_resources=SqliteGraphResourceStore(db),
        budgets=None,
        open=db.open,
        close=db.close,
        check=check,
        description=f"SQLite {settings.database_path}",
        shared=False,
        sqlite=db,
    )


def _cosmos_stores(settings: Settings) -> Stores:
    """Cosmos DB for every store and the delivery ledger, Azure Storage Queues for the queue
    (config.py refuses any other combination with cosmos). The SDKs are imported only here."""
    from delivery.budget_cosmos import CosmosBudgetStore
    from delivery.outbox_azure import AzureQueueOutbox
    from delivery.queue_azure import AzureDeliveryQueue
    from storage.cosmos import CosmosConfig, CosmosDatabase
    from storage.cosmos_bot_state import CosmosBotStorage
    from storage.cosmos_conversations import CosmosConversationStore
    from storage.cosmos_devices import CosmosDeviceStore
    from storage.cosmos_graph import (
        CosmosGraphChangeInbox,
        CosmosGraphResourceStore,
        CosmosGraphSubscriptionStore,
    )
    from storage.cosmos_notifications import CosmosInboxStore, CosmosNotificationStore
    from storage.cosmos_prompts import CosmosPromptStore
    from storage.cosmos_subscriptions import CosmosSubscriptionStore
    from storage.cosmos_users import CosmosUserStore

    db = CosmosDatabase(
        CosmosConfig(
            endpoint=settings.cosmos_endpoint,
            key=settings.cosmos_key.get_secret_value() or None,
            database=settings.cosmos_database,
            verify_tls=settings.cosmos_verify_tls,
        )
    )
    queue = AzureDeliveryQueue(
        settings.azure_storage_connection_string.get_secret_value(), settings.azure_storage_queue
    )
    history_seconds = settings.history_days * 86400
    notifications = CosmosNotificationStore(db)
    outbox = AzureQueueOutbox(
        db, queue, notifications,
        history_seconds=history_seconds, max_dequeues=settings.queue_max_dequeues,
    )

    async def open_() -> None:
        await db.open()
        await outbox.open()

    async def close() -> None:
        await outbox.close()
        await db.close()

    async def check() -> dict[str, bool]:
        store, queued = await asyncio.gather(db.check(), outbox.check())
        return {"store": store, "queue": queued}

    return Stores(
        users=CosmosUserStore(db),
        conversations=CosmosConversationStore(db),
        notifications=notifications,
        inbox=CosmosInboxStore(db, notifications, retention_seconds=history_seconds),
        outbox=outbox,
        bot_storage=CosmosBotStorage(db),
        prompts=CosmosPromptStore(db),
        subscriptions=CosmosSubscriptionStore(db),
        devices=CosmosDeviceStore(db),
        graph_subscriptions=CosmosGraphSubscriptionStore(db),
        graph_changes=CosmosGraphChangeInbox(db),
        graph_resources=CosmosGraphResourceStore(db),
        budgets=CosmosBudgetStore(db),
        open=open_,
        close=close,
        check=check,
        description=(
            f"Cosmos DB {settings.cosmos_endpoint} (database {settings.cosmos_database!r}) and "
            f"Azure Storage queue {settings.azure_storage_queue!r}"
        ),
        shared=True,
    )


# HERALD_STORE → how its stores are built (config.py pairs each with its HERALD_QUEUE).
_BACKENDS: dict[str, Callable[[Settings], Stores]] = {
    "sqlite": _sqlite_stores,
    "cosmos": _cosmos_stores,
}


@dataclass(slots=True)
class Herald:
    """The running parts, kept under one AppKey for handlers, tests and benchmarks."""

    settings: Settings
    stores: Stores
    db: SqliteDatabase | None
    users: UserStore
    conversations: ConversationStore
    notifications: NotificationStore
    inbox: InboxStore
    prompts: PromptStore
    preferences: PreferencesService
    outbox: Outbox
    transport: HttpConnectorTransport
    adapter: HeraldAdapter
    bot: HeraldBot
    channels: ChannelRegistry
    router: Router
    worker: DeliveryWorker
    links: LinkTokens
    subscriptions: SubscriptionStore
    devices: DeviceStore
    vapid: VapidKeys
    graph: GraphSource
    inbox_feed: InboxFeed
    entra: EntraTokens | None
    generated_api_key: str | None
    engagement: EngagementService | None = None
    tenants: TenantServiceUrls | None = None
    """Each Teams tenant's serviceUrl (learnt from its activities), for chats Herald opens."""
    directory_client: GraphClient | None = None
    """Microsoft Graph for audiences and app installation (None: Graph is not configured)."""


HERALD = web.AppKey("herald", Herald)


def _token_provider(settings: Settings) -> TokenProvider:
    if settings.emulator_mode:
        return NoTokens()
    import msal  # only needed with an app registration

    if settings.app_type == "UserAssignedMSI":

        def managed() -> object:
            import requests

            return msal.ManagedIdentityClient(
                msal.UserAssignedManagedIdentity(client_id=settings.app_id),
                http_client=requests.Session(),
            )

        return MsalTokenProvider(managed)

    tenant = settings.app_tenant_id if settings.app_type == "SingleTenant" else "botframework.com"

    def confidential() -> object:
        return msal.ConfidentialClientApplication(
            settings.app_id,
            client_credential=settings.app_password.get_secret_value(),
            authority=f"https://login.microsoftonline.com/{tenant}",
        )

    return MsalTokenProvider(confidential)


def _api_key_hashes(settings: Settings) -> tuple[list[str], str | None]:
    if settings.api_keys:
        return [hash_key(k.get_secret_value()) for k in settings.api_keys], None
    return ensure_generated_key(settings.data_dir)


def _burst(rate: float) -> float:
    """Burst size for a limit of `rate`/s: one second's worth minus 10% headroom (≥ 1)."""
    return max(1.0, rate - max(1.0, rate * 0.1))


def create_app(settings: Settings) -> web.Application:
    """Build Herald. Nothing touches the network or the database until the app starts."""
    if settings.app_type == "SingleTenant" and settings.app_id and not settings.app_tenant_id:
        raise SettingsError("MicrosoftAppTenantId is required when MicrosoftAppType=SingleTenant")

    stores = _BACKENDS[settings.store](settings)
    users = stores.users
    conversations = stores.conversations
    notifications = stores.notifications
    inbox = stores.inbox
    outbox = stores.outbox
    bot_storage = stores.bot_storage
    prompts = stores.prompts
    subscriptions = stores.subscriptions
    devices = stores.devices
    preferences = PreferencesService(users)
    # Microsoft Graph (off unless configured): one token cache for calendars and audiences.
    graph_config = GraphConfig.from_settings(settings)
    graph_tokens = MsalGraphTokens(graph_config) if graph_config is not None else None
    # Change notifications go the way of posted events: stored, then handed to the router.
    graph = GraphSource(
        tokens=graph_tokens,
        config=graph_config,
        subscriptions=stores.graph_subscriptions,
        inbox=stores.graph_changes,
        resources=stores.graph_resources,
        notifications=notifications,
        preferences=preferences,
        submit=lambda notification_id: router.submit(notification_id),
        public_url=settings.public_url,
        lifetime_minutes=settings.graph_subscription_minutes,
        renew_before_minutes=settings.graph_renew_before_minutes,
    )
    policy = DeliveryPolicy(
        opt_in_required=settings.opt_in_required,
        critical_types=frozenset(t.lower() for t in settings.critical_types),
    )

    # Emulator mode vouches for no serviceUrl: Herald sends only to the allowed (loopback)
    # hosts there; in Bot Framework mode the channel's signed token vouches for it.
    service_urls = ServiceUrlPolicy(
        settings.emulator_service_hosts if settings.emulator_mode else None
    )
    transport = HttpConnectorTransport(_token_provider(settings), service_urls=service_urls)
    auth = ConfigurationBotFrameworkAuthentication(_bot_config(settings))
    adapter = HeraldAdapter(auth, transport, app_id=settings.app_id)
    links = LinkTokens(
        load_or_create_secret(settings.link_secret.get_secret_value(), settings.data_dir),
        ttl_seconds=settings.link_minutes * 60,
        max_lifetime_seconds=settings.link_max_hours * 3600,
    )
    # Generated and kept under the data dir when not configured: Web Push is always on.
    vapid = VapidKeys.load(
        settings.vapid_private_key.get_secret_value(), settings.vapid_subject, settings.data_dir
    )
    # Where Web Push may post (hosts and ports): checked at registration and before each send.
    push_hosts = AllowedHosts(settings.webpush_allowed_hosts)
    # Filled below: the conversation channel needs the bot, and the bot's preferences card
    # needs to know which channels exist.
    channels = ChannelRegistry()
    # Wakes the live inbox pages open on this instance when the router writes to an inbox.
    inbox_feed = InboxFeed()
    # Read and acknowledged, from every surface; each change rings the person's live pages.
    engagement = EngagementService(
        inbox, notifications, outbox, on_changed=inbox_feed.publish
    )
    services = DialogServices(
        users=users,
        preferences=preferences,
        conversations=conversations,
        inbox=inbox,
        notifications=notifications,
        prompts=prompts,
        channels=channels,
        policy=policy,
        channel_links={
            "webpush": PushLinks(links, settings.public_url, settings.link_minutes).link,
        },
        calendar=graph,
        inbox_link=InboxLinks(links, settings.public_url, settings.link_minutes).link,
        engagement=engagement,
    )
    # Teams tenants' serviceUrls, learnt from their activities: where Herald opens chats with
    # people who never wrote (delivery/reach.py).
    tenants = TenantServiceUrls(bot_storage, default=settings.teams_service_url)
    connector_teams = ConnectorRosters(transport)
    consent = ConsentFlow(services)
    preferences_flow = PreferencesFlow(services)
    history = HistoryFlow(services)
    answers = PromptAnswers(services)
    calendar = CalendarFlow(services)
    engagement_flow = EngagementFlow(services, engagement)
    bot = HeraldBot(
        users=users,
        conversations=conversations,
        conversation_state=ConversationState(bot_storage),
        user_state=UserState(bot_storage),
        dialog=MainDialog(
            services,
            consent=consent,
            preferences=preferences_flow,
            history=history,
            answers=answers,
            calendar=calendar,
        ),
        card_actions=CardActions(
            consent, preferences_flow, answers, history, calendar=calendar,
            engagement=engagement_flow,
        ),
        services=services,
        engagement=engagement_flow,
        tenants=tenants,
        teams=TeamChannels(conversations, connector_teams),
        storage=bot_storage,
    )

    # Bursts a little below the published limits: the service's buckets start when our first
    # message arrives, not when we sent it, so a full-size burst followed by sends at exactly
    # the rate meets an empty bucket at the first bit of network jitter (measured: 3-7 429s).
    # The worker's scheduler keeps sends inside them: per tenant (a lane) and per conversation.
    # Several instances share each tenant's budget through the store (delivery/budget.py);
    # conversations stay per instance (one person rarely gets messages from two at once).
    budget: LaneBudget = (
        LocalBudget(settings.tenant_rate, _burst(settings.tenant_rate))
        if stores.budgets is None
        else SharedBudget(stores.budgets, settings.tenant_rate, _burst(settings.tenant_rate))
    )
    conversation_buckets = KeyedBuckets(
        settings.conversation_rate, _burst(settings.conversation_rate)
    )
    # Graph as a directory (groups, users) and app installer, for audiences and reach.
    directory_client = (
        GraphClient(graph_config, graph_tokens)
        if graph_config is not None and graph_tokens is not None
        else None
    )
    installer = (
        GraphAppInstaller(
            directory_client, settings.teams_catalog_app_id, graph_base_url=graph_config.base_url
        )
        if directory_client is not None and graph_config is not None
        and settings.teams_catalog_app_id
        else None
    )
    reach = TeamsReach(
        transport,
        conversations,
        users,
        tenants,
        bot_id=f"28:{settings.app_id or 'herald'}",
        installer=installer,
        budget=budget,  # the create call counts in the tenant's budget too
    )
    conversation_channel = ConversationChannel(
        conversations,
        adapter,
        bot.on_turn,
        throttled_channels=frozenset(settings.throttled_channels),
        reach=reach,
    )
    channels.register(conversation_channel)
    channels.register_creator(conversation_channel)
    # Pushes carry the person's unread count as their badge (read anywhere, counted once).
    channels.register(
        WebPushChannel(
            subscriptions, vapid, allowed_hosts=push_hosts, unread_counts=inbox.unread_counts
        )
    )
    # Mobile push: FCM with a Firebase service account, APNs with a .p8 key (a bad file stops
    # start-up here); one channel `mobile` either way, each device sent by one of them
    # (delivery/mobile.py). Devices nothing here can reach (all of them while both are off)
    # are counted as skipped with the reason, never dropped.
    apns_config = ApnsConfig.from_settings(settings)
    apns = ApnsChannel(devices, inbox, apns_config) if apns_config is not None else None
    fcm = None
    if settings.firebase_credentials is not None:
        from delivery.fcm import FcmChannel  # firebase-admin is imported only when configured

        fcm = FcmChannel(
            devices, settings.firebase_credentials, settings.fcm_endpoint,
            unread_counts=inbox.unread_counts,
        )
    mobile: Channel | None = (
        MobilePush(devices, fcm, apns, prefer=settings.mobile_prefer)
        if fcm is not None and apns is not None
        else fcm or apns
    )
    if mobile is not None:
        channels.register(mobile)
    channels.register_unreachable(
        UnreachableDevices(
            devices, fcm_configured=fcm is not None, apns_configured=apns is not None
        )
    )
    # The router wakes the worker when it queues work; the worker asks the router's rules
    # again at send time (preferences may change while a delivery waits out quiet hours).
    # Fair tags: the router tags new deliveries with each lane's virtual time, which the worker
    # advances as it leases (delivery/fairness.py).
    fair_clock = FairClock()
    router = Router(
        users,
        notifications,
        outbox,
        channels,
        policy,
        on_enqueued=lambda: worker.wake(),
        on_inbox_written=inbox_feed.publish,
        fair_clock=fair_clock,
        audiences=Audiences(
            users,
            conversations,
            directory=(
                GraphDirectory(directory_client, graph_config.tenant_id)
                if directory_client is not None and graph_config is not None
                else None
            ),
            rosters=connector_teams,
        ),
    )
    worker = DeliveryWorker(
        outbox,
        notifications,
        channels,
        concurrency=settings.workers,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        backoff=Backoff(settings.retry_base_seconds, settings.retry_max_seconds),
        gate=router,
        # A shared queue gets work from other instances too, which no wake() announces: poll.
        idle_poll_seconds=1.0 if stores.shared else 5.0,
        budget=budget,
        conversation_buckets=conversation_buckets,
        fair_clock=fair_clock,
    )

    key_hashes, generated = _api_key_hashes(settings)
    # Entra ID access tokens as the alternative to API keys (off unless configured).
    entra_config = EntraConfig.from_settings(settings)
    entra = EntraTokens(entra_config) if entra_config is not None else None
    # Every route declares who may call it (api/routing.py); the middleware reads that.
    route_table = RouteTable()
    api_auth = ApiKeyAuth(key_hashes, routes=route_table, entra=entra, links=links)
    herald = Herald(
        settings=settings,
        stores=stores,
        db=stores.sqlite,
        users=users,
        conversations=conversations,
        notifications=notifications,
        inbox=inbox,
        prompts=prompts,
        preferences=preferences,
        outbox=outbox,
        transport=transport,
        adapter=adapter,
        bot=bot,
        channels=channels,
        router=router,
        worker=worker,
        links=links,
        subscriptions=subscriptions,
        devices=devices,
        vapid=vapid,
        graph=graph,
        inbox_feed=inbox_feed,
        entra=entra,
        generated_api_key=generated,
        engagement=engagement,
        tenants=tenants,
        directory_client=directory_client,
    )

    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_id_middleware, errors_middleware, api_auth.middleware],
    )
    app.on_response_prepare.append(echo_request_id)
    app[HERALD] = herald
    app.cleanup_ctx.append(_lifecycle)
    # Open inbox streams end before the server waits for its handlers to finish.
    app.on_shutdown.append(_close_streams)

    async def ready() -> dict[str, bool]:
        checks = {**await stores.check(), "worker": worker.running, "router": router.running}
        if graph.enabled:
            checks["graph"] = graph.running
        return checks

    def about() -> dict[str, object]:
        """What /readyz says besides its checks: which mobile push services are on."""
        return {
            "mobile": {
                "fcm": fcm is not None,
                "apns": apns is not None,
                "prefer": settings.mobile_prefer,
            }
        }

    async def metrics() -> str:
        return worker.metrics.render(
            in_flight=worker.in_flight,
            depth=await outbox.depth(),
            lanes=worker.scheduler.lane_states(),
        )

    for routes in (
        MessagesEndpoint(
            adapter, bot,
            auth=None if settings.emulator_mode else auth,
            service_urls=service_urls,
        ).routes(),
        NotificationsApi(
            notifications, users, outbox, router, prompts, worker, inbox,
            recalls=worker, on_withdrawn=inbox_feed.publish_all,
        ).routes(),
        UsersApi(users, inbox, engagement).routes(),
        ResendApi(notifications, outbox, inbox, channels, router).routes(),
        PreferencesApi(users, preferences).routes(),
        HealthApi(ready, metrics, about).routes(),
        OpenApi(route_table).routes(),
        GraphApi(graph, users).routes(),
        PushApi(
            subscriptions, users, links, vapid.public_key, api_auth.is_backend,
            allowed_hosts=push_hosts,
        ).routes(),
        PushPage().routes(),
        DevicesApi(devices, users, preferences, links, api_auth.is_backend).routes(),
        OperatorApi(notifications, outbox, links, settings.public_url, inbox=inbox).routes(),
        InboxApi(inbox, links, inbox_feed, engagement=engagement).routes(),
        EngagementApi(engagement, users, subscriptions, links, api_auth.is_backend).routes(),
        LivePages().routes(),
        LandingPages().routes(),
    ):
        route_table.add(app, routes)
    app[ROUTES] = route_table
    return app


async def _close_streams(app: web.Application) -> None:
    app[HERALD].inbox_feed.close()


async def _housekeeping(
    herald: Herald, started: asyncio.Event, every_seconds: float = 3600.0
) -> None:
    """Hourly, once the store is open: drop history entries past HERALD_HISTORY_DAYS."""
    await started.wait()
    while True:
        try:
            purged = await herald.inbox.purge_expired()
            if purged:
                log.info("purged %d history entries older than %d days", purged,
                         herald.settings.history_days)
        except Exception:
            log.exception("housekeeping failed; trying again later")
        await asyncio.sleep(every_seconds)


def _short(exc: BaseException) -> str:
    """An exception as one short log line (SDK errors carry whole HTTP responses)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


async def _start_workers(herald: Herald) -> None:
    await herald.worker.start()
    await herald.router.start()
    await herald.graph.start()


async def _connect(herald: Herald, started: asyncio.Event) -> None:
    """Open a shared backend and start the workers, retrying until it answers: an instance
    whose Cosmos DB or queue is unreachable stays up (not ready) instead of crash-looping."""
    stores = herald.stores
    delay = 1.0
    while True:
        try:
            await stores.open()
            await _start_workers(herald)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "cannot reach %s (%s); /readyz answers 503 until it can, next try in %.0f s",
                stores.description, _short(exc), delay,
            )
            with contextlib.suppress(Exception):
                await stores.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        log.info("connected to %s", stores.description)
        started.set()
        return


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Open stores and clients, start the workers; on shutdown, stop and close in reverse."""
    herald = app[HERALD]
    stores = herald.stores
    settings = herald.settings
    if settings.emulator_mode and not settings.listens_on_loopback:
        log.warning(
            "HERALD_EMULATOR_ALLOW_REMOTE is set: Emulator mode on HOST=%s authenticates "
            "nobody - whoever reaches this address can act as any user of the bot. Replies go "
            "only to serviceUrls on %s. Set MicrosoftAppId for Bot Framework authentication.",
            settings.host, ", ".join(settings.emulator_service_hosts),
        )
    # aiohttp logs a request it cannot parse (a NUL in a header...) as an ERROR with a
    # traceback; it is the client's mistake, answered with 400: one warning line instead.
    malformed = MalformedRequests()
    server_log = logging.getLogger("aiohttp.server")
    server_log.addFilter(malformed)
    started = asyncio.Event()
    connecting: asyncio.Task[None] | None = None
    if stores.shared:
        await herald.transport.open()
        if herald.directory_client is not None:
            await herald.directory_client.open()
        connecting = asyncio.create_task(_connect(herald, started), name="herald-connect")
        # Reachable: ready from the first request. Not: serve anyway, keep trying.
        await asyncio.wait({connecting}, timeout=15.0)
    else:
        await stores.open()
        await herald.transport.open()
        if herald.directory_client is not None:
            await herald.directory_client.open()
        await _start_workers(herald)
        started.set()
    channel_names = ", ".join(herald.channels.names)
    log.info("channels on: %s", channel_names)
    if herald.settings.firebase_credentials is None:
        log.info("mobile push (FCM) is off: FIREBASE_CREDENTIALS is not set")
    if herald.settings.apns_configured:
        log.info(
            "APNs is on for %s (production %s, sandbox %s)", settings.apns_bundle_id,
            settings.apns_endpoint, settings.apns_sandbox_endpoint,
        )
    else:
        log.info("APNs is off: APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_BUNDLE_ID not set")
    housekeeping = asyncio.create_task(
        _housekeeping(herald, started), name="herald-housekeeping"
    )
    try:
        yield
    finally:
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
        if started.is_set():
            await herald.graph.stop()
            await herald.router.stop()
            await herald.worker.stop()
        await herald.bot.aclose()
        await herald.channels.aclose()
        await herald.transport.aclose()
        if herald.directory_client is not None:
            await herald.directory_client.aclose()
        if herald.entra is not None:
            await herald.entra.aclose()
        await stores.close()
        server_log.removeFilter(malformed)


def main(environ: dict[str, str] | None = None, out: Callable[[str], None] | None = None) -> int:
    """CLI entry point: read settings, say how to connect, serve until interrupted."""
    write = out or (lambda line: sys.stdout.write(line + "\n"))
    try:
        settings = Settings.from_env(os.environ if environ is None else environ)
    except SettingsError as exc:
        sys.stderr.write(f"herald: {exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        listener = _listen(settings.host, settings.port)
    except OSError as exc:
        sys.stderr.write(f"herald: {_listen_problem(settings, exc)}\n")
        return 3
    try:
        app = create_app(settings)
    except SettingsError as exc:
        listener.close()
        sys.stderr.write(f"herald: {exc}\n")
        return 2
    herald = app[HERALD]
    mode = "Emulator mode (no MicrosoftAppId)" if settings.emulator_mode else "Azure Bot mode"
    write(f"Herald on http://{settings.host}:{settings.port}/api/messages — {mode}")
    write(f"Start page: {settings.public_url.rstrip('/')}/")
    if herald.generated_api_key:
        write("A backend API key was generated (stored hashed; shown only this once).")
        write("Paste this line into the shell you send notifications from:")
        write(f"    export HERALD_API_KEY={herald.generated_api_key}")
        write("(the key goes in 'Authorization: Bearer <key>'; set HERALD_API_KEYS to choose keys)")
    # Everything built so far (the SDK, pydantic models, the app) lives as long as the process:
    # moving it out of the collector's view keeps full collections short during a broadcast.
    gc.collect()
    gc.freeze()
    web.run_app(app, sock=listener, print=None, access_log_class=AccessLog)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed or opened: a second Herald on
    a busy port says so in one line and exits, instead of a banner and then a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def _listen_problem(settings: Settings, exc: OSError) -> str:
    where = f"{settings.host}:{settings.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {settings.port} is in use ({where}): is Herald already running? "
            "Stop it, or start this one with another PORT (e.g. PORT=3979 make run)."
        )
    return f"cannot listen on {where}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
