"""The one protocol every provider adapter implements, and the one status model they share.

Each adapter speaks its provider's vocabulary on the wire and nothing else: everything
it returns is a `ProviderStatus`, everything it raises is a `ProviderError` subclass
(`bot.errors`), so the service, the tracker, the listener and the CLI never branch on a
provider name. What they need to know about a provider is in its `Capabilities` (how
results are reported, whether remix exists...) or asked of it through the protocol
(`same_task`, `accepts_signed_webhooks`, `remix`); `ProviderDefaults` answers those for
an adapter that has nothing special to say.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import CallbackRejectedError, InvalidInputError


class ProviderState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        match self:
            case ProviderState.SUCCEEDED | ProviderState.FAILED:
                return True
            case ProviderState.QUEUED | ProviderState.RUNNING:
                return False


class FailureCode(StrEnum):
    """Why a generation failed, in the bot's words (each adapter maps its own codes here)."""

    CONTENT_POLICY = "content_policy"
    INVALID_IMAGE = "invalid_image"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    PROVIDER_ERROR = "provider_error"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    state: ProviderState
    progress: int | None = None  # 0-100, None when the provider does not say
    video_url: str | None = None
    thumbnail_url: str | None = None
    failure_code: FailureCode | None = None
    failure_message: str | None = None  # the provider's own words, for logs and details
    provider_task_id: str | None = None  # set by callbacks, which name their task
    # How long the generation took by the provider's own clock (its create and complete
    # timestamps, or its own cost figure), when it says so: the polling schedule learns
    # generation times from it (`bot.polling`). None when it does not say, or says
    # something implausible (negative, or longer than a day).
    generation_seconds: float | None = None


# A provider's own timing is untrusted input: a duration outside this is ignored.
LONGEST_PLAUSIBLE_GENERATION = 86_400.0


def took_seconds(started: float | None, finished: float | None) -> float | None:
    """The generation time from a provider's start and end timestamps (seconds, its own
    clock, so any clock skew with ours cancels out), or None if either is missing or the
    difference is not a plausible generation time (zero or less, or over a day)."""
    if started is None or finished is None:
        return None
    return plausible_seconds(finished - started)


def plausible_seconds(seconds: float | None) -> float | None:
    """`seconds` if it could be how long a generation took, else None."""
    if seconds is None or seconds != seconds:  # NaN
        return None
    return seconds if 0 < seconds <= LONGEST_PLAUSIBLE_GENERATION else None


def epoch_seconds(value: Any, per_second: int = 1) -> float | None:
    """A provider's Unix timestamp or duration (`per_second=1000` for milliseconds) in
    seconds, or None for anything but a finite number above zero: a string, a bool, null,
    NaN, infinity, a number too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value) / per_second
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


# A calendar date, `T` or a space, a time, and an optional zone (`Z`, `+HH`, `+HH:MM`).
_ISO_8601 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


def iso_instant(value: Any) -> datetime | None:
    """A provider's ISO-8601 time ("2026-12-04T10:25:00.123Z", "2026-12-04 10:25:00", an
    offset or no zone), as given, or None for anything else (not a string, not shaped like
    a date and time, no such date). `fromisoformat` alone takes any separator, a NUL..."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _ISO_8601.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # a shape that fits but a date that does not exist
        return None


def took_between(started: datetime | None, finished: datetime | None) -> float | None:
    """`finished - started` on the provider's clock (its zone cancels out), if plausible;
    None when either is missing, or one names a zone and the other not (no common clock)."""
    if started is None or finished is None:
        return None
    if (started.tzinfo is None) != (finished.tzinfo is None):
        return None
    return plausible_seconds((finished - started).total_seconds())


@dataclass(frozen=True, slots=True)
class Capabilities:
    modes: frozenset[Mode]
    aspects: tuple[Aspect, ...]
    durations: tuple[int, ...]
    qualities: tuple[Quality, ...]
    max_prompt_length: int
    image_input: Literal["url", "upload"]
    result_lifetime: timedelta | None
    duration_selectable: bool = True  # False: the provider picks the length itself
    remix: bool = False  # can change a finished video with a new prompt (`remix`)
    # How results reach the bot besides polling: "callback" (a per-task URL with an
    # unguessable token, `/callbacks/{token}`), "webhook" (project-level signed webhooks
    # at `/webhooks/{name}`, once `accepts_signed_webhooks`) or "poll" (none).
    reports: Literal["callback", "webhook", "poll"] = "poll"
    max_concurrent_tasks: int | None = None
    max_requests_per_minute: int | None = None
    max_image_bytes: int = 10 * 1024 * 1024
    # When the first status check is worth making, and the provider's suggested interval.
    expected_seconds: float = 180.0
    poll_interval_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image for image-to-video, read from Discord at submit time."""

    data: bytes
    content_type: Literal["image/png", "image/jpeg", "image/webp"]
    width: int
    height: int
    # A URL the provider can still fetch when it gets to the job (URL providers only).
    url: str | None = None

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[self.content_type]


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    mode: Mode
    prompt: str
    options: GenerationOptions
    image: ImageInput | None = None
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    provider_task_id: str
    status: ProviderStatus = field(default_factory=lambda: ProviderStatus(ProviderState.QUEUED))


@dataclass(frozen=True, slots=True)
class Media:
    """A finished video: a public URL, or, when the provider has no public link, the bytes
    (small, in-memory: the demo) or `path`, a downloaded file the caller now owns (it
    moves or deletes it). Large videos come as a file so they are never held in memory."""

    url: str | None = None
    data: bytes | None = None
    content_type: str = "video/mp4"
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class PlannedOptions:
    """The options a provider will actually get, and what was changed to get there."""

    options: GenerationOptions
    notes: tuple[str, ...] = ()


class VideoProvider(Protocol):
    name: str
    display_name: str

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def accepts_signed_webhooks(self) -> bool:
        """True when signed webhooks (`Capabilities.reports == "webhook"`) can be verified:
        the provider's signing secret is configured. The listener opens its webhook door,
        and polling becomes the safety net, only then."""
        ...

    async def submit(self, request: GenerationRequest) -> Submission:
        """Create a generation. A paid call: sent at most once unless it surely never arrived."""
        ...

    async def remix(self, provider_task_id: str, prompt: str) -> Submission:
        """A new video from a finished one and a description of the change (paid). Only
        when `Capabilities.remix`; otherwise `InvalidInputError`, nothing sent."""
        ...

    async def status(self, provider_task_id: str) -> ProviderStatus: ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        """Turn a provider's callback into a status naming its task, or raise
        `CallbackRejectedError` (unsigned, malformed, or no callbacks for this provider;
        `DuplicateCallbackError` for a report already processed)."""
        ...

    def same_task(self, stored_id: str, reported_id: str) -> bool:
        """Whether a report naming `reported_id` is about the task stored as `stored_id`
        (the id `submit` returned): a provider may store more than its callbacks name."""
        ...

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media: ...


class ProviderDefaults:
    """The protocol's answers for an adapter with nothing special to say: inherit it
    and override what applies. (A `Protocol`'s own method bodies reach only classes that
    subclass it, so the defaults live here.)"""

    display_name: str

    @property
    def accepts_signed_webhooks(self) -> bool:
        return False

    async def remix(self, provider_task_id: str, prompt: str) -> Submission:
        raise InvalidInputError(f"{self.display_name} can't remix videos.")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        raise CallbackRejectedError(f"{self.display_name} sends no callbacks")

    def same_task(self, stored_id: str, reported_id: str) -> bool:
        return bool(stored_id) and stored_id == reported_id


# Characters that print nothing yet are not whitespace to `str.strip`: zero-width spaces
# and joiners, word joiner, BOM, soft hyphen, direction marks, and "fillers" that are
# letters or symbols by category (Hangul fillers, the blank braille pattern).
_FILLERS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
_EDGE_INVISIBLES = _FILLERS | frozenset(
    "\u00ad\u034f\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c"
    "\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)


def clean_prompt(prompt: str) -> str:
    """The prompt without whitespace or invisible characters at either end (what is
    stored and sent). Only the ends: inside, a zero-width joiner may hold an emoji
    together, and combining marks are accents."""
    start, end = 0, len(prompt)
    while start < end and _invisible_at_edge(prompt[start]):
        start += 1
    while end > start and _invisible_at_edge(prompt[end - 1]):
        end -= 1
    return prompt[start:end]


def is_blank(prompt: str) -> bool:
    """True when nothing would be seen: every character is whitespace, a control or
    format character (zero-width space, joiners, BOM...), a mark with nothing to sit on
    (such as the combining grapheme joiner) or a filler. Such a prompt reached the
    provider and was charged, so it is refused before anything is reserved."""
    for char in prompt:
        category = unicodedata.category(char)
        if category[0] in "LNPS" and char not in _FILLERS:
            return False
    return True


def _invisible_at_edge(char: str) -> bool:
    return char.isspace() or char in _EDGE_INVISIBLES or unicodedata.category(char) == "Cc"


def plan_options(
    provider: str, capabilities: Capabilities, mode: Mode, prompt: str, options: GenerationOptions
) -> PlannedOptions:
    """Fit a user's request to what a provider can make, before any request is sent.

    Refuses what cannot be honoured (a square video where there is none, an over-long
    prompt), and maps a duration to the nearest one offered, saying so, because a
    slightly longer or shorter clip is obviously what the user still wants.
    """
    if mode not in capabilities.modes:
        raise InvalidInputError(f"{provider} cannot make videos from {mode.value} input.")
    text = clean_prompt(prompt)
    if is_blank(text):
        raise InvalidInputError("Please describe the video you want: the prompt is empty.")
    if len(text) > capabilities.max_prompt_length:
        raise InvalidInputError(
            f"That prompt is {len(text):,} characters; {provider} takes at most "
            f"{capabilities.max_prompt_length:,}. Please shorten it."
        )
    if options.aspect not in capabilities.aspects:
        offered = " or ".join(a.value for a in capabilities.aspects)
        raise InvalidInputError(
            f"{provider} cannot make {options.aspect.value} videos; choose {offered}."
        )
    if options.quality not in capabilities.qualities:
        offered = " or ".join(q.value for q in capabilities.qualities)
        raise InvalidInputError(f"{provider} offers {offered} quality only.")
    notes: list[str] = []
    duration = options.duration_seconds
    if duration not in capabilities.durations:
        nearest = min(capabilities.durations, key=lambda d: (abs(d - duration), -d))
        if capabilities.duration_selectable:
            notes.append(f"{duration} s isn't offered, so yours will be {nearest} s.")
        else:
            notes.append(f"{provider} sets the length itself: about {nearest} seconds.")
        duration = nearest
    planned = GenerationOptions(
        aspect=options.aspect, duration_seconds=duration, quality=options.quality
    )
    return PlannedOptions(planned, tuple(notes))
