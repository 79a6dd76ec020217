"""The fake itself: :class:`FakeDiscord` composes the concerns, routes, and runs a bot on it.

:class:`FakeDiscord` is the state (state.py) plus one mixin per concern; this module adds the
server's lifecycle (an aiohttp app on 127.0.0.1 with the gateway, the API and the CDN), the
route table that says which module answers which REST route, :meth:`FakeDiscord.patch_client`
(discord.py has two hard-coded endpoints, ``Route.BASE`` and ``DEFAULT_GATEWAY``, and a plain
client needs both, FACTS.md §1), and :func:`run_bot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from .commands import CommandsMixin
from .faults import FaultsMixin
from .gateway import GatewayMixin
from .interactions import InteractionsMixin
from .messages import MessagesMixin
from .models import WorldMixin
from .responses import ResponsesMixin
from .rest import RestMixin
from .wire import Handler, RouteDef

T = TypeVar("T")


class FakeDiscord(
    RestMixin,
    ResponsesMixin,
    InteractionsMixin,
    CommandsMixin,
    MessagesMixin,
    WorldMixin,
    GatewayMixin,
    FaultsMixin,
):
    """Fake Discord REST API + gateway on 127.0.0.1 for the real discord.py client."""

    def __init__(
        self, *, token: str = "fake-token", app_id: int | None = None, bot_name: str = "SoraBot"
    ) -> None:
        super().__init__(token=token, app_id=app_id, bot_name=bot_name)
        self._routes = self._build_routes()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Binds 127.0.0.1 on a free port."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/gateway/{tail:.*}", self._handle_gateway)
        app.router.add_get("/attachments/{channel}/{attachment}/{filename}", self._handle_cdn)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._handle_api)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._stopping = False

    async def stop(self) -> None:
        """Closes websockets (code 1000) and the server; idempotent."""
        if self._runner is None:
            return
        self._stopping = True
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1000, message=b"fake discord shutting down")
        for conn in list(self._conns):
            if conn.writer is not None:
                conn.queue.put_nowait(None)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.writer, 2)
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def patch_client(self) -> Iterator[None]:
        """Points discord.py's ``Route.BASE`` and ``DEFAULT_GATEWAY`` here; restores on exit."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # -- the REST route table ---------------------------------------------------------

    def _build_routes(self) -> list[RouteDef]:
        """Which handler answers which route, relative to the API base (see FACTS.md §3).

        Handlers live with their concern: ``_r_put/get_commands`` in commands.py, the
        callback, followup and ``/webhooks/.../messages`` routes in responses.py, the rest
        in rest.py. The last column says whether the route needs ``Authorization: Bot``.
        """
        sf = r"(?P<{}>\d+)"
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/users/@me", self._r_me, True),
            ("GET", f"/users/{sf.format('user')}", self._r_get_user, True),
            ("POST", "/users/@me/channels", self._r_create_dm, True),
            ("GET", "/oauth2/applications/@me", self._r_app_info, True),
            ("GET", "/applications/@me", self._r_app_info, True),
            ("GET", "/gateway", self._r_gateway, False),
            ("GET", "/gateway/bot", self._r_gateway_bot, True),
            ("PUT", f"/applications/{sf.format('app')}/commands", self._r_put_commands, True),
            ("GET", f"/applications/{sf.format('app')}/commands", self._r_get_commands, True),
            (
                "PUT",
                f"/applications/{sf.format('app')}/guilds/{sf.format('guild')}/commands",
                self._r_put_commands,
                True,
            ),
            (
                "GET",
                f"/applications/{sf.format('app')}/guilds/{sf.format('guild')}/commands",
                self._r_get_commands,
                True,
            ),
            (
                "POST",
                f"/interactions/{sf.format('iid')}/(?P<token>[^/]+)/callback",
                self._r_callback,
                False,
            ),
            ("POST", f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)", self._r_followup, False),
            (
                "GET",
                f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._r_webhook_get,
                False,
            ),
            (
                "PATCH",
                f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._r_webhook_edit,
                False,
            ),
            (
                "DELETE",
                f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._r_webhook_delete,
                False,
            ),
            ("GET", f"/channels/{sf.format('channel')}", self._r_get_channel, True),
            ("POST", f"/channels/{sf.format('channel')}/messages", self._r_create_message, True),
            ("GET", f"/channels/{sf.format('channel')}/messages", self._r_channel_history, True),
            (
                "GET",
                f"/channels/{sf.format('channel')}/messages/{sf.format('mid')}",
                self._r_get_message,
                True,
            ),
            (
                "PATCH",
                f"/channels/{sf.format('channel')}/messages/{sf.format('mid')}",
                self._r_edit_message,
                True,
            ),
            (
                "DELETE",
                f"/channels/{sf.format('channel')}/messages/{sf.format('mid')}",
                self._r_delete_message,
                True,
            ),
            ("POST", f"/channels/{sf.format('channel')}/typing", self._r_typing, True),
            ("GET", f"/guilds/{sf.format('guild')}", self._r_get_guild, True),
            ("GET", f"/guilds/{sf.format('guild')}/channels", self._r_guild_channels, True),
            (
                "GET",
                f"/guilds/{sf.format('guild')}/members/{sf.format('user')}",
                self._r_get_member,
                True,
            ),
        ]
        return [RouteDef(m, re.compile(p), h, a) for m, p, h, a in table]


# --------------------------------------------------------------------------------------
# running a bot against the fake
# --------------------------------------------------------------------------------------


async def _race(awaitable: Awaitable[T], task: asyncio.Task[Any], timeout: float, what: str) -> T:
    """Awaits ``awaitable`` unless the bot task dies first (its exception is re-raised)."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait(
            {waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return waiter.result()
        if task in done:
            task.result()  # raises the bot's exception, if any
            raise RuntimeError(f"the bot stopped before {what}")
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter


async def _shutdown_bot(
    bot: discord.Client, task: asyncio.Task[None], timeout: float
) -> BaseException | None:
    await bot.close()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return TimeoutError(f"bot.start() did not return within {timeout}s of bot.close()")
    if task.cancelled():
        return None
    return task.exception()


@contextlib.asynccontextmanager
async def run_bot(
    bot: discord.Client, fake: FakeDiscord, *, ready_timeout: float = 10, close_timeout: float = 10
) -> AsyncIterator[discord.Client]:
    """Points discord.py at ``fake``, starts ``bot`` and waits for ``on_ready``; on exit closes
    the bot, awaits ``bot.start()`` and re-raises whatever it raised."""
    with fake.patch_client():
        task: asyncio.Task[None] = asyncio.create_task(
            bot.start(fake.token), name="fake-discord-bot"
        )
        try:
            await _race(fake.wait_identified(ready_timeout), task, ready_timeout, "IDENTIFY")
            await _race(bot.wait_until_ready(), task, ready_timeout, "on_ready")
            yield bot
        except BaseException:
            await _shutdown_bot(bot, task, close_timeout)
            raise
        error = await _shutdown_bot(bot, task, close_timeout)
        if error is not None:
            raise error
