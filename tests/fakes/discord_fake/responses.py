"""How the bot answers an interaction: the callback, followups and ``@original``.

Models the rules discord.py runs into: one callback per interaction, within the deadline
(else 10062; a second one gets 40060), only the callback types the interaction type allows;
``with_response=1`` returns ``{"interaction", "resource"?}`` (a 204 would break discord.py);
a type-5 defer creates a LOADING "thinking" message, and the first followup edits it, keeping
its ephemeral state; followups and edits use the webhook token, which dies after 15 minutes
(401, 50027). FACTS.md §6.
"""

from __future__ import annotations

import asyncio
import copy

from .interactions import FakeInteraction
from .messages import MessagesMixin
from .protocol import (
    ALLOWED_CALLBACKS,
    EPHEMERAL,
    JSON,
    LOADING,
    SENDABLE_FLAGS,
)
from .validation import (
    FormErrors,
    check_upload_sizes,
    form_error,
    validate_callback,
    validate_message,
)
from .wire import Call, Reply, err


class ResponsesMixin(MessagesMixin):
    """Interaction callback, followup and ``@original`` routes."""

    async def _r_callback(self, call: Call) -> Reply:
        inter = self._interactions_by_id.get(int(call.params["iid"]))
        if inter is None or inter.token != call.params["token"]:
            return err(404, "Unknown interaction", 10062)
        now = asyncio.get_running_loop().time()
        if inter.first_callback_at is None:
            inter.first_callback_at = now - inter.dispatched_at
        if inter.acknowledged:
            return err(400, "Interaction has already been acknowledged.", 40060)
        if (
            self.interaction_timeout is not None
            and now - inter.dispatched_at > self.interaction_timeout
        ):
            inter.late = True
            inter._signal.fire()
            return err(404, "Unknown interaction", 10062)
        body = call.body
        if not isinstance(body, dict) or "type" not in body:
            errors = FormErrors()
            errors.add(("type",), "BASE_TYPE_REQUIRED", "This field is required")
            return form_error(errors)
        ctype = int(body["type"])
        data = body.get("data") or {}
        if ctype not in ALLOWED_CALLBACKS.get(inter.type, frozenset()) or (
            ctype in (6, 7) and inter.original is None
        ):
            errors = FormErrors()
            errors.add(
                ("type",),
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Invalid interaction callback type {ctype}",
            )
            return form_error(errors)
        invalid = validate_callback(ctype, data, call.uploads, inter.attachment_size_limit)
        if invalid is not None:
            return invalid

        inter.callbacks.append(body)
        msg: JSON | None = None
        eph = bool(int(data.get("flags") or 0) & EPHEMERAL)
        guild = inter.guild
        if ctype == 4:
            msg = self._new_message(
                channel_id=inter.channel_id,
                author=self.bot_user,
                body=data,
                uploads=call.uploads,
                msg_type=20,
                flags=int(data.get("flags") or 0) & SENDABLE_FLAGS,
                guild=guild,
                interaction=inter,
            )
            inter.original = msg
            inter.messages[int(msg["id"])] = msg
            inter._final = msg
            self._dispatch_message("MESSAGE_CREATE", msg, guild)
        elif ctype == 5:
            msg = self._new_message(
                channel_id=inter.channel_id,
                author=self.bot_user,
                body={},
                uploads=[],
                msg_type=20,
                flags=LOADING | (EPHEMERAL if eph else 0),
                guild=guild,
                interaction=inter,
            )
            inter.original = msg
            inter.messages[int(msg["id"])] = msg
            self._dispatch_message("MESSAGE_CREATE", msg, guild)
        elif ctype == 7 and inter.original is not None:
            msg = inter.original
            eph = bool(int(msg.get("flags") or 0) & EPHEMERAL)
            self._apply_edit(msg, data, call.uploads)
            inter._final = msg
            self._dispatch_message("MESSAGE_UPDATE", msg, guild)
        elif ctype == 9:
            inter.modal = copy.deepcopy(data)
        inter._signal.fire()

        if str(call.rec.query.get("with_response", "")).lower() not in ("1", "true"):
            return Reply(204)
        info: JSON = {"id": str(inter.id), "type": inter.type}
        reply: JSON = {"interaction": info}
        if ctype in (4, 5, 7) and msg is not None:
            info.update(
                response_message_id=msg["id"],
                response_message_loading=ctype == 5,
                response_message_ephemeral=eph,
            )
        if ctype in (4, 7) and msg is not None:
            reply["resource"] = {"type": ctype, "message": copy.deepcopy(msg)}
        elif ctype in (5, 6):
            reply["resource"] = {"type": ctype}
        return Reply(200, reply)

    def _webhook_interaction(self, call: Call) -> tuple[FakeInteraction | None, Reply | None]:
        if int(call.params["app"]) != self.app_id:
            return None, err(404, "Unknown Webhook", 10015)
        inter = self._interactions_by_token.get(call.params["token"])
        if inter is None:
            return None, err(401, "Invalid Webhook Token", 50027)
        age = asyncio.get_running_loop().time() - inter.dispatched_at
        if inter.expired or age > self.webhook_token_ttl:
            return None, err(401, "Invalid Webhook Token", 50027)
        if not inter.acknowledged:
            return None, err(404, "Unknown Webhook", 10015)
        return inter, None

    def _webhook_message(self, inter: FakeInteraction, mid: str) -> JSON | None:
        if mid == "@original":
            msg = inter.original
        else:
            msg = inter.messages.get(int(mid))
            if msg is None and inter.original is not None and inter.original["id"] == mid:
                msg = inter.original
        if msg is None or int(msg["id"]) in inter.deleted:
            return None
        return msg

    async def _r_followup(self, call: Call) -> Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or err(404, "Unknown Webhook", 10015)
        body = call.body if isinstance(call.body, dict) else {}
        invalid = check_upload_sizes(call.uploads, inter.attachment_size_limit) or validate_message(
            call.body, call.uploads, require_content=True
        )
        if invalid is not None:
            return invalid
        inter.followups.append(body)
        original = inter.original
        if (
            original is not None
            and int(original.get("flags") or 0) & LOADING
            and int(original["id"]) not in inter.deleted
        ):
            # The first followup after a type-5 defer edits the "thinking" message, keeping
            # the defer's ephemeral state.
            self._apply_edit(
                original, {k: v for k, v in body.items() if k != "flags"}, call.uploads
            )
            msg = original
            event = "MESSAGE_UPDATE"
        else:
            msg = self._new_message(
                channel_id=inter.channel_id,
                author=self.bot_user,
                body=body,
                uploads=call.uploads,
                msg_type=20,
                flags=int(body.get("flags") or 0) & SENDABLE_FLAGS,
                guild=inter.guild,
                interaction=inter,
            )
            inter.messages[int(msg["id"])] = msg
            inter.followup_messages.append(msg)
            event = "MESSAGE_CREATE"
        if inter._final is None:
            inter._final = msg
        self._dispatch_message(event, msg, inter.guild)
        inter._signal.fire()
        if str(call.rec.query.get("wait", "")).lower() not in ("1", "true"):
            return Reply(204)
        return Reply(200, copy.deepcopy(msg))

    async def _r_webhook_get(self, call: Call) -> Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or err(404, "Unknown Webhook", 10015)
        msg = self._webhook_message(inter, call.params["mid"])
        return Reply(200, copy.deepcopy(msg)) if msg else err(404, "Unknown Message", 10008)

    async def _r_webhook_edit(self, call: Call) -> Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or err(404, "Unknown Webhook", 10015)
        msg = self._webhook_message(inter, call.params["mid"])
        if msg is None:
            return err(404, "Unknown Message", 10008)
        body = call.body if isinstance(call.body, dict) else {}
        invalid = check_upload_sizes(call.uploads, inter.attachment_size_limit) or validate_message(
            body, call.uploads, require_content=False
        )
        if invalid is not None:
            return invalid
        inter.edits.append(body)
        self._apply_edit(msg, body, call.uploads)
        if inter._final is None:
            inter._final = msg
        self._dispatch_message("MESSAGE_UPDATE", msg, inter.guild)
        inter._signal.fire()
        return Reply(200, copy.deepcopy(msg))

    async def _r_webhook_delete(self, call: Call) -> Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or err(404, "Unknown Webhook", 10015)
        msg = self._webhook_message(inter, call.params["mid"])
        if msg is None:
            return err(404, "Unknown Message", 10008)
        inter.deleted.add(int(msg["id"]))
        self.deleted_messages.add(int(msg["id"]))
        if not int(msg.get("flags") or 0) & EPHEMERAL:
            self._dispatch_delete(msg, inter.guild)
        inter._signal.fire()
        return Reply(204)
