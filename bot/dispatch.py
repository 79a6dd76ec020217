"""Sending a job to the providers: planning it for each, creating it at the first that
takes it (`bot.providers.pool`), and moving a failed one to the next.

The service decides who may ask for what and holds the quota; this module only knows
how a request becomes a create at some provider. Members read "the video service",
never a reseller's name, in every refusal from here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bot.domain import GenerationOptions, Mode, Task
from bot.errors import InvalidInputError
from bot.polling import PollPlanners
from bot.providers.base import (
    GenerationRequest,
    ImageInput,
    PlannedOptions,
    Submission,
    VideoProvider,
    plan_options,
)
from bot.providers.pool import Accepted, ProviderPool

MEMBERS_NAME = "The video service"


@dataclass(frozen=True, slots=True)
class Job:
    """What a create needs, whichever provider makes it."""

    task: Task
    options: GenerationOptions
    image: ImageInput | None = None
    remix_of: str | None = None  # the source video's provider task id (a remix)
    remix_at: str | None = None  # ... at this provider


class Dispatcher:
    def __init__(self, pool: ProviderPool, polling: PollPlanners, public_url: str | None) -> None:
        """`public_url`: the listener's public address, for per-task callbacks."""
        self.pool = pool
        self.polling = polling
        self._public_url = public_url

    def plan(self, mode: Mode, prompt: str, wanted: GenerationOptions) -> PlannedOptions:
        """The options the first provider able to make the request would use: a request
        is refused only if no configured provider can make it (then with the first
        provider's reason)."""
        first: InvalidInputError | None = None
        for provider in self.pool:
            try:
                return plan_options(MEMBERS_NAME, provider.capabilities, mode, prompt, wanted)
            except InvalidInputError as exc:
                first = first or exc
        assert first is not None
        raise first

    def callback_url(self, provider: VideoProvider, task: Task) -> str | None:
        if self._public_url and provider.capabilities.reports == "callback":
            return f"{self._public_url}/callbacks/{task.callback_token}"
        return None

    async def create(self, job: Job, *, exclude: Collection[str] = ()) -> Accepted:
        """Create the job at the first provider that takes it. A remix goes to the
        provider that made its source, or nowhere: the source id means nothing to any
        other."""
        task = job.task
        if job.remix_of is not None:
            exclude = {*exclude, *(n for n in self.pool.names if n != job.remix_at)}

        async def attempt(provider: VideoProvider) -> tuple[Submission, tuple[str, ...]]:
            if job.remix_of is not None:
                return await provider.remix(job.remix_of, task.prompt), ()
            planned = plan_options(
                MEMBERS_NAME, provider.capabilities, task.mode, task.prompt, job.options
            )
            if (
                job.image is not None
                and len(job.image.data) > provider.capabilities.max_image_bytes
            ):
                # Another provider may take a picture this large (the pool allows the largest).
                raise InvalidInputError("The picture is too large for the video service.")
            request = GenerationRequest(
                task.mode,
                task.prompt,
                planned.options,
                image=job.image,
                callback_url=self.callback_url(provider, task),
            )
            return await provider.submit(request), planned.notes

        return await self.pool.submit(attempt, exclude=exclude)

    def first_delay(self, provider: str, task: Task) -> float:
        return self.polling.of(provider).schedule_for(task.mode, task.options).first_delay
