"""The bot object: carries the shared services to every cog and owns the `/sora` root.

The rest of the Discord layer sits beside it in `bot/discord/`: the command tree (the
one error surface), rendering (what tasks look like), components (the buttons), the
submission flow and the notifier. The commands themselves are the extensions in `cogs/`.

Built by `main` (or a test) with its settings, store and HTTP client already made
(constructor injection), so nothing here reads the environment.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import discord
import httpx
import yarl
from discord import app_commands
from discord.ext import commands

from bot.approvals import Approvals
from bot.discord.aftermath import Aftermath
from bot.discord.command_tree import SoraCommandTree
from bot.discord.modlog import ModLogPoster
from bot.discord.notifier import Notifier
from bot.fetch import Fetcher
from bot.media import MediaHost
from bot.metrics import Metrics
from bot.moderation import ModerationService
from bot.modlog import ModLog
from bot.polling import PollPlanner, PollPlanners
from bot.providers.base import VideoProvider
from bot.providers.limits import TaskCap
from bot.providers.pool import ProviderPool
from bot.service import SoraService
from bot.settings import Settings
from bot.store import Store
from bot.tracker import Tracker
from bot.url_policy import MediaPolicy
from bot.webhooks import WebhookServer

log = logging.getLogger(__name__)

# Extensions are loaded by name so an installed bot finds them as packages.
EXTENSIONS: tuple[str, ...] = (
    "cogs.quota",
    "cogs.video",
    "cogs.admin",
    "cogs.governance",
    "cogs.providers",
)


def point_discord_at(settings: Settings) -> None:
    """Send every REST call and the gateway connection where the settings say.

    discord.py hard-codes both endpoints as class attributes, and never asks
    `/gateway/bot` for a plain (non-sharded) bot, so both are overridden here. It is
    called again right before login because `discord.http._set_api_version` resets
    `Route.BASE`.
    """
    discord.http.Route.BASE = settings.discord_api_base
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def reports_arrive(settings: Settings, provider: VideoProvider) -> bool:
    """Whether `provider`'s reports can reach this bot, so polling is only the safety
    net: a per-task callback needs the public address; signed webhooks also need their
    secret."""
    reports = provider.capabilities.reports
    return bool(settings.webhook_public_url and settings.listen_address) and (
        reports == "callback" or (reports == "webhook" and provider.accepts_signed_webhooks)
    )


def media_folder(settings: Settings) -> Path:
    """Self-hosted videos live beside the database."""
    path = settings.sqlite_path
    return (path.parent if path is not None else Path("data")) / "media"


class SoraBot(commands.AutoShardedBot):
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        http_client: httpx.AsyncClient,
        provider: VideoProvider | Sequence[VideoProvider],
        **client_options: Any,
    ) -> None:
        """`provider`: the providers in `SORA_PROVIDER`'s order (or just one).
        `client_options` go to discord.py as they are (tests shorten `guild_ready_timeout`)."""
        # The bot never joins voice: no warning at every start about missing voice libraries.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=discord.Intents(guilds=True),
            tree_cls=SoraCommandTree,
            # Nobody is pinged unless a message names them explicitly.
            allowed_mentions=discord.AllowedMentions.none(),
            # The shards this process runs (SHARD_COUNT/SHARD_IDS; by default as many as
            # Discord recommends). Any process may post for any task: posting is REST.
            shard_count=settings.shard_count,
            # None (all shards) is what discord.py's own default is; its stub says list.
            shard_ids=settings.shards,  # type: ignore[arg-type]
            **client_options,
        )
        self.settings = settings
        self.store = store
        self.http_client = http_client
        self.metrics = Metrics()
        # The providers in order; each new job goes to the first healthy one.
        self.providers = ProviderPool(
            [provider] if not isinstance(provider, Sequence) else provider,
            store=store,
            cooldown=settings.provider_cooldown_seconds,
            metrics=self.metrics,
        )
        self.provider = self.providers.primary
        # When to check each task: learned per provider and kind of video from the
        # store's history of generation times, the documented guidance until there is
        # enough.
        self.polling = PollPlanners(
            {
                p.name: PollPlanner(
                    provider=p.name,
                    capabilities=p.capabilities,
                    lag=settings.poll_lag_target_seconds,
                    callbacks=reports_arrive(settings, p),
                    first_delay=settings.poll_first_delay_seconds,
                    interval=settings.poll_interval_seconds,
                    store=store,
                    max_lease=settings.task_lease_seconds,
                )
                for p in self.providers
            }
        )
        # The moderation log: written by the service, the moderators' commands and the
        # aftermath of each delivery; posted by its own poster, woken on each entry.
        self.modlog = ModLog(store)
        self.service = SoraService(
            settings, store, self.providers, http_client, self.polling, modlog=self.modlog
        )
        self.moderation = ModerationService(settings, store, self.provider, self.modlog)
        self.approvals = Approvals(self.service, store, settings.default_limits)
        self.modlog_poster = ModLogPoster(self, store, self.moderation)
        self.modlog.wake = self.modlog_poster.wake
        self.media_host = (
            MediaHost(media_folder(settings), settings.webhook_public_url)
            if settings.webhook_public_url and settings.listen_address
            else None
        )
        # One policy for every provider-named URL: the active provider's own address is
        # trusted as configured; anything else must be https to a public address.
        self.media_policy = MediaPolicy(
            [settings.provider_settings(p.name).address for p in self.providers]
        )
        self.fetcher = Fetcher(http_client, self.media_policy)
        self.aftermath = Aftermath(self, store, self.modlog, self.media_host)
        self.notifier = Notifier(
            client=self,
            store=store,
            provider=self.providers,
            metrics=self.metrics,
            media_host=self.media_host,
            fetcher=self.fetcher,
            after_delivery=self.aftermath.delivered,
        )
        self.tracker = Tracker(
            store=store,
            provider=self.providers,
            deliverer=self.notifier,
            polling=self.polling,
            resubmit=self.service.resubmit,
            max_age=timedelta(minutes=settings.task_max_age_minutes),
            concurrency=settings.tracker_concurrency,
            metrics=self.metrics,
            media_policy=self.media_policy,
        )
        for each in self.providers:
            if isinstance(each, TaskCap):
                # The provider's task cap counts its unfinished tasks in this store.
                each.count_active_with(
                    functools.partial(store.count_active_provider_tasks, each.name)
                )
        address = settings.listen_address
        self.webhooks = (
            None
            if address is None
            else WebhookServer(
                host=address[0],
                port=address[1],
                store=store,
                provider=self.providers,
                tracker=self.tracker,
                metrics=self.metrics,
                is_ready=self.is_ready,
                media=self.media_host,
                metrics_token=(
                    None
                    if settings.metrics_token is None
                    else settings.metrics_token.get_secret_value()
                ),
            )
        )
        self.sora = app_commands.Group(
            name="sora",
            description="Make Sora 2 videos from chat",
            guild_only=True,
        )
        self.tree.add_command(self.sora)
        self._announced_ready = False

    async def login(self, token: str) -> None:
        point_discord_at(self.settings)
        await super().login(token)

    async def setup_hook(self) -> None:
        point_discord_at(self.settings)
        await self.store.open()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()
        if self.webhooks is not None:
            await self.webhooks.start()
        await self.tracker.start()
        await self.modlog_poster.start()

    async def sync_commands(self) -> None:
        if not self.settings.syncs_commands:
            log.info("not syncing commands: the process running shard 0 does")
            return
        guild_ids = self.settings.discord_guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d global commands (may take up to an hour to appear)", len(synced))
            return
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        if self._announced_ready or self.user is None:
            return
        self._announced_ready = True
        log.info(
            "ready as %s (id %s) in %d guild(s); providers %s; database %s",
            self.user,
            self.user.id,
            len(self.guilds),
            ",".join(self.providers.names),
            self.store.description,
        )

    async def close(self) -> None:
        try:
            await self.modlog_poster.stop()
            await self.tracker.stop()
            await self.notifier.close()
            if self.webhooks is not None:
                await self.webhooks.stop()
            await super().close()
        finally:
            await self.store.close()
            await self.http_client.aclose()
