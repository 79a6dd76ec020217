"""Test doubles for external services."""

from .discord_fake import (
    ALL_PERMISSIONS,
    DEFAULT_APP_PERMISSIONS,
    EPHEMERAL,
    LOADING,
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    FaultRule,
    RecordedRequest,
    message_text,
    run_bot,
)

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_APP_PERMISSIONS",
    "EPHEMERAL",
    "LOADING",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FaultRule",
    "RecordedRequest",
    "message_text",
    "run_bot",
]
