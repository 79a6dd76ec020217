"""Application commands: what the bot syncs, and the command data a user's invocation sends.

Models ``PUT``/``GET`` of global and guild commands (validated, echoed with ``id`` and
``application_id``, ids stable per name across syncs) and builds the ``data`` of an
APPLICATION_COMMAND interaction: nested group/subcommand options, inferred option types, and
``resolved`` entries for attachment, user, role and channel values (discord.py matches
commands by name and needs each such value to be its ``resolved`` key). FACTS.md §5, §7.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .protocol import ALL_PERMISSIONS, JSON
from .state import FakeState
from .validation import validate_commands
from .wire import Call, Reply, err

if TYPE_CHECKING:
    from .models import FakeGuild


def infer_option_type(value: Any) -> int:
    """The option type a Python value stands for (dicts: attachment, user, role, channel)."""
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    if isinstance(value, str):
        return 3
    if isinstance(value, dict):
        if "filename" in value:
            return 11
        if "username" in value:
            return 6
        if "permissions" in value and ("color" in value or "colors" in value):
            return 8
        if "type" in value and "name" in value:
            return 7
    raise TypeError(f"cannot infer an application command option type for {value!r}")


class CommandsMixin(FakeState):
    """Command sync routes and command-data builders."""

    async def wait_commands_synced(
        self, guild_id: int | None = None, timeout: float = 10
    ) -> list[JSON]:
        """Until a PUT of global (``guild_id=None``) or that guild's commands happened."""

        def synced() -> list[JSON] | None:
            for scope, commands in reversed(self.command_syncs):
                if scope == guild_id:
                    return commands
            return None

        return await self._signal.wait_for(
            synced, timeout, lambda: f"command sync for guild {guild_id}" + self._recent()
        )

    def find_command(
        self, name: str, guild: FakeGuild | None = None, *, command_type: int = 1
    ) -> JSON | None:
        """A synced command by name: the guild's first (if given), then global."""
        if guild is not None:
            for cmd in self.guild_commands.get(guild.id, []):
                if cmd["name"] == name and int(cmd.get("type", 1)) == command_type:
                    return cmd
        for cmd in self.global_commands:
            if cmd["name"] == name and int(cmd.get("type", 1)) == command_type:
                return cmd
        return None

    @staticmethod
    def option(name: str, value: Any, type: int | None = None) -> JSON:
        """One leaf option; the type is inferred (str 3, bool 5, int 4, float 10, attachment 11,
        user 6, role 8, channel 7) unless given."""
        return {"type": type or infer_option_type(value), "name": name, "value": value}

    @staticmethod
    def sub(*path: str, **values: Any) -> list[JSON]:
        """Options for ``/cmd [group] sub key=value...``.

        ``sub("quota", "set", daily=5)`` -> group "quota" / subcommand "set" / daily (type 4);
        ``sub("ping")`` -> subcommand "ping"; ``sub(prompt="cat")`` -> top-level options only.
        Attachment/user/role/channel dicts are accepted as values and resolved by send_command.
        """
        leaves = [CommandsMixin.option(name, value) for name, value in values.items()]
        if not path:
            return leaves
        if len(path) > 2:
            raise ValueError("at most a group and a subcommand")
        node: JSON = {"type": 1, "name": path[-1], "options": leaves}
        if len(path) == 2:
            node = {"type": 2, "name": path[0], "options": [node]}
        return [node]

    def _resolve_options(
        self, options: list[JSON], guild: FakeGuild | None, resolved: JSON
    ) -> list[JSON]:
        out: list[JSON] = []
        for raw in options:
            opt = dict(raw)
            otype = int(opt.get("type", 0))
            if otype in (1, 2):
                opt["options"] = self._resolve_options(
                    list(opt.get("options") or []), guild, resolved
                )
            elif isinstance(opt.get("value"), dict):
                opt["value"] = self._resolve_value(otype, opt["value"], guild, resolved)
            elif otype in (6, 7, 8, 9, 11) and isinstance(opt.get("value"), int):
                opt["value"] = str(opt["value"])
            out.append(opt)
        return out

    def _resolve_value(
        self, otype: int, value: JSON, guild: FakeGuild | None, resolved: JSON
    ) -> str:
        vid = str(value["id"])
        if otype == 11:
            resolved.setdefault("attachments", {})[vid] = copy.deepcopy(value)
        elif otype in (6, 9) and "username" in value:
            resolved.setdefault("users", {})[vid] = copy.deepcopy(value)
            member = guild.get_member(int(vid)) if guild else None
            if member is not None:
                resolved.setdefault("members", {})[vid] = {
                    **{k: copy.deepcopy(v) for k, v in member.items() if k != "user"},
                    "permissions": "0",
                }
        elif otype in (8, 9):
            resolved.setdefault("roles", {})[vid] = copy.deepcopy(value)
        elif otype == 7:
            resolved.setdefault("channels", {})[vid] = {
                "id": vid,
                "type": value["type"],
                "name": value.get("name"),
                "permissions": str(ALL_PERMISSIONS),
                "guild_id": value.get("guild_id"),
                "parent_id": value.get("parent_id"),
                "last_message_id": None,
                "flags": 0,
            }
        return vid

    def _command_data(
        self,
        guild: FakeGuild | None,
        name: str,
        options: list[JSON] | None,
        resolved: JSON | None,
        command_type: int,
    ) -> JSON:
        cmd = self.find_command(name, guild, command_type=command_type)
        auto_resolved: JSON = {}
        data: JSON = {
            "id": cmd["id"] if cmd else str(self.new_id()),
            "name": name,
            "type": command_type,
            "options": self._resolve_options(copy.deepcopy(options or []), guild, auto_resolved),
        }
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        for key, values in (resolved or {}).items():
            auto_resolved.setdefault(key, {}).update(copy.deepcopy(values))
        if auto_resolved:
            data["resolved"] = auto_resolved
        return data

    async def _r_put_commands(self, call: Call) -> Reply:
        if int(call.params["app"]) != self.app_id:
            return err(403, "Missing Access", 50001)
        guild_id = int(call.params["guild"]) if call.params.get("guild") else None
        if guild_id is not None and guild_id not in self.guilds:
            return err(403, "Missing Access", 50001)
        invalid = validate_commands(call.body, is_global=guild_id is None)
        if invalid is not None:
            return invalid
        version = str(self.new_id())
        echoed: list[JSON] = []
        for cmd in call.body:
            ctype = int(cmd.get("type") or 1)
            key = (guild_id, ctype, cmd["name"])
            cid = self._command_ids.setdefault(key, self.new_id())
            out = copy.deepcopy(cmd)
            perms = cmd.get("default_member_permissions")
            out.update(
                id=str(cid),
                application_id=str(self.app_id),
                version=version,
                type=ctype,
                description=cmd.get("description", ""),
                default_member_permissions=None if perms is None else str(perms),
                nsfw=bool(cmd.get("nsfw", False)),
            )
            if guild_id is not None:
                out["guild_id"] = str(guild_id)
                out.pop("dm_permission", None)
                out["contexts"] = None
            else:
                out["dm_permission"] = (
                    cmd.get("dm_permission", True) if cmd.get("dm_permission") is not None else True
                )
                out["contexts"] = cmd.get("contexts")
            out["integration_types"] = cmd.get("integration_types") or [0]
            echoed.append(out)
        if guild_id is None:
            self.global_commands = echoed
        else:
            self.guild_commands[guild_id] = echoed
        self.command_syncs.append((guild_id, echoed))
        return Reply(200, copy.deepcopy(echoed))

    async def _r_get_commands(self, call: Call) -> Reply:
        if int(call.params["app"]) != self.app_id:
            return err(403, "Missing Access", 50001)
        if call.params.get("guild"):
            guild_id = int(call.params["guild"])
            if guild_id not in self.guilds:
                return err(403, "Missing Access", 50001)
            return Reply(200, copy.deepcopy(self.guild_commands.get(guild_id, [])))
        return Reply(200, copy.deepcopy(self.global_commands))
