"""Logging for the whole process, with every configured secret scrubbed from every record.

discord.py and httpx log requests at DEBUG; a redacting filter on the handler is the
one place that guarantees a key or token never reaches a log file, whoever logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import discord

REDACTED = "[redacted]"


class SecretRedactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str, secrets: Iterable[str]) -> logging.Handler:
    """Configure the root logger once, the way discord.py formats its own lines."""
    handler = logging.StreamHandler()
    handler.addFilter(SecretRedactor(secrets))
    discord.utils.setup_logging(handler=handler, level=logging.getLevelName(level), root=True)
    # httpx logs every request URL at INFO: keep that for DEBUG runs only. aiosqlite logs
    # every statement with its parameters at DEBUG, which is noise and could carry
    # interaction tokens: never below INFO.
    if level != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    return handler
