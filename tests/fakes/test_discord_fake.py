"""Self-tests: the real discord.py client against tests/fakes/discord_fake/."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

if TYPE_CHECKING:
    from tests.fakes.discord_fake import EPHEMERAL, LOADING, FakeDiscord, FakeGuild, run_bot
else:
    try:  # tests/ is on sys.path (pytest's rootdir insertion: tests/ has no __init__.py)
        from fakes.discord_fake import EPHEMERAL, LOADING, FakeDiscord, FakeGuild, run_bot
    except ModuleNotFoundError:  # the repository root is on sys.path instead
        from tests.fakes.discord_fake import EPHEMERAL, LOADING, FakeDiscord, FakeGuild, run_bot


# --------------------------------------------------------------------------------------
# a tiny bot
# --------------------------------------------------------------------------------------


class ConfirmView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Yes", style=discord.ButtonStyle.green, custom_id="confirm:yes")
    async def yes(
        self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]
    ) -> None:
        await interaction.response.edit_message(content="Confirmed", view=None)


def build_sora_group() -> app_commands.Group:
    sora = app_commands.Group(name="sora", description="Sora video commands")
    quota = app_commands.Group(name="quota", description="Quota settings", parent=sora)

    @sora.command(name="ping", description="Deferred ephemeral pong")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.followup.send("pong")

    @sora.command(name="hello", description="Immediate ephemeral greeting")
    async def hello(interaction: discord.Interaction, name: str = "world") -> None:
        await interaction.response.send_message(f"hello {name}", ephemeral=True)

    @quota.command(name="set", description="Set the daily quota")
    async def quota_set(interaction: discord.Interaction, daily: int) -> None:
        embed = discord.Embed(title="Quota updated", description=f"daily={daily}")
        embed.add_field(name="Daily", value=str(daily))
        embed.set_footer(text="sora")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @sora.command(name="style", description="Pick a style")
    async def style(interaction: discord.Interaction, style: str) -> None:
        await interaction.response.send_message(f"style {style}")

    @style.autocomplete("style")
    async def style_autocomplete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = ("anime", "noir", "pixel")
        return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

    @sora.command(name="confirm", description="Button flow")
    async def confirm(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Proceed?", view=ConfirmView())

    @sora.command(name="upload", description="Attachment in, file out")
    async def upload(interaction: discord.Interaction, image: discord.Attachment) -> None:
        await interaction.response.defer()
        data = await image.read()
        out = discord.File(io.BytesIO(data[::-1]), filename="out.bin")
        await interaction.followup.send(f"got {image.filename} {len(data)}", file=out)

    return sora


class TinyBot(commands.Bot):
    def __init__(self, guild_id: int, *, intents: discord.Intents | None = None) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents or discord.Intents.default(),
            guild_ready_timeout=0.05,
        )
        self.sync_guild_id = guild_id
        self.synced: list[app_commands.AppCommand] = []
        self.tree.add_command(build_sora_group())

    async def setup_hook(self) -> None:
        guild = discord.Object(id=self.sync_guild_id)
        self.tree.copy_global_to(guild=guild)
        self.synced = await self.tree.sync(guild=guild)


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@dataclass
class Env:
    fake: FakeDiscord
    guild: FakeGuild
    bot: TinyBot
    alice: dict[str, object]


async def eventually(predicate: Callable[[], object], timeout: float = 5) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def pointed(fake: FakeDiscord) -> Iterator[FakeDiscord]:
    """Points discord.py at the fake and restores Route.BASE / DEFAULT_GATEWAY afterwards."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    yield fake
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@pytest.fixture
async def env(pointed: FakeDiscord) -> AsyncIterator[Env]:
    fake = pointed
    guild = fake.add_guild("Test Guild")
    alice = fake.add_user("alice")
    guild.add_member(alice)
    bot = TinyBot(guild.id)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_identified(5)
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        yield Env(fake, guild, bot, alice)
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


async def test_login_sync_and_ready(env: Env) -> None:
    fake, guild, bot = env.fake, env.guild, env.bot
    first = [(r.method, r.path) for r in fake.requests[:3]]
    assert first == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
        ("PUT", f"/applications/{fake.app_id}/guilds/{guild.id}/commands"),
    ]
    assert all(r.headers["Authorization"] == f"Bot {fake.token}" for r in fake.requests[:3])
    synced = await fake.wait_commands_synced(guild.id)
    assert [c["name"] for c in synced] == ["sora"]
    cmd = fake.guild_commands[guild.id][0]
    assert cmd["guild_id"] == str(guild.id) and cmd["application_id"] == str(fake.app_id)
    assert bot.synced[0].id == int(cmd["id"]) and bot.synced[0].guild_id == guild.id
    assert bot.user is not None and bot.user.id == fake.app_id
    assert bot.get_guild(guild.id) is not None
    assert bot.get_channel(int(guild.default_channel["id"])) is not None
    assert fake.identify_payloads[0]["intents"] == discord.Intents.default().value
    assert fake.global_commands == []


async def test_deferred_ephemeral_followup(env: Env) -> None:
    fake, guild = env.fake, env.guild
    inter = await fake.send_command(guild, env.alice, "sora", FakeDiscord.sub("ping"))
    assert inter.payload["data"]["id"] == fake.guild_commands[guild.id][0]["id"]
    assert inter.payload["data"]["guild_id"] == str(guild.id)
    final = await inter.wait_final()
    assert final["content"] == "pong" and final["ephemeral"] is True
    assert inter.callbacks == [{"type": 5, "data": {"flags": EPHEMERAL}}]
    assert inter.followups[0]["content"] == "pong"
    assert inter.first_callback_at is not None and inter.first_callback_at < 1.0
    assert inter.original is not None and final["id"] == inter.original["id"]  # edited "thinking"
    assert not final["flags"] & LOADING
    assert inter.text() == "pong"
    callback_req = fake.requests_matching("POST", r"^/interactions/\d+/[^/]+/callback$")[0]
    assert "Authorization" not in callback_req.headers
    assert callback_req.query.get("with_response") in ("1", "true", "True")


async def test_send_message_ephemeral_embed_nested_options(env: Env) -> None:
    options = FakeDiscord.sub("quota", "set", daily=5)
    assert options == [
        {
            "type": 2,
            "name": "quota",
            "options": [
                {"type": 1, "name": "set", "options": [{"type": 4, "name": "daily", "value": 5}]}
            ],
        }
    ]
    inter = await env.fake.send_command(env.guild, env.alice, "sora", options)
    final = await inter.wait_final()
    assert inter.callbacks[0]["type"] == 4
    assert final["ephemeral"] is True and final["embeds"][0]["title"] == "Quota updated"
    assert inter.text().splitlines() == ["Quota updated", "daily=5", "Daily", "5", "sora"]


async def test_channel_send_nonce_and_429_retry(env: Env) -> None:
    fake = env.fake
    channel_id = int(env.guild.default_channel["id"])
    rule = fake.fail_next("POST", r"^/channels/\d+/messages$", 429, retry_after=0.05)
    channel = env.bot.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("hello channel")
    posts = fake.requests_matching("POST", rf"^/channels/{channel_id}/messages$")
    assert [p.status for p in posts] == [429, 200] and rule.times == 0
    assert posts[0].response["retry_after"] == 0.05 and posts[0].injected
    nonce = posts[0].json["nonce"]
    assert nonce and posts[1].json["nonce"] == nonce and posts[1].json["enforce_nonce"] is True
    stored = fake.channel_messages[channel_id]
    assert len(stored) == 1 and stored[0]["content"] == "hello channel"
    assert stored[0]["nonce"] == nonce and message.id == int(stored[0]["id"])
    assert message.created_at.year >= 2025  # current snowflakes


async def test_dm_send_and_refused(env: Env) -> None:
    fake, bot = env.fake, env.bot
    bob = fake.add_user("bob", dms_open=False)
    alice_user = await bot.fetch_user(int(str(env.alice["id"])))
    await alice_user.send("hi alice")
    assert [m["content"] for m in fake.dm_messages(alice_user.id)] == ["hi alice"]
    create_dm = fake.requests_matching("POST", r"^/users/@me/channels$")[0]
    assert create_dm.json == {"recipient_id": alice_user.id}
    bob_user = await bot.fetch_user(int(bob["id"]))
    with pytest.raises(discord.Forbidden) as refused:
        await bob_user.send("hi bob")
    assert refused.value.code == 50007 and fake.dm_messages(bob_user.id) == []


async def test_dm_interaction(env: Env) -> None:
    inter = await env.fake.send_command(
        None, env.alice, "sora", FakeDiscord.sub("hello", name="dm")
    )
    assert "guild_id" not in inter.payload and inter.payload["context"] == 1
    assert inter.payload["user"]["id"] == env.alice["id"]
    final = await inter.wait_final()
    assert final["content"] == "hello dm" and final["ephemeral"] is True


async def test_autocomplete(env: Env) -> None:
    options = FakeDiscord.sub("style", style="an")
    inter = await env.fake.send_autocomplete(env.guild, env.alice, "sora", options)
    leaf = inter.payload["data"]["options"][0]["options"][0]
    assert leaf == {"type": 3, "name": "style", "value": "an", "focused": True}
    callback = await inter.wait_callback()
    assert callback == {"type": 8, "data": {"choices": [{"name": "anime", "value": "anime"}]}}
    assert inter.text() == "anime"


async def test_button_click_edits_message(env: Env) -> None:
    inter = await env.fake.send_command(env.guild, env.alice, "sora", FakeDiscord.sub("confirm"))
    final = await inter.wait_final()
    assert final["content"] == "Proceed?" and final["ephemeral"] is False
    click = await inter.click("Yes")
    clicked = await click.wait_final()
    assert click.callbacks[0]["type"] == 7
    assert clicked["id"] == final["id"] and clicked["content"] == "Confirmed"
    assert clicked["components"] == []
    assert env.fake.messages[int(final["id"])]["content"] == "Confirmed"


async def test_attachment_option_and_file_followup(env: Env) -> None:
    fake = env.fake
    attachment = fake.make_attachment("cat.png", b"\x89PNG-fake-bytes")
    options = FakeDiscord.sub("upload", image=attachment)
    inter = await fake.send_command(env.guild, env.alice, "sora", options)
    assert (
        inter.payload["data"]["resolved"]["attachments"][attachment["id"]]["filename"] == "cat.png"
    )
    final = await inter.wait_final()
    assert final["content"] == "got cat.png 15" and final["ephemeral"] is False
    assert final["attachments"][0]["filename"] == "out.bin"
    followup = fake.requests_matching("POST", rf"^/webhooks/{fake.app_id}/")[0]
    assert followup.files == [("out.bin", b"\x89PNG-fake-bytes"[::-1])]
    assert len(fake.cdn_requests) == 1


async def test_late_callback_gets_10062(env: Env) -> None:
    env.fake.interaction_timeout = 0.0
    inter = await env.fake.send_command(env.guild, env.alice, "sora", FakeDiscord.sub("hello"))
    await eventually(lambda: inter.late)
    assert inter.callbacks == [] and inter.first_callback_at is not None
    late = env.fake.requests_matching("POST", r"/callback$")[-1]
    assert late.status == 404 and late.response == {"message": "Unknown interaction", "code": 10062}


async def test_raw_errors_and_double_ack(env: Env) -> None:
    fake = env.fake
    inter = await fake.send_command(env.guild, env.alice, "sora", FakeDiscord.sub("hello"))
    await inter.wait_final()
    async with aiohttp.ClientSession() as session:
        url = f"{fake.api_base}/interactions/{inter.id}/{inter.token}/callback?with_response=1"
        async with session.post(url, json={"type": 4, "data": {"content": "again"}}) as resp:
            assert resp.status == 400 and resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["code"] == 40060
        url = f"{fake.api_base}/interactions/1/nope/callback"
        async with session.post(url, json={"type": 5}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10062
        async with session.post(f"{fake.api_base}/webhooks/{fake.app_id}/nope", json={}) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == 50027
        async with session.get(f"{fake.api_base}/no/such/route") as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
        async with session.get(f"{fake.api_base}/users/@me") as resp:
            assert resp.status == 401
    assert fake.requests[-2].path == "/no/such/route" and fake.requests[-2].status == 404


async def test_resume_after_reconnect_and_late_guild(env: Env) -> None:
    fake, bot = env.fake, env.bot
    await fake.request_reconnect()
    await eventually(lambda: fake.resume_count == 1)
    assert fake.identify_count == 1
    assert any(p.get("t") == "RESUMED" for p in fake.gateway_sent)
    second = fake.add_guild("Second Guild")
    await eventually(lambda: bot.get_guild(second.id) is not None)
    channel = env.guild.add_text_channel("videos")
    await eventually(lambda: bot.get_channel(int(channel["id"])) is not None)
    inter = await fake.send_command(env.guild, env.alice, "sora", FakeDiscord.sub("hello"))
    assert (await inter.wait_final())["content"] == "hello world"


async def test_bad_token_is_login_failure(pointed: FakeDiscord) -> None:
    bot = TinyBot(pointed.add_guild().id)
    with pytest.raises(discord.LoginFailure):
        await bot.start("wrong-token")
    await bot.close()
    assert pointed.requests[0].status == 401


async def test_run_bot_with_members_intent(fake: FakeDiscord) -> None:
    guild = fake.add_guild("Members")
    carol = fake.add_user("carol")
    guild.add_member(carol)
    intents = discord.Intents.default()
    intents.members = True
    base_before = Route.BASE
    bot = TinyBot(guild.id, intents=intents)
    async with run_bot(bot, fake):
        assert fake.api_base == Route.BASE
        live = bot.get_guild(guild.id)
        assert live is not None and live.chunked
        assert live.get_member(int(carol["id"])) is not None
        found = await live.query_members("car")
        assert [m.id for m in found] == [int(carol["id"])]
        assert any(p.get("op") == 8 for p in fake.gateway_received)
    assert base_before == Route.BASE and bot.is_closed()
