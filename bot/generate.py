"""`sora-bot generate`: one generation from the terminal, with the bot's own adapters.

This is how an operator checks a new key before inviting the bot: it submits, follows
the task with the same `VideoProvider` calls the bot makes, and writes the MP4.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import (
    InvalidInputError,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from bot.images import sniff_image
from bot.providers.base import (
    GenerationRequest,
    ImageInput,
    ProviderState,
    ProviderStatus,
    VideoProvider,
    plan_options,
)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
MAX_CONSECUTIVE_CHECK_FAILURES = 6


@dataclass(frozen=True, slots=True)
class GenerateArgs:
    prompt: str
    image: str | None
    aspect: Aspect
    duration: int
    quality: Quality
    out: Path | None
    timeout: float
    poll_seconds: float | None


class Progress:
    """A bar on a terminal, plain lines (only on change) when piped to a log."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last: tuple[ProviderState, int | None] | None = None

    def show(self, status: ProviderStatus, elapsed: float) -> None:
        key = (status.state, status.progress)
        if self._tty:
            percent = status.progress or 0
            filled = percent * 30 // 100
            bar = "#" * filled + "-" * (30 - filled)
            self._stream.write(f"\r[{bar}] {percent:3d}% {status.state.value:<9} {elapsed:5.0f}s")
            self._stream.flush()
        elif key != self._last:
            progress = "" if status.progress is None else f" {status.progress}%"
            self._stream.write(f"{elapsed:6.1f}s {status.state.value}{progress}\n")
            self._stream.flush()
        self._last = key

    def done(self) -> None:
        if self._tty:
            self._stream.write("\n")


async def load_image(source: str, provider: VideoProvider, client: httpx.AsyncClient) -> ImageInput:
    """A local file, or an http(s) URL (which URL-taking providers receive as is)."""
    is_url = source.startswith(("http://", "https://"))
    if provider.capabilities.image_input == "url" and not is_url:
        raise InvalidInputError(
            f"{provider.display_name} fetches the image from a public URL: "
            "pass --image https://... instead of a local file."
        )
    if is_url:
        try:
            response = await client.get(source)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise InvalidInputError(
                f"Could not download the image ({type(exc).__name__})."
            ) from None
        data = response.content
    else:
        try:
            data = await asyncio.to_thread(Path(source).read_bytes)
        except OSError as exc:
            raise InvalidInputError(f"Could not read {source}: {exc.strerror}.") from None
    info = sniff_image(data, max_bytes=provider.capabilities.max_image_bytes)
    return ImageInput(
        data=data,
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        url=source if is_url else None,
    )


def output_path(out: Path | None, provider_task_id: str) -> Path:
    if out is not None:
        return out
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", provider_task_id).strip("-.") or "video"
    return Path(f"sora-{safe}.mp4")


async def generate(
    provider: VideoProvider,
    client: httpx.AsyncClient,
    args: GenerateArgs,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    try:
        planned = plan_options(
            provider.display_name,
            provider.capabilities,
            Mode.IMAGE if args.image else Mode.TEXT,
            args.prompt,
            GenerationOptions(args.aspect, args.duration, args.quality),
        )
        image = await load_image(args.image, provider, client) if args.image else None
    except InvalidInputError as exc:
        print(exc.user_message, file=err)
        return EXIT_CONFIG
    for note in planned.notes:
        print(f"note: {note}", file=out)
    request = GenerationRequest(
        mode=Mode.IMAGE if image else Mode.TEXT,
        prompt=args.prompt.strip(),
        options=planned.options,
        image=image,
    )
    try:
        submission = await provider.submit(request)
    except ProviderAuthError as exc:
        print(f"The provider rejected the API key: {exc.detail}", file=err)
        return EXIT_CONFIG
    except ProviderError as exc:
        print(f"Could not submit: {exc.user_message}\n  provider said: {exc.detail}", file=err)
        return EXIT_FAILED
    task_id = submission.provider_task_id
    print(f"submitted to {provider.display_name}: task {task_id}", file=out)
    return await follow(provider, client, task_id, submission.status, args, out=out, err=err)


async def follow(
    provider: VideoProvider,
    client: httpx.AsyncClient,
    task_id: str,
    status: ProviderStatus,
    args: GenerateArgs,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    interval = args.poll_seconds or provider.capabilities.poll_interval_seconds
    started = time.monotonic()
    progress = Progress(out)
    failures = 0
    while not status.state.is_final:
        progress.show(status, time.monotonic() - started)
        if time.monotonic() - started > args.timeout:
            progress.done()
            print(f"Gave up after {args.timeout:.0f}s; task {task_id} may still finish.", file=err)
            return EXIT_FAILED
        await asyncio.sleep(interval)
        try:
            status = await provider.status(task_id)
            failures = 0
        except (ProviderUnavailableError, RateLimitedError) as exc:
            failures += 1
            if failures >= MAX_CONSECUTIVE_CHECK_FAILURES:
                progress.done()
                print(f"The provider keeps failing status checks: {exc.detail}", file=err)
                return EXIT_FAILED
        except ProviderError as exc:
            progress.done()
            print(
                f"Status check failed: {exc.user_message}\n  provider said: {exc.detail}", file=err
            )
            return EXIT_CONFIG if isinstance(exc, ProviderAuthError) else EXIT_FAILED
    progress.show(status, time.monotonic() - started)
    progress.done()
    if status.state is ProviderState.FAILED:
        reason = status.failure_code.value if status.failure_code else "failed"
        print(f"failed: {reason}\n  provider said: {status.failure_message}", file=err)
        return EXIT_FAILED
    try:
        media = await provider.media(task_id, status)
        data = media.data
        if data is None and media.url is not None:
            response = await client.get(media.url)
            response.raise_for_status()
            data = response.content
    except (ProviderError, httpx.HTTPError) as exc:
        print(f"The video is ready but could not be downloaded: {exc}", file=err)
        return EXIT_FAILED
    if not data:
        print("The video is ready but the download was empty.", file=err)
        return EXIT_FAILED
    path = output_path(args.out, task_id)
    await asyncio.to_thread(path.write_bytes, data)
    print(f"saved {path} ({len(data) / 1024:,.0f} KiB)", file=out)
    return EXIT_OK
