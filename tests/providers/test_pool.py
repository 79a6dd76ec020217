"""The provider pool on its own: which failures move a job on, and what the pool offers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.domain import Aspect
from bot.errors import (
    InsufficientCreditsError,
    InvalidInputError,
    ProviderAuthError,
    ProviderBusyError,
    ProviderRefusedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from bot.providers.base import ProviderState, ProviderStatus, Submission, VideoProvider
from bot.providers.demo import DemoProvider
from bot.providers.health import FailoverReason
from bot.providers.pool import (
    AllProvidersFailedError,
    ProviderPool,
    failover_reason,
    merged_capabilities,
)


class Named(DemoProvider):
    def __init__(self, name: str, **caps: object) -> None:
        super().__init__()
        self.name = name
        self.display_name = name.upper()
        if caps:
            self.capabilities = replace(self.capabilities, **caps)  # type: ignore[arg-type]


def accepted(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
    return Submission(f"{provider.name}-1", ProviderStatus(ProviderState.QUEUED)), ()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (InsufficientCreditsError("p"), FailoverReason.CREDITS),
        (ProviderAuthError("p"), FailoverReason.AUTH),
        (ProviderUnavailableError("p"), FailoverReason.UNAVAILABLE),
        (TimeoutError(), FailoverReason.UNAVAILABLE),
        (RateLimitedError("p"), FailoverReason.RATE_LIMITED),
        (ProviderBusyError("p", 10), FailoverReason.BUSY),
        (ProviderRefusedError("p", "no", content_policy=True), None),
        (InvalidInputError("bad picture"), None),
    ],
)
def test_only_provider_side_failures_move_a_job_on(
    error: BaseException, reason: FailoverReason | None
) -> None:
    assert failover_reason(error) is reason


def test_the_pool_offers_what_any_of_its_providers_can_make() -> None:
    wide = Named("wide", aspects=(Aspect.LANDSCAPE, Aspect.SQUARE), durations=(5, 10))
    narrow = Named("narrow", aspects=(Aspect.PORTRAIT,), durations=(4, 8), max_prompt_length=9)
    caps = merged_capabilities([narrow, wide])
    assert caps.aspects == (Aspect.PORTRAIT, Aspect.LANDSCAPE, Aspect.SQUARE)
    assert caps.durations == (4, 5, 8, 10)
    assert caps.max_prompt_length == wide.capabilities.max_prompt_length
    assert merged_capabilities([narrow]) is narrow.capabilities


async def test_a_job_goes_to_the_first_that_takes_it() -> None:
    first, second = Named("first"), Named("second")
    tried: list[str] = []

    async def attempt(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
        tried.append(provider.name)
        if provider is first:
            raise InsufficientCreditsError("first")
        return accepted(provider)

    result = await ProviderPool([first, second]).submit(attempt)
    assert result.provider is second and tried == ["first", "second"]
    assert result.passed == (("first", FailoverReason.CREDITS),)


async def test_a_refusal_about_the_request_is_raised_without_trying_the_next() -> None:
    first, second = Named("first"), Named("second")
    tried: list[str] = []

    async def attempt(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
        tried.append(provider.name)
        raise ProviderRefusedError(provider.name, "refused", content_policy=True)

    with pytest.raises(ProviderRefusedError):
        await ProviderPool([first, second]).submit(attempt)
    assert tried == ["first"]


async def test_a_request_one_provider_cannot_plan_goes_to_one_that_can() -> None:
    first, second = Named("first"), Named("second")

    async def attempt(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
        if provider is first:
            raise InvalidInputError("first can't make square videos")
        return accepted(provider)

    assert (await ProviderPool([first, second]).submit(attempt)).provider is second

    async def nobody(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
        raise InvalidInputError(f"{provider.name} can't")

    with pytest.raises(InvalidInputError, match="first can't"):
        await ProviderPool([first, second]).submit(nobody)


async def test_when_every_provider_fails_nothing_was_made_and_the_member_is_told() -> None:
    async def down(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
        raise ProviderUnavailableError(provider.name, "502")

    with pytest.raises(AllProvidersFailedError) as caught:
        await ProviderPool([Named("a"), Named("b")]).submit(down)
    assert "having trouble" in caught.value.user_message
    assert "a (unavailable), b (unavailable)" in caught.value.detail

    async def broke(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
        raise InsufficientCreditsError(provider.name)

    # One provider: its own words, as before failover existed.
    with pytest.raises(InsufficientCreditsError):
        await ProviderPool([Named("solo")]).submit(broke)


async def test_a_picture_too_large_for_one_provider_goes_to_one_that_takes_it() -> None:
    from bot.dispatch import Dispatcher, Job
    from bot.domain import GenerationOptions, Mode
    from bot.polling import PollPlanner, PollPlanners
    from bot.providers.base import ImageInput
    from bot.schedule import Schedule
    from tests.discord.test_rendering import make_task

    small = Named("small", max_image_bytes=1000)
    large = Named("large", max_image_bytes=10_000)
    sent: list[str] = []

    async def submit(provider: Named, request: object) -> Submission:
        sent.append(provider.name)
        return Submission(f"{provider.name}-1", ProviderStatus(ProviderState.QUEUED))

    for provider in (small, large):
        provider.submit = (lambda p: lambda request: submit(p, request))(provider)  # type: ignore[method-assign]
    dispatcher = Dispatcher(
        ProviderPool([small, large]),
        PollPlanners(PollPlanner.fixed(Schedule(first_delay=1, interval=1))),
        None,
    )
    task = make_task(mode=Mode.IMAGE, provider="small")
    picture = ImageInput(b"\0" * 5000, "image/png", 640, 360)
    accepted = await dispatcher.create(Job(task, GenerationOptions(), picture))
    assert accepted.provider is large and sent == ["large"]
