"""`sora-bot` / `python -m bot`: run (default), check, or generate.

Exit status: 0 fine, 1 the bot stopped on an error, 2 the configuration (or the
database it names) is unusable. Configuration problems print one readable message and
no traceback, and never a secret's value.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import discord
import httpx

from bot.discord.app import SoraBot
from bot.domain import Aspect, Quality
from bot.errors import ConfigurationError
from bot.fetch import Fetcher
from bot.generate import GenerateArgs, generate, is_url
from bot.logging_setup import setup_logging
from bot.media import serving_files
from bot.providers.pool import ProviderPool
from bot.providers.registry import PROVIDERS, build_provider, build_providers, provider_names
from bot.settings import Settings, load_settings, redact_url
from bot.store import create_store
from bot.store.migrate import MigrationError, migrate
from bot.url_policy import MediaPolicy

log = logging.getLogger("bot")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def make_http_client() -> httpx.AsyncClient:
    """The one HTTP client the process shares with every provider adapter."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=True,
    )


def secrets_of(settings: Settings) -> list[str]:
    return settings.secret_values()


async def run_bot(settings: Settings) -> int:
    store = create_store(settings.database_url)
    http_client = make_http_client()
    bot = SoraBot(
        settings=settings,
        store=store,
        http_client=http_client,
        provider=build_providers(settings, http_client),
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()
            return EXIT_OK
        log.info("shutting down")
        return EXIT_OK
    except discord.LoginFailure:
        print("Configuration problems:\n  - DISCORD_TOKEN: Discord rejected it", file=sys.stderr)
        return EXIT_CONFIG
    except discord.PrivilegedIntentsRequired:
        print("Discord refused a privileged intent this bot asked for.", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        log.exception("the bot stopped on an error")
        return EXIT_FAILED
    finally:
        stopper.cancel()
        await bot.close()
        if not runner.done():
            runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner


async def check(settings: Settings) -> int:
    """Validate settings and the database (migrating it) without touching Discord."""
    store = create_store(settings.database_url)
    try:
        await store.open()
        version = await store.schema_version()
    except Exception as exc:
        print(f"Database problem ({store.description}): {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        await store.close()
    print("Configuration OK")
    for name in settings.sora_providers:
        provider = settings.provider_settings(name)
        print(f"  provider:  {name}" + (" (API key set)" if provider.key else ""))
        if provider.address:
            print(f"  provider address: {redact_url(provider.address)}")
    print(f"  database:  {redact_url(store.description)} (schema version {version})")
    print(f"  discord:   {redact_url(settings.discord_api_base)}")
    if settings.discord_gateway_url:
        print(f"  gateway:   {redact_url(settings.discord_gateway_url)}")
    if settings.webhook_listen:
        public = redact_url(settings.webhook_public_url) if settings.webhook_public_url else "-"
        print(f"  listener:  {settings.webhook_listen} (public address {public})")
    guilds = ", ".join(map(str, settings.discord_guild_ids)) or "none (commands sync globally)"
    print(f"  guilds:    {guilds}")
    limits = settings.default_limits
    print(
        f"  quota:     {limits.daily}/day, {limits.monthly}/month, "
        f"{limits.user_daily if limits.user_daily is not None else 'no'} per member/day "
        f"({limits.unit.value})"
    )
    return EXIT_OK


async def generate_once(settings: Settings, args: argparse.Namespace) -> int:
    async with make_http_client() as client:
        try:
            names = provider_names(args.provider) if args.provider else settings.sora_providers
            unknown = [name for name in names if name not in PROVIDERS]
            if unknown or not names:
                raise ValueError(
                    f"--provider: unknown {', '.join(unknown) or '(none)'}; choose from "
                    + ", ".join(sorted(PROVIDERS))
                )
            providers = [build_provider(settings, client, name) for name in names]
        except ValueError as exc:
            print(f"Configuration problems:\n  - {exc}", file=sys.stderr)
            return EXIT_CONFIG
        request = GenerateArgs(
            prompt=args.prompt,
            image=args.image,
            aspect=Aspect(args.aspect),
            duration=args.duration,
            quality=Quality(args.quality),
            out=args.out,
            timeout=args.timeout,
            poll_seconds=args.poll_seconds,
        )
        # Result URLs are vetted as the bot vets them; the provider's own address is trusted.
        trusted = [settings.provider_settings(p.name).address for p in providers]
        fetcher = Fetcher(client, MediaPolicy(trusted))
        pool = ProviderPool(providers)
        async with contextlib.AsyncExitStack() as stack:
            publish = None
            listen, public = settings.listen_address, settings.webhook_public_url
            if (
                args.image
                and not is_url(args.image)
                and any(p.capabilities.image_input == "url" for p in providers)
                and listen is not None
                and public is not None
            ):
                # The provider fetches the picture by URL: serve the local file for as long
                # as the generation is followed (then the listener stops, the file goes).
                try:
                    publish = await stack.enter_async_context(
                        serving_files(listen, public, lifetime_seconds=args.timeout + 600)
                    )
                except OSError as exc:
                    print(
                        f"Configuration problems:\n  - WEBHOOK_LISTEN: cannot listen on "
                        f"{settings.webhook_listen} ({exc.strerror or exc}); is the bot "
                        "running on it?",
                        file=sys.stderr,
                    )
                    return EXIT_CONFIG
            try:
                return await generate(pool, client, request, fetcher=fetcher, publish_image=publish)
            except asyncio.CancelledError:
                print(
                    "\nstopped following; the task may still finish at the provider",
                    file=sys.stderr,
                )
                return 130


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sora-bot", description="A Discord bot that makes Sora 2 videos from chat."
    )
    verbs = parser.add_subparsers(dest="verb", metavar="{run,check,generate,migrate-db}")
    verbs.add_parser("run", help="connect to Discord and serve commands (the default)")
    verbs.add_parser("check", help="validate the configuration and database, then exit")
    gen = verbs.add_parser(
        "generate", help="make one video from the terminal with the configured provider"
    )
    gen.add_argument("prompt", help="what the video should show")
    gen.add_argument("--image", help="image-to-video: a PNG/JPEG/WebP file, or an https URL")
    gen.add_argument(
        "--provider",
        help="instead of SORA_PROVIDER: a name, or several in order separated by commas "
        f"(failing over as the bot does); one of {', '.join(sorted(PROVIDERS))}",
    )
    gen.add_argument("--aspect", choices=[a.value for a in Aspect], default="landscape")
    gen.add_argument("--duration", type=int, default=8, help="seconds (default 8)")
    gen.add_argument("--quality", choices=[q.value for q in Quality], default="standard")
    gen.add_argument("--out", type=Path, help="where to write the MP4")
    gen.add_argument("--timeout", type=float, default=1800.0, help="give up after (seconds)")
    gen.add_argument(
        "--poll-seconds", type=float, help="status check interval (default: the provider's)"
    )
    move = verbs.add_parser(
        "migrate-db",
        help="copy the SQLite database DATABASE_URL names into an empty PostgreSQL database",
    )
    move.add_argument("--to", required=True, metavar="postgresql://...", help="the target")
    return parser.parse_args(argv)


async def migrate_db(settings: Settings, target: str) -> int:
    """Copy the SQLite install into PostgreSQL and verify the counts; then the bot runs
    on the new URL with nothing posted again."""
    if not target.startswith(("postgresql://", "postgres://")):
        print("--to must be a postgresql:// URL", file=sys.stderr)
        return EXIT_CONFIG
    source = settings.sqlite_path
    if source is None:
        print("DATABASE_URL must name the SQLite database to copy", file=sys.stderr)
        return EXIT_CONFIG
    try:
        copied = await migrate(source, target)
    except (MigrationError, OSError) as exc:
        print(f"Not migrated: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    total = sum(copied.counts.values())
    print(f"Copied {total} rows from {source} to {redact_url(target)}; counts verified:")
    for table, count in copied.counts.items():
        print(f"  {table}: {count}")
    print(f"Now run the bot with DATABASE_URL={redact_url(target)}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(discord_required=args.verb not in ("generate", "migrate-db"))
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, secrets_of(settings))
    if args.verb == "check":
        return asyncio.run(check(settings))
    if args.verb == "migrate-db":
        return asyncio.run(migrate_db(settings, args.to))
    if args.verb == "generate":
        try:
            return asyncio.run(generate_once(settings, args))
        except KeyboardInterrupt:
            print("\nstopped following; the task may still finish at the provider", file=sys.stderr)
            return 130
    return asyncio.run(run_bot(settings))


if __name__ == "__main__":
    sys.exit(main())
