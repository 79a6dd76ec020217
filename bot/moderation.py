"""What moderators may change in their server, and the log entry each change leaves.

Every server setting has its method here: where videos may be made, default options,
quota limits and resets, role allowances, the moderation log channel, approval mode,
the server's own limits and the blocklist. The cogs check Manage Server before calling
(Discord cannot put that permission on a subcommand); this module checks the values,
makes one store call per change, and writes the moderation log entry
(`bot.modlog`). Nothing here speaks Discord: channels and roles are plain ids.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.domain import (
    Aspect,
    GenerationOptions,
    GuildRules,
    GuildSettings,
    Mode,
    Quality,
    QuotaLimits,
    QuotaStatus,
    QuotaUnit,
    RoleAllowance,
    Task,
)
from bot.errors import InvalidInputError
from bot.governance import MAX_ALLOWANCE, MAX_PHRASES, normalise_phrase
from bot.modlog import LogEntry, LogKind, ModLog
from bot.providers.base import VideoProvider, plan_options
from bot.settings import Settings
from bot.store import Store
from bot.wording import describe_options


@dataclass(frozen=True, slots=True)
class QuotaChange:
    before: QuotaStatus
    after: QuotaStatus


@dataclass(frozen=True, slots=True)
class RulesChange:
    before: GuildRules
    after: GuildRules


class ModerationService:
    def __init__(
        self, settings: Settings, store: Store, provider: VideoProvider, modlog: ModLog
    ) -> None:
        self._settings = settings
        self._store = store
        self._provider = provider
        self.modlog = modlog

    async def _action(
        self, guild_id: int, actor_id: int, what: str, member_id: int | None = None
    ) -> None:
        await self.modlog.write(
            LogEntry(
                guild_id,
                LogKind.ACTION,
                actor_id=actor_id,
                member_id=member_id,
                detail={"action": what},
            )
        )

    async def settings(self, guild_id: int) -> GuildSettings:
        """Everything `/sora settings show` lists, from one store call."""
        return await self._store.guild_settings(guild_id)

    # Where, and with which defaults

    async def allowed_channels(self, guild_id: int) -> frozenset[int]:
        return (await self._store.guild_settings(guild_id)).allowed_channel_ids

    async def allow_channel(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        added = await self._store.add_allowed_channel(guild_id, channel_id, actor_id)
        if added:
            await self._action(guild_id, actor_id, f"allowed video commands in <#{channel_id}>")
        return added

    async def disallow_channel(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        removed = await self._store.remove_allowed_channel(guild_id, channel_id)
        if removed:
            await self._action(
                guild_id, actor_id, f"removed <#{channel_id}> from the allowed channels"
            )
        return removed

    async def set_default_options(
        self,
        guild_id: int,
        actor_id: int,
        *,
        aspect: Aspect | None,
        duration: int | None,
        quality: Quality | None,
    ) -> GenerationOptions:
        current = (
            await self._store.guild_settings(guild_id)
        ).default_options or GenerationOptions()
        wanted = replace(
            current,
            aspect=aspect or current.aspect,
            duration_seconds=duration or current.duration_seconds,
            quality=quality or current.quality,
        )
        planned = plan_options(
            self._provider.display_name, self._provider.capabilities, Mode.TEXT, "check", wanted
        )
        await self._store.set_default_options(guild_id, planned.options)
        await self._action(
            guild_id, actor_id, f"set the default options to {describe_options(planned.options)}"
        )
        return planned.options

    # Quota

    async def quota_status(
        self, guild_id: int, user_id: int, role_ids: frozenset[int] = frozenset()
    ) -> QuotaStatus:
        return await self._store.quota_status(
            guild_id, user_id, self._settings.default_limits, role_ids
        )

    async def set_quota(
        self,
        guild_id: int,
        actor_id: int,
        *,
        daily: int | None = None,
        monthly: int | None = None,
        user_daily: int | None = None,
        unit: QuotaUnit | None = None,
    ) -> QuotaChange:
        changes = QuotaLimits(daily=daily, monthly=monthly, user_daily=user_daily, unit=unit)
        if changes == QuotaLimits():
            raise InvalidInputError(
                "Tell me what to change: give at least one of `daily`, `monthly`, "
                "`user_daily` or `unit`."
            )
        for name, value in (("daily", daily), ("monthly", monthly), ("user_daily", user_daily)):
            if value is not None and value < 0:
                raise InvalidInputError(f"`{name}` must be 0 or more (0 turns generation off).")
        before = await self.quota_status(guild_id, actor_id)
        await self._store.update_quota_limits(guild_id, changes)
        after = await self.quota_status(guild_id, actor_id)
        said = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("daily", daily),
                ("monthly", monthly),
                ("per-member daily", user_daily),
                ("unit", None if unit is None else unit.value),
            )
            if value is not None
        )
        await self._action(guild_id, actor_id, f"set the quota: {said}")
        return QuotaChange(before=before, after=after)

    async def reset_user(self, guild_id: int, user_id: int, actor_id: int) -> tuple[int, int]:
        videos, seconds = await self._store.reset_user_usage(guild_id, user_id, actor_id)
        await self._action(
            guild_id,
            actor_id,
            f"cleared <@{user_id}>'s usage for today ({videos} videos, {seconds} s)",
            member_id=user_id,
        )
        return videos, seconds

    # Role allowances

    async def set_role_allowance(
        self, guild_id: int, role_id: int, daily: int, actor_id: int
    ) -> int | None:
        """Returns the role's previous allowance (None: it had none)."""
        if not 0 <= daily <= MAX_ALLOWANCE:
            raise InvalidInputError(f"`daily` must be between 0 and {MAX_ALLOWANCE:,}.")
        before = await self._store.set_role_allowance(guild_id, role_id, daily, actor_id)
        was = "" if before is None else f" (was {before})"
        await self._action(
            guild_id, actor_id, f"set the daily allowance of <@&{role_id}> to {daily}{was}"
        )
        return before

    async def clear_role_allowance(self, guild_id: int, role_id: int, actor_id: int) -> int | None:
        before = await self._store.clear_role_allowance(guild_id, role_id)
        if before is not None:
            await self._action(
                guild_id, actor_id, f"removed the daily allowance of <@&{role_id}> (was {before})"
            )
        return before

    async def role_allowances(self, guild_id: int) -> tuple[RoleAllowance, ...]:
        return (await self._store.guild_settings(guild_id)).rules.role_allowances

    # The moderation log, approval mode, the server's limits

    async def set_log_channel(self, guild_id: int, channel_id: int | None, actor_id: int) -> None:
        """Set the log channel, or turn the log off (refused while approval mode needs
        it: held requests would have nowhere to be decided)."""
        rules = (await self._store.guild_settings(guild_id)).rules
        if channel_id is None:
            if rules.approval:
                raise InvalidInputError(
                    "Approval mode needs the log channel for its Approve and Reject "
                    "buttons. Turn it off first with `/sora settings approval off`."
                )
            if rules.log_channel_id is not None:
                # Written before the channel is cleared, so it reaches the old channel.
                await self._action(guild_id, actor_id, "turned the moderation log off")
        await self._store.set_log_channel(guild_id, channel_id)

    async def log_channel_problem(self, guild_id: int, problem: str | None) -> bool:
        """Record whether the log channel works (True if that changed)."""
        return await self._store.set_log_problem(guild_id, problem)

    async def set_approval(self, guild_id: int, on: bool, actor_id: int) -> None:
        rules = (await self._store.guild_settings(guild_id)).rules
        if on and rules.log_channel_id is None:
            raise InvalidInputError(
                "Approval mode needs a log channel, where moderators get the Approve and "
                "Reject buttons. Set one first with `/sora settings log-channel`."
            )
        await self._store.set_approval(guild_id, on)
        if rules.approval != on:
            await self._action(guild_id, actor_id, f"turned approval mode {'on' if on else 'off'}")

    async def set_server_limits(
        self,
        guild_id: int,
        actor_id: int,
        *,
        max_duration: int | None,
        high_quality: bool | None,
    ) -> RulesChange:
        """`max_duration` 0 removes the length limit; None leaves a setting as it is."""
        before = (await self._store.guild_settings(guild_id)).rules
        if max_duration is not None and max_duration < 0:
            raise InvalidInputError("`max_duration` must be 0 (no limit) or more seconds.")
        after = replace(
            before,
            max_duration=before.max_duration if max_duration is None else (max_duration or None),
            high_quality=before.high_quality if high_quality is None else high_quality,
        )
        await self._store.set_server_limits(guild_id, after.max_duration, after.high_quality)
        if after != before:
            longest = "no limit" if after.max_duration is None else f"{after.max_duration} s"
            await self._action(
                guild_id,
                actor_id,
                f"set the limits: longest video {longest}, high quality "
                f"{'allowed' if after.high_quality else 'not allowed'}",
            )
        return RulesChange(before, after)

    # The blocklist

    async def block_phrase(self, guild_id: int, phrase: str, actor_id: int) -> bool:
        clean = normalise_phrase(phrase)
        rules = (await self._store.guild_settings(guild_id)).rules
        if clean not in rules.blocked_phrases and len(rules.blocked_phrases) >= MAX_PHRASES:
            raise InvalidInputError(
                f"The blocklist holds at most {MAX_PHRASES} phrases; remove some first."
            )
        added = await self._store.add_blocked_phrase(guild_id, clean, actor_id)
        if added:
            # The phrase itself stays out of the log: the log channel may be read by
            # more people than the blocklist's keepers.
            await self._action(guild_id, actor_id, "added a phrase to the blocklist")
        return added

    async def unblock_phrase(self, guild_id: int, phrase: str, actor_id: int) -> bool:
        removed = await self._store.remove_blocked_phrase(guild_id, normalise_phrase(phrase))
        if removed:
            await self._action(guild_id, actor_id, "removed a phrase from the blocklist")
        return removed

    async def blocked_phrases(self, guild_id: int) -> tuple[str, ...]:
        return (await self._store.guild_settings(guild_id)).rules.blocked_phrases

    # Moderator acts on members' videos

    async def deleted_video(self, task: Task, actor_id: int) -> None:
        """A moderator deleted someone else's posted video."""
        if actor_id != task.user_id:
            await self.modlog.write(
                LogEntry(
                    task.guild_id,
                    LogKind.ACTION,
                    task_id=task.id,
                    actor_id=actor_id,
                    member_id=task.user_id,
                    detail={"action": f"deleted <@{task.user_id}>'s video {task.id}"},
                )
            )
