"""Herald's composition root: settings → stores → adapter → bot → channels → workers → routes.

`python app.py` starts the bot on http://localhost:3978/api/messages with embedded defaults.
Everything is built here and passed down; nothing below reads the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from botbuilder.core import ConversationState, UserState

from api.auth import ApiKeyAuth, api_key_hashes
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
from bots.authentication import bot_authentication
from bots.endpoint import MessagesEndpoint
from bots.herald_bot import HeraldBot
from bots.teams import TeamChannels
from config import Settings
from delivery.allowed_hosts import AllowedHosts
from delivery.audience import Audiences
from delivery.budget import LaneBudget, LocalBudget, SharedBudget
from delivery.channel import ChannelRegistry
from delivery.conversation import ConversationChannel
from delivery.fairness import FairClock
from delivery.mobile_channels import mobile_channels
from delivery.ratelimit import KeyedBuckets, burst_below
from delivery.reach import TeamsReach
from delivery.router import Router
from delivery.vapid import VapidKeys
from delivery.wakeup import WakeUp
from delivery.webpush import WebPushChannel
from delivery.worker import Backoff, DeliveryWorker
from dialogs.assembly import build_dialogs
from dialogs.services import DialogServices
from engagement import EngagementService
from errors import SettingsError
from lifecycle import Lifecycle
from logs import configure_logging
from preferences.rules import DeliveryPolicy
from preferences.service import PreferencesService
from proactive.adapter import HeraldAdapter
from proactive.connector import HttpConnectorTransport
from proactive.credentials import connector_tokens
from proactive.rosters import ConnectorRosters
from proactive.service_url import ServiceUrlPolicy
from proactive.tenants import TenantServiceUrls
from server import announce, listen, listen_problem, serve
from sources.graph_access import graph_access
from sources.graph_source import GraphSource
from storage.backends import stores_for
from storage.devices import DeviceStore
from storage.protocols import (
    ConversationStore,
    NotificationStore,
    PromptStore,
    UserStore,
)
from storage.sqlite import SqliteDatabase

__all__ = ["HERALD", "Herald", "create_app", "main"]


@dataclass(frozen=True, slots=True)
class Herald:
    """The running parts tests and benchmarks reach for, kept under one AppKey."""

    db: SqliteDatabase | None
    """The embedded database, when that is the backend."""
    users: UserStore
    conversations: ConversationStore
    notifications: NotificationStore
    prompts: PromptStore
    devices: DeviceStore
    adapter: HeraldAdapter
    bot: HeraldBot
    channels: ChannelRegistry
    router: Router
    worker: DeliveryWorker
    links: LinkTokens
    vapid: VapidKeys
    graph: GraphSource
    inbox_feed: InboxFeed
    generated_api_key: str | None
    """The backend API key generated on this start, to show once (None: none generated)."""


HERALD = web.AppKey("herald", Herald)


def create_app(settings: Settings) -> web.Application:
    """Build Herald. Nothing touches the network or the database until the app starts."""
    if settings.app_type == "SingleTenant" and settings.app_id and not settings.app_tenant_id:
        raise SettingsError("MicrosoftAppTenantId is required when MicrosoftAppType=SingleTenant")

    stores = stores_for(settings)
    users = stores.users
    conversations = stores.conversations
    notifications = stores.notifications
    inbox = stores.inbox
    # The queue goes to the router, the worker and recalls (stores.queue); everything else only
    # reads the ledger.
    outbox = stores.ledger
    bot_storage = stores.bot_storage
    prompts = stores.prompts
    subscriptions = stores.subscriptions
    devices = stores.devices
    preferences = PreferencesService(users)
    policy = DeliveryPolicy(
        opt_in_required=settings.opt_in_required,
        critical_types=frozenset(t.lower() for t in settings.critical_types),
    )
    # Microsoft Graph (off unless configured): calendars, audiences, app installation.
    graph_parts = graph_access(settings)

    # Emulator mode vouches for no serviceUrl: Herald sends only to the allowed (loopback)
    # hosts there; in Bot Framework mode the channel's signed token vouches for it.
    service_urls = ServiceUrlPolicy(
        settings.emulator_service_hosts if settings.emulator_mode else None
    )
    transport = HttpConnectorTransport(connector_tokens(settings), service_urls=service_urls)
    auth = bot_authentication(settings)
    adapter = HeraldAdapter(auth, transport, app_id=settings.app_id)
    connector_teams = ConnectorRosters(transport)
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

    # The router wakes the worker when it queues work (connected below, once the worker
    # exists); the worker asks the router's rules again at send time (preferences may change
    # while a delivery waits out quiet hours). Fair tags: the router tags new deliveries with
    # each lane's virtual time, which the worker advances as it leases (delivery/fairness.py).
    fair_clock = FairClock()
    wake_worker = WakeUp()
    router = Router(
        users,
        notifications,
        stores.queue,
        channels,
        policy,
        on_enqueued=wake_worker,
        on_inbox_written=inbox_feed.publish,
        fair_clock=fair_clock,
        audiences=Audiences(
            users,
            conversations,
            directory=graph_parts.directory,
            rosters=connector_teams,
        ),
    )
    # Change notifications go the way of posted events: stored, then handed to the router.
    graph = GraphSource(
        tokens=graph_parts.tokens,
        config=graph_parts.config,
        subscriptions=stores.graph_subscriptions,
        inbox=stores.graph_changes,
        resources=stores.graph_resources,
        notifications=notifications,
        preferences=preferences,
        submit=router.submit,
        public_url=settings.public_url,
        lifetime_minutes=settings.graph_subscription_minutes,
        renew_before_minutes=settings.graph_renew_before_minutes,
    )
    # Read and acknowledged, from every surface; each change rings the person's live pages.
    engagement = EngagementService(
        inbox, notifications, stores.ledger, on_changed=inbox_feed.publish
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
    dialogs = build_dialogs(services, engagement)
    bot = HeraldBot(
        users=users,
        conversations=conversations,
        conversation_state=ConversationState(bot_storage),
        user_state=UserState(bot_storage),
        dialog=dialogs.main,
        card_actions=dialogs.card_actions,
        services=services,
        engagement=dialogs.engagement,
        tenants=tenants,
        teams=TeamChannels(conversations, connector_teams),
        storage=bot_storage,
    )

    # Bursts a little below the published limits (delivery/ratelimit.py). The worker's
    # scheduler keeps sends inside them: per tenant (a lane) and per conversation.
    # Several instances share each tenant's budget through the store (delivery/budget.py);
    # conversations stay per instance (one person rarely gets messages from two at once).
    budget: LaneBudget = (
        LocalBudget(settings.tenant_rate, burst_below(settings.tenant_rate))
        if stores.budgets is None
        else SharedBudget(stores.budgets, settings.tenant_rate, burst_below(settings.tenant_rate))
    )
    conversation_buckets = KeyedBuckets(
        settings.conversation_rate, burst_below(settings.conversation_rate)
    )
    reach = TeamsReach(
        transport,
        conversations,
        users,
        tenants,
        bot_id=f"28:{settings.app_id or 'herald'}",
        installer=graph_parts.installer,
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
    # Mobile push: FCM and/or APNs as one channel `mobile` (delivery/mobile_channels.py).
    mobile = mobile_channels(settings, devices, inbox)
    mobile.register(channels)
    worker = DeliveryWorker(
        stores.queue,
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
    wake_worker.connect(worker.wake)

    key_hashes, generated = api_key_hashes(
        (key.get_secret_value() for key in settings.api_keys), settings.data_dir
    )
    # Entra ID access tokens as the alternative to API keys (off unless configured).
    entra_config = EntraConfig.from_settings(settings)
    entra = EntraTokens(entra_config) if entra_config is not None else None
    # Every route declares who may call it (api/routing.py); the middleware reads that.
    route_table = RouteTable()
    api_auth = ApiKeyAuth(key_hashes, routes=route_table, entra=entra, links=links)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_id_middleware, errors_middleware, api_auth.middleware],
    )
    app.on_response_prepare.append(echo_request_id)
    app[HERALD] = Herald(
        db=stores.sqlite,
        users=users,
        conversations=conversations,
        notifications=notifications,
        prompts=prompts,
        devices=devices,
        adapter=adapter,
        bot=bot,
        channels=channels,
        router=router,
        worker=worker,
        links=links,
        vapid=vapid,
        graph=graph,
        inbox_feed=inbox_feed,
        generated_api_key=generated,
    )
    graph_clients = [graph_parts.client] if graph_parts.client is not None else []
    app.cleanup_ctx.append(
        Lifecycle(
            settings,
            stores,
            clients=[transport, *graph_clients],
            services=[worker, router, graph],
            closing=[bot, channels, transport, *graph_clients, *([entra] if entra else [])],
            channel_names=channels.names,
        ).run
    )
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
                "fcm": mobile.fcm,
                "apns": mobile.apns,
                "prefer": settings.mobile_prefer,
            }
        }

    async def metrics() -> str:
        return worker.metrics.render(
            in_flight=worker.in_flight,
            depth=await stores.ledger.depth(),
            lanes=worker.scheduler.lane_states(),
        )

    for routes in (
        MessagesEndpoint(
            adapter, bot,
            auth=None if settings.emulator_mode else auth,
            service_urls=service_urls,
        ).routes(),
        NotificationsApi(
            notifications, users, outbox, stores.queue, router, prompts, worker, inbox,
            recalls=worker, on_withdrawn=inbox_feed.publish_all,
        ).routes(),
        UsersApi(users, inbox, engagement).routes(),
        ResendApi(notifications, outbox, inbox, channels, router).routes(),
        PreferencesApi(users, preferences).routes(),
        HealthApi(ready, metrics, about).routes(),
        OpenApi(route_table).routes(),
        GraphApi(graph, users).routes(),
        PushApi(
            subscriptions, users, links, vapid.public_key,
            allowed_hosts=push_hosts,
        ).routes(),
        PushPage().routes(),
        DevicesApi(devices, users, preferences, links).routes(),
        OperatorApi(notifications, outbox, links, settings.public_url, inbox=inbox).routes(),
        InboxApi(inbox, links, inbox_feed, engagement=engagement).routes(),
        EngagementApi(engagement, users, subscriptions, links).routes(),
        LivePages().routes(),
        LandingPages().routes(),
    ):
        route_table.add(app, routes)
    app[ROUTES] = route_table
    return app


async def _close_streams(app: web.Application) -> None:
    app[HERALD].inbox_feed.close()


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
        listener = listen(settings.host, settings.port)
    except OSError as exc:
        sys.stderr.write(f"herald: {listen_problem(settings, exc)}\n")
        return 3
    try:
        app = create_app(settings)
    except SettingsError as exc:
        listener.close()
        sys.stderr.write(f"herald: {exc}\n")
        return 2
    announce(settings, app[HERALD].generated_api_key, write)
    serve(app, listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
