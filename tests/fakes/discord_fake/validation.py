"""The checks Discord makes before it accepts a request, so bot bugs fail here as there.

Message bodies (content 2000, nonce 25, embed limits and the 6000 total, component rows and
``custom_id`` lengths, no empty messages, no ``content`` with IS_COMPONENTS_V2), upload
sizes (40005), command sync bodies (names, descriptions, option order, choices vs
autocomplete, 100 commands) and interaction callback data (defer flags, autocomplete choices,
modal title and rows). Failures come back as Discord's 400 "Invalid Form Body" (50035) with
per-path ``errors``. The rules are listed in FACTS.md §7 and §8.
"""

from __future__ import annotations

import re
from typing import Any

from .models import walk_components
from .protocol import EPHEMERAL, IS_COMPONENTS_V2, JSON
from .wire import Reply, Upload, err

COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")


class FormErrors:
    """Collects Discord "Invalid Form Body" (code 50035) errors keyed by path."""

    def __init__(self) -> None:
        self.errors: JSON = {}

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        node = self.errors
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_len(self, path: tuple[str | int, ...], value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def bad_len(self, path: tuple[str | int, ...], value: Any, low: int, high: int) -> None:
        size = len(value) if isinstance(value, str | list) else 0
        if not low <= size <= high:
            self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")

    def __bool__(self) -> bool:
        return bool(self.errors)


def form_error(errors: FormErrors) -> Reply:
    """Discord's 400 "Invalid Form Body" (code 50035) with the collected errors."""
    return err(400, "Invalid Form Body", 50035, errors.errors)


def validate_message(
    body: Any,
    uploads: list[Upload],
    *,
    require_content: bool,
    prefix: tuple[str | int, ...] = (),
) -> Reply | None:
    """Checks a message body (post, edit, followup, or a callback's ``data``); ``prefix`` is
    the path of the body in the request, for error keys."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return err(400, "400: Bad Request", 50035)
    errors = FormErrors()
    flags = int(body.get("flags") or 0)
    v2 = bool(flags & IS_COMPONENTS_V2)
    content = body.get("content")
    if v2 and content:
        errors.add(
            (*prefix, "content"),
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
        )
    errors.max_len((*prefix, "content"), content, 2000)
    nonce = body.get("nonce")
    if isinstance(nonce, str):
        errors.max_len((*prefix, "nonce"), nonce, 25)
    embeds = body.get("embeds") or []
    if isinstance(embeds, list):
        if len(embeds) > 10:
            errors.bad_len((*prefix, "embeds"), embeds, 0, 10)
        total = 0
        for i, embed in enumerate(embeds):
            if not isinstance(embed, dict):
                continue
            p = (*prefix, "embeds", i)
            errors.max_len((*p, "title"), embed.get("title"), 256)
            errors.max_len((*p, "description"), embed.get("description"), 4096)
            author = embed.get("author") or {}
            footer = embed.get("footer") or {}
            errors.max_len((*p, "author", "name"), author.get("name"), 256)
            errors.max_len((*p, "footer", "text"), footer.get("text"), 2048)
            fields = embed.get("fields") or []
            if len(fields) > 25:
                errors.bad_len((*p, "fields"), fields, 0, 25)
            for j, fld in enumerate(fields):
                name, value = fld.get("name"), fld.get("value")
                if not name:
                    errors.add(
                        (*p, "fields", j, "name"),
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                if not value:
                    errors.add(
                        (*p, "fields", j, "value"),
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                errors.max_len((*p, "fields", j, "name"), name, 256)
                errors.max_len((*p, "fields", j, "value"), value, 1024)
                total += len(str(name or "")) + len(str(value or ""))
            for text in (
                embed.get("title"),
                embed.get("description"),
                author.get("name"),
                footer.get("text"),
            ):
                total += len(str(text or ""))
        if total > 6000:
            errors.add(
                (*prefix, "embeds"),
                "MAX_EMBED_SIZE_EXCEEDED",
                "Embed size exceeds maximum size of 6000",
            )
    components = body.get("components") or []
    if isinstance(components, list) and not v2:
        if len(components) > 5:
            errors.bad_len((*prefix, "components"), components, 0, 5)
        for i, row in enumerate(components):
            inner = row.get("components") or [] if isinstance(row, dict) else []
            if len(inner) > 5:
                errors.bad_len((*prefix, "components", i, "components"), inner, 1, 5)
    for i, comp in enumerate(walk_components(components if isinstance(components, list) else [])):
        cid = comp.get("custom_id")
        if cid is not None and not 1 <= len(str(cid)) <= 100:
            errors.bad_len((*prefix, "components", i, "custom_id"), str(cid), 1, 100)
    if errors:
        return form_error(errors)
    if require_content and not (
        content
        or embeds
        or components
        or uploads
        or body.get("attachments")
        or body.get("sticker_ids")
        or body.get("poll")
    ):
        return err(400, "Cannot send an empty message", 50006)
    return None


def check_upload_sizes(uploads: list[Upload], limit: int) -> Reply | None:
    """413 / 40005 when any file is over ``limit`` (checked per attachment)."""
    if any(len(u.data) > limit for u in uploads):
        return err(413, "Request entity too large", 40005)
    return None


def validate_commands(body: Any, *, is_global: bool) -> Reply | None:
    """Checks a command sync body (a list of commands), as Discord does on PUT."""
    if not isinstance(body, list):
        return err(
            400,
            "Invalid Form Body",
            50035,
            {
                "_errors": [
                    {
                        "code": "LIST_TYPE_CONVERT",
                        "message": "Only iterables may be used in a ListType",
                    }
                ]
            },
        )
    errors = FormErrors()
    seen: set[tuple[int, str]] = set()
    counts: dict[int, int] = {}
    for i, cmd in enumerate(body):
        if not isinstance(cmd, dict):
            errors.add((i,), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            continue
        ctype = int(cmd.get("type") or 1)
        counts[ctype] = counts.get(ctype, 0) + 1
        name = str(cmd.get("name") or "")
        if (ctype, name) in seen:
            errors.add(
                (i, "name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique ({name})",
            )
        seen.add((ctype, name))
        if ctype == 1:
            if not COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
                errors.add(
                    (i, "name"),
                    "APPLICATION_COMMAND_INVALID_NAME",
                    f"Command name is invalid ({name!r})",
                )
            errors.bad_len((i, "description"), cmd.get("description") or "", 1, 100)
        else:
            errors.bad_len((i, "name"), name, 1, 32)
        validate_options(errors, (i, "options"), cmd.get("options") or [])
        if not is_global and cmd.get("contexts"):
            pass  # Discord ignores contexts on guild commands
    if counts.get(1, 0) > 100:
        errors.add(
            (),
            "APPLICATION_COMMANDS_LIMIT",
            "Maximum number of application commands reached (100)",
        )
    if errors:
        return form_error(errors)
    return None


def validate_options(errors: FormErrors, path: tuple[str | int, ...], options: list[Any]) -> None:
    """Checks one level of command options (recursing into groups and subcommands)."""
    if len(options) > 25:
        errors.bad_len(path, options, 0, 25)
    seen_optional = False
    names: set[str] = set()
    for j, opt in enumerate(options):
        if not isinstance(opt, dict):
            continue
        p = (*path, j)
        name = str(opt.get("name") or "")
        if not COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
            errors.add(
                (*p, "name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                f"Option name is invalid ({name!r})",
            )
        if name in names:
            errors.add(
                (*p, "name"),
                "APPLICATION_COMMAND_OPTIONS_DUPLICATE_NAME",
                "Option names must be unique",
            )
        names.add(name)
        errors.bad_len((*p, "description"), opt.get("description") or "", 1, 100)
        otype = int(opt.get("type") or 0)
        if otype in (1, 2):
            validate_options(errors, (*p, "options"), opt.get("options") or [])
            continue
        required = bool(opt.get("required"))
        if required and seen_optional:
            errors.add(
                (*p, "required"),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        seen_optional = seen_optional or not required
        choices = opt.get("choices") or []
        if len(choices) > 25:
            errors.bad_len((*p, "choices"), choices, 0, 25)
        if choices and opt.get("autocomplete"):
            errors.add(
                (*p, "autocomplete"),
                "APPLICATION_COMMAND_OPTION_CHOICES_AUTOCOMPLETE",
                "Autocomplete cannot be enabled on options with choices",
            )


def validate_callback(
    ctype: int, data: Any, uploads: list[Upload], upload_limit: int
) -> Reply | None:
    """Checks a callback's ``data``; ``upload_limit`` is the interaction's
    ``attachment_size_limit``."""
    if ctype in (4, 7):
        too_big = check_upload_sizes(uploads, upload_limit)
        return too_big or validate_message(
            data, uploads, require_content=ctype == 4, prefix=("data",)
        )
    errors = FormErrors()
    if not isinstance(data, dict):
        data = {}
    if ctype == 5 and int(data.get("flags") or 0) & ~EPHEMERAL:
        errors.add(
            ("data", "flags"),
            "INTERACTION_RESPONSE_FLAGS_INVALID",
            "Only EPHEMERAL is allowed on a deferred response",
        )
    if ctype == 8:
        choices = data.get("choices")
        if not isinstance(choices, list):
            errors.add(("data", "choices"), "BASE_TYPE_REQUIRED", "This field is required")
            choices = []
        if len(choices) > 25:
            errors.bad_len(("data", "choices"), choices, 0, 25)
        for i, choice in enumerate(choices):
            errors.bad_len(("data", "choices", i, "name"), str(choice.get("name") or ""), 1, 100)
            if isinstance(choice.get("value"), str):
                errors.max_len(("data", "choices", i, "value"), choice["value"], 100)
    if ctype == 9:
        errors.bad_len(("data", "custom_id"), str(data.get("custom_id") or ""), 1, 100)
        errors.bad_len(("data", "title"), str(data.get("title") or ""), 1, 45)
        errors.bad_len(("data", "components"), data.get("components") or [], 1, 5)
    return form_error(errors) if errors else None
