"""The bot's configuration: one pydantic-settings class, read from the environment and `.env`.

Nothing here runs at import time: `main` calls `load_settings()` once and hands the
result down, so tests build the same object with other values and a bad setting is
reported once, cleanly, before anything connects.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain import EffectiveLimits, QuotaUnit
from bot.errors import ConfigurationError

ProviderName = Literal["openai", "apixo", "sora2api", "soravideo", "ulazai", "demo"]
PROVIDERS_WITH_KEYS: tuple[ProviderName, ...] = (
    "openai",
    "apixo",
    "sora2api",
    "soravideo",
    "ulazai",
)
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # Discord
    discord_token: SecretStr
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    discord_guild_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # Providers (SORA_PROVIDER comes after the keys so its check can see them)
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    apixo_api_key: SecretStr | None = None
    apixo_base_url: str = "https://api.apixo.ai/api/v1"
    sora2api_api_key: SecretStr | None = None
    sora2api_base_url: str = "https://api.sora2api.ai/api/v1/sora2"
    soravideo_api_key: SecretStr | None = None
    soravideo_base_url: str = "https://soravideo.art/api/v1"
    ulazai_api_key: SecretStr | None = None
    ulazai_base_url: str = "https://ulazai.com/api/v1"
    openai_webhook_secret: SecretStr | None = None
    demo_generation_seconds: float = Field(default=20.0, gt=0, le=3600)
    sora_provider: ProviderName = "demo"

    # Storage
    database_url: str = "sqlite:///data/sora-bot.sqlite3"

    # Quotas used by servers whose moderators have not set their own
    default_daily_quota: int = Field(default=20, ge=0)
    default_monthly_quota: int = Field(default=300, ge=0)
    default_user_daily_quota: int | None = Field(default=5, ge=0)
    default_quota_unit: QuotaUnit = QuotaUnit.VIDEOS

    # Delivery: following tasks to the end
    poll_first_delay_seconds: float | None = Field(default=None, gt=0)
    poll_interval_seconds: float | None = Field(default=None, gt=0)
    task_max_age_minutes: float = Field(default=60.0, gt=0)
    tracker_concurrency: int = Field(default=16, ge=1, le=1000)
    webhook_listen: str | None = None
    webhook_public_url: str | None = None
    metrics_token: SecretStr | None = None

    log_level: LogLevel = "INFO"

    @field_validator("discord_guild_ids", mode="before")
    @classmethod
    def _split_guild_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "default_user_daily_quota",
        "discord_gateway_url",
        "openai_api_key",
        "apixo_api_key",
        "sora2api_api_key",
        "soravideo_api_key",
        "ulazai_api_key",
        "openai_webhook_secret",
        "webhook_listen",
        "webhook_public_url",
        "metrics_token",
        "poll_first_delay_seconds",
        "poll_interval_seconds",
        mode="before",
    )
    @classmethod
    def _blank_means_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() == "":
            return None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "discord_api_base",
        "openai_base_url",
        "apixo_base_url",
        "sora2api_base_url",
        "soravideo_base_url",
        "ulazai_base_url",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value

    @field_validator("webhook_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 0.0.0.0:8080")
        return value

    @field_validator("webhook_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return None if value is None else value.rstrip("/")

    @property
    def listen_address(self) -> tuple[str, int] | None:
        if self.webhook_listen is None:
            return None
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("openai_webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked here, not when the adapter is built, so a pasted-wrong secret is one
        readable line at start (exit 2) rather than a traceback."""
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw.startswith("whsec_"):
            raise ValueError("must start with whsec_ (copy it from the OpenAI dashboard)")
        try:
            key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not a valid whsec_ secret (base64 after the prefix)") from None
        if not key:
            raise ValueError("is not a valid whsec_ secret (nothing after the prefix)")
        return SecretStr(raw)

    @field_validator("discord_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value.startswith("sqlite:///") or value == "sqlite://:memory:":
            return value
        if value.startswith(("postgresql://", "postgres://")):
            raise ValueError("PostgreSQL is not supported yet; use a sqlite:/// URL")
        raise ValueError("must be a sqlite:/// URL, e.g. sqlite:///data/sora-bot.sqlite3")

    @field_validator("sora_provider")
    @classmethod
    def _active_provider_has_key(cls, value: ProviderName, info: ValidationInfo) -> ProviderName:
        if value in PROVIDERS_WITH_KEYS:
            key = info.data.get(f"{value}_api_key")
            if key is None or not key.get_secret_value().strip():
                raise ValueError(f"'{value}' needs {value.upper()}_API_KEY to be set")
        return value

    def api_key(self, provider: ProviderName) -> SecretStr | None:
        if provider == "demo":
            return None
        key: SecretStr | None = getattr(self, f"{provider}_api_key")
        if key is None or not key.get_secret_value().strip():
            return None
        return key

    def base_url(self, provider: ProviderName) -> str | None:
        if provider == "demo":
            return None
        url: str = getattr(self, f"{provider}_base_url")
        return url

    def urls(self) -> list[str]:
        """Every configured address, for `check` to show and the log filter to scrub."""
        values = [self.discord_api_base, self.discord_gateway_url, self.webhook_public_url]
        values += [self.base_url(name) for name in PROVIDERS_WITH_KEYS]
        values.append(self.database_url)
        return [v for v in values if v]

    def secret_values(self) -> list[str]:
        """Every secret the configuration holds, for the log filter: tokens, keys, the
        webhook secret (whole and its key part), and passwords inside configured URLs."""
        values = [self.discord_token.get_secret_value()]
        for name in PROVIDERS_WITH_KEYS:
            key = self.api_key(name)
            if key is not None:
                values.append(key.get_secret_value())
        for secret in (self.openai_webhook_secret, self.metrics_token):
            if secret is not None:
                values.append(secret.get_secret_value())
        if self.openai_webhook_secret is not None:
            values.append(self.openai_webhook_secret.get_secret_value().removeprefix("whsec_"))
        for url in self.urls():
            try:
                parts = urlsplit(url)
                userinfo = [parts.password or parts.username or ""]
            except ValueError:
                continue
            values += [v for v in userinfo if v]
        return values

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        if self.database_url == "sqlite://:memory:":
            return None
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def default_limits(self) -> EffectiveLimits:
        return EffectiveLimits(
            daily=self.default_daily_quota,
            monthly=self.default_monthly_quota,
            user_daily=self.default_user_daily_quota,
            unit=self.default_quota_unit,
        )


def load_settings(*, discord_required: bool = True, **overrides: object) -> Settings:
    """Build the settings, turning pydantic's report into one readable message.

    The message names each bad setting by its environment variable and never echoes
    a value, because the value may be a secret. `generate` talks to a provider only, so
    it runs without a Discord token (an operator tries a key before inviting the bot).
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = [
            error
            for error in exc.errors(include_input=False, include_url=False)
            if discord_required or tuple(error["loc"]) != ("discord_token",)
        ]
        if errors:
            raise ConfigurationError(describe_errors(errors)) from None
    return Settings(discord_token="unused-without-discord", **overrides)  # type: ignore[arg-type]


def describe_errors(errors: list[ErrorDetails]) -> str:
    lines = []
    for error in errors:
        field, *rest = error["loc"] or ("",)
        location = str(field).upper()
        if rest and isinstance(rest[0], int):
            location += f" (item {rest[0] + 1})"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        lines.append(f"  - {location}: {message}" if location else f"  - {message}")
    return "Configuration problems:\n" + "\n".join(lines)


def redact_url(url: str) -> str:
    """`url` with any password in it replaced, for output an operator may paste in a
    support thread (`check` prints the configured addresses)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(unreadable URL)"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    # A lone user name in a URL is often a token (https://TOKEN@proxy): mask it too.
    userinfo = f"{parts.username or ''}:***" if password else "***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
