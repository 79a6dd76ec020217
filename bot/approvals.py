"""Approval mode: a moderator approves or rejects a held request.

A request made while a server's approval mode is on is reserved (its quota held) and
then waits (`SoraService.reserve` holds it; the log channel gets Approve and Reject
buttons). This module is what those buttons do, independent of Discord:

    approve  record the decision (one store call), then send it to the provider as any
             request; tracking and delivery go on as usual
    reject   record the decision, fail the task and refund it (one store call); the
             notifier then tells the requester

A request nobody decides expires: the tracker does that when it comes due
(`APPROVAL_TIMEOUT_HOURS` after it was made), through the same store call.
Each decision happens once: a second click finds nothing pending and says who decided.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.domain import Approval, EffectiveLimits, Task, normalise_task_id
from bot.errors import BotError, TaskNotFoundError
from bot.modlog import LogEntry, LogKind
from bot.service import AttachmentRef, Checked, Reserved, SoraService, SubmitRequest, SubmitResult
from bot.store import Store
from bot.wording import describe_options


def decision_words(task: Task) -> str:
    """ "Approved by @mod", "Rejected by @mod", "Expired: nobody decided in time"."""
    match task.approval:
        case Approval.APPROVED:
            return f"Approved by <@{task.decided_by}>"
        case Approval.REJECTED:
            return f"Rejected by <@{task.decided_by}>"
        case Approval.EXPIRED:
            return "Expired: nobody decided in time"
        case _:
            return "Waiting for a moderator"


class AlreadyDecidedError(BotError):
    def __init__(self, task: Task) -> None:
        super().__init__(f"Request `{task.id}` was already decided: {decision_words(task)}.")
        self.task = task


@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision led to: the task after it, and for an approval either the
    provider's acceptance (`result`) or why it could not be sent (`error`, already
    refunded and posted for the requester)."""

    task: Task
    approved: bool
    result: SubmitResult | None = None
    error: BotError | None = None


class Approvals:
    def __init__(self, service: SoraService, store: Store, defaults: EffectiveLimits) -> None:
        self._service = service
        self._store = store
        self._defaults = defaults

    async def decide(
        self, guild_id: int, task_id: str, actor_id: int, *, approve: bool
    ) -> Decision:
        """Approve or reject a held request of `guild_id`. The caller checked that
        `actor_id` may manage the server. Raises `AlreadyDecidedError` for a request
        decided before, and `TaskNotFoundError` for anything that is not a held request
        of this server (whether or not it exists elsewhere)."""
        wanted = normalise_task_id(task_id)
        decision = Approval.APPROVED if approve else Approval.REJECTED
        task = await self._store.decide(wanted, guild_id, decision, actor_id)
        if task is None:
            current = await self._store.get_task(wanted)
            if current is None or current.guild_id != guild_id or current.approval is None:
                raise TaskNotFoundError(wanted or task_id)
            raise AlreadyDecidedError(current)
        await self._service.modlog.write(
            LogEntry(
                guild_id,
                LogKind.APPROVED if approve else LogKind.REJECTED,
                task_id=task.id,
                actor_id=actor_id,
                member_id=task.user_id,
                detail={"options": describe_options(task.options), "prompt": task.prompt},
            )
        )
        if not approve:
            return Decision(task, approved=False)
        try:
            result = await self._send(task)
        except BotError as exc:
            failed = await self._store.get_task(task.id)
            return Decision(failed or task, approved=True, error=exc)
        return Decision(result.task, approved=True, result=result)

    async def _send(self, task: Task) -> SubmitResult:
        """Send an approved request: rebuilt from the stored task (its picture is
        downloaded again), sent like any other; on failure refunded, with the failure
        posted where it was asked for (the member is no longer looking at their own
        answer)."""
        picture = (
            None
            if task.image_url is None
            else AttachmentRef(url=task.image_url, filename="the original picture", size=0)
        )
        request = SubmitRequest(
            guild_id=task.guild_id,
            channel_id=task.channel_id,
            user_id=task.user_id,
            mode=task.mode,
            prompt=task.prompt,
            attachment=picture,
            upload_limit=task.upload_limit,
        )
        source = (
            None
            if task.remix_of_task_id is None
            else await self._store.get_task(task.remix_of_task_id)
        )
        checked = Checked(
            request,
            task.options,
            (),
            remix_of=None if source is None else source.provider_task_id,
            remix_source_id=task.remix_of_task_id,
            remix_at=None if source is None else source.provider,
            logged=True,  # approval mode needs the log
        )
        quota = await self._store.quota_status(task.guild_id, task.user_id, self._defaults)
        reserved = Reserved(checked, task, quota)
        try:
            reserved = replace(reserved, checked=await self._service.read_image(checked))
        except BaseException as exc:
            await self._service.abandon(reserved, exc, post=True)
            raise
        return await self._service.send(reserved, post_failure=True)
