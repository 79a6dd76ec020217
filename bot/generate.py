"""`sora-bot generate`: one generation from the terminal, with the bot's own adapters.

This is how an operator checks a new key before inviting the bot: it submits, follows
the task with the same `VideoProvider` calls the bot makes, and writes the MP4.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
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
from bot.fetch import (
    HEAD_BYTES,
    IMAGE_DEADLINE_SECONDS,
    MAX_VIDEO_BYTES,
    Fetcher,
    Spooled,
    looks_like_video,
)
from bot.images import sniff_image
from bot.media import Publisher
from bot.providers.base import (
    GenerationRequest,
    ImageInput,
    ProviderState,
    ProviderStatus,
    Submission,
    VideoProvider,
    plan_options,
)
from bot.providers.pool import ProviderPool, failover_reason
from bot.url_policy import MediaFetchError, MediaPolicy

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


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


async def load_image(
    source: str,
    provider: VideoProvider,
    client: httpx.AsyncClient,
    *,
    publish: Publisher | None = None,
) -> ImageInput:
    """A local file, or an http(s) URL (which URL-taking providers receive as is).

    A provider that fetches pictures by URL gets a local file through `publish` (the
    listener serves it under an unguessable, expiring name); without one it is refused.
    """
    remote = is_url(source)
    wants_url = provider.capabilities.image_input == "url"
    limit = provider.capabilities.max_image_bytes
    if wants_url and not remote and publish is None:
        raise InvalidInputError(
            f"{provider.display_name} fetches the image from a public URL: "
            "pass --image https://... instead of a local file, or set WEBHOOK_LISTEN and "
            "WEBHOOK_PUBLIC_URL so this command can serve the file itself."
        )
    if remote:
        data = await _download_image(source, client, limit)
    else:
        data = await _read_image(Path(source), limit)
    info = sniff_image(data, max_bytes=limit)
    url = source if remote else None
    if wants_url and not remote and publish is not None:
        url = await publish(data, _EXTENSIONS[info.content_type])
    return ImageInput(
        data=data,
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        url=url,
    )


_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


async def _download_image(source: str, client: httpx.AsyncClient, limit: int) -> bytes:
    """The operator typed this URL, so its own origin is trusted as given; redirects
    are vetted like any media URL, and the download has a deadline and a size cap."""
    fetcher = Fetcher(client, MediaPolicy([source]), deadline=IMAGE_DEADLINE_SECONDS)
    try:
        with await fetcher.download(source, limit=limit) as spooled:
            return await asyncio.to_thread(spooled.path.read_bytes)
    except MediaFetchError as exc:
        raise InvalidInputError(f"Could not download the image: {exc.user_message}.") from None


async def _read_image(path: Path, limit: int) -> bytes:
    """The file, unless it is larger than `limit` (then not read at all)."""
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > limit:
            raise InvalidInputError(
                f"{path} is {size / 1_048_576:.1f} MB; the limit is "
                f"{limit / 1_048_576:.0f} MB. Please use a smaller picture."
            )
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise InvalidInputError(f"Could not read {path}: {exc.strerror}.") from None


def output_path(out: Path | None, provider_task_id: str) -> Path:
    if out is not None:
        return out
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", provider_task_id).strip("-.") or "video"
    return Path(f"sora-{safe}.mp4")


async def generate(
    provider: VideoProvider | ProviderPool,
    client: httpx.AsyncClient,
    args: GenerateArgs,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    fetcher: Fetcher | None = None,
    publish_image: Publisher | None = None,
) -> int:
    """`fetcher` downloads the result (its policy trusts the providers' configured
    addresses; default: https to public addresses only). `publish_image` serves a local
    picture to a provider that fetches pictures by URL (see `bot.media.serving_files`).
    With several providers (`--provider apixo,sora2api`), a create that fails for a
    reason about the provider goes on to the next one, as the bot does."""
    pool = ProviderPool.of_one(provider)
    for index, each in enumerate(pool):
        last = index + 1 == len(pool)
        result = await _submit(each, client, args, out=out, err=err, publish_image=publish_image)
        if isinstance(result, int):
            return result
        if isinstance(result, tuple):
            submission = result[0]
            print(f"submitted to {each.display_name}: task {submission.provider_task_id}", file=out)
            return await follow(
                each,
                client,
                submission.provider_task_id,
                submission.status,
                args,
                out=out,
                err=err,
                fetcher=fetcher,
            )
        reason = failover_reason(result)
        if reason is None or last:
            return _create_failed(result, err)
        print(f"{each.display_name} failed ({reason.value}): trying the next provider", file=err)
    return EXIT_FAILED


async def _submit(
    provider: VideoProvider,
    client: httpx.AsyncClient,
    args: GenerateArgs,
    *,
    out: TextIO,
    err: TextIO,
    publish_image: Publisher | None,
) -> int | tuple[Submission] | ProviderError:
    """One create: its answer, the exit status of a refused request, or the error."""
    try:
        planned = plan_options(
            provider.display_name,
            provider.capabilities,
            Mode.IMAGE if args.image else Mode.TEXT,
            args.prompt,
            GenerationOptions(args.aspect, args.duration, args.quality),
        )
        image = (
            await load_image(args.image, provider, client, publish=publish_image)
            if args.image
            else None
        )
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
        return (await provider.submit(request),)
    except ProviderError as exc:
        return exc


def _create_failed(exc: ProviderError, err: TextIO) -> int:
    if isinstance(exc, ProviderAuthError):
        print(f"The provider rejected the API key: {exc.detail}", file=err)
        return EXIT_CONFIG
    print(f"Could not submit: {exc.user_message}\n  provider said: {exc.detail}", file=err)
    return EXIT_FAILED


async def follow(
    provider: VideoProvider,
    client: httpx.AsyncClient,
    task_id: str,
    status: ProviderStatus,
    args: GenerateArgs,
    *,
    out: TextIO,
    err: TextIO,
    fetcher: Fetcher | None = None,
) -> int:
    interval = args.poll_seconds or provider.capabilities.poll_interval_seconds
    started = time.monotonic()
    progress = Progress(out)
    failures = 0
    pause = interval
    while not status.state.is_final:
        progress.show(status, time.monotonic() - started)
        left = args.timeout - (time.monotonic() - started)
        if left <= 0:
            progress.done()
            print(f"Gave up after {args.timeout:.0f}s; task {task_id} may still finish.", file=err)
            return EXIT_FAILED
        # Cut short at the deadline: one last look then, rather than a sleep past it.
        await asyncio.sleep(min(pause, left))
        pause = interval
        try:
            status = await provider.status(task_id)
            failures = 0
        except (ProviderUnavailableError, RateLimitedError) as exc:
            failures += 1
            if failures >= MAX_CONSECUTIVE_CHECK_FAILURES:
                progress.done()
                print(f"The provider keeps failing status checks: {exc.detail}", file=err)
                return EXIT_FAILED
            # A Retry-After longer than the HTTP layer's own retry budget arrives here
            # rather than being slept inside the call (see bot.providers.http): asking
            # again before it would only be refused again, and count as another failure.
            pause = max(interval, exc.retry_after or 0.0)
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
    return await save_video(
        provider, client, task_id, status, output_path(args.out, task_id),
        fetcher=fetcher, out=out, err=err,
    )  # fmt: skip


async def save_video(
    provider: VideoProvider,
    client: httpx.AsyncClient,
    task_id: str,
    status: ProviderStatus,
    path: Path,
    *,
    fetcher: Fetcher | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Write the finished video to `path`. A provider URL is fetched like the bot fetches
    it (vetted, redirects vetted, deadline, size cap), spooled to disk and then moved, so
    neither a huge nor a dripping download can hang the command or fill memory."""
    fetcher = fetcher or Fetcher(client, MediaPolicy())
    try:
        media = await provider.media(task_id, status)
        if media.path is not None:
            spooled = await asyncio.to_thread(Spooled.adopt, media.path)
        elif media.data is not None:
            spooled = None
        elif media.url is not None:
            spooled = await fetcher.download(media.url, limit=MAX_VIDEO_BYTES)
        else:
            print("The video is ready but the provider gave no file or link.", file=err)
            return EXIT_FAILED
    except ProviderError as exc:
        print(f"The video is ready but could not be downloaded: {exc}", file=err)
        return EXIT_FAILED
    except MediaFetchError as exc:
        print(
            f"The video is ready but could not be downloaded: {exc.user_message} ({exc.detail})",
            file=err,
        )
        return EXIT_FAILED
    if spooled is None:
        data = media.data or b""
        head, size = data[:HEAD_BYTES], len(data)
    else:
        head, size = spooled.head, spooled.size
    with spooled or contextlib.nullcontext():
        if size == 0:
            print("The video is ready but the download was empty.", file=err)
            return EXIT_FAILED
        if not looks_like_video(head):
            print(
                f"The provider's file is not a video (it starts with {head[:12]!r}); not saved.",
                file=err,
            )
            return EXIT_FAILED
        if spooled is None:
            await asyncio.to_thread(path.write_bytes, data)
        else:
            await asyncio.to_thread(shutil.move, spooled.path, path)
    print(f"saved {path} ({size / 1024:,.0f} KiB)", file=out)
    return EXIT_OK
