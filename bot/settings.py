"""The bot's configuration: one pydantic-settings class, read from the environment and `.env`.

Nothing here runs at import time: `main` calls `load_settings()` once and hands the
result down, so tests build the same object with other values and a bad setting is
reported once, cleanly, before anything connects.

The bot's own settings are fields here. Each provider's (its key, address and extras)
are declared by its adapter (`bot.providers.config`) and read by `Settings` from the
same places, for every provider the registry lists: `settings.provider_settings()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode

from bot.domain import EffectiveLimits, QuotaUnit
from bot.errors import ConfigurationError
from bot.providers.config import SOURCES, ProviderSettings, load_provider_settings
from bot.providers.registry import DEFAULT_PROVIDER, PROVIDERS, provider_names

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ProviderChoice(BaseSettings):
    """SORA_PROVIDER alone, from the same places: the chosen provider's key is checked
    even when other settings are wrong, so one message names every problem."""

    model_config = SOURCES

    sora_provider: str = DEFAULT_PROVIDER


class Settings(BaseSettings):
    model_config = SOURCES

    # Discord
    discord_token: SecretStr
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    discord_guild_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Sharding, for a bot in many servers run as several processes: the total number of
    # shards, and the ones this process runs (default: all of them). With neither, one
    # process runs the shards Discord recommends. Only the process with shard 0 syncs
    # the commands.
    shard_count: int | None = Field(default=None, ge=1, le=100_000)
    shard_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # The providers in use, in order: the first healthy one takes each new job, the
    # next ones take over when it fails (`bot.providers.pool`). Each one's own settings:
    # `provider_settings`.
    sora_provider: str = DEFAULT_PROVIDER
    # A provider whose creates failed 3 times in a row gets no new job for this long.
    provider_cooldown_seconds: float = Field(default=300.0, ge=0, le=86_400)

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
    # The polling schedule aims to notice 95 % of finished videos within this many seconds
    # of the provider finishing, at the fewest status requests (`bot.polling`).
    poll_lag_target_seconds: float = Field(default=2.0, ge=0.5, le=600)
    task_max_age_minutes: float = Field(default=60.0, gt=0)
    # Approval mode: a held request nobody decided within this many hours is refunded.
    approval_timeout_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    tracker_concurrency: int = Field(default=16, ge=1, le=1000)
    # A task a process claimed for a check comes due again for the others after at most
    # this long (sooner when its schedule's interval is shorter), so a process that dies
    # leaves nothing stuck.
    task_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    webhook_listen: str | None = None
    webhook_public_url: str | None = None
    metrics_token: SecretStr | None = None

    log_level: LogLevel = "INFO"

    # Every registered provider's settings, by name, read by `__init__`.
    _providers: dict[str, ProviderSettings] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        """`values` as for any pydantic-settings class (they win over the environment),
        and also a provider's settings under their environment names
        (`apixo_api_key=...`, `demo_generation_seconds=...`): those go to the provider's
        own settings. Every provider's settings are read and checked here, and their
        problems are raised with the bot's own in one `ValidationError`, located by
        environment variable."""
        options = {k: v for k, v in values.items() if k.startswith("_")}
        own = {k: v for k, v in values.items() if k in type(self).model_fields}
        given = {k: v for k, v in values.items() if k not in options and k not in own}
        providers, problems = load_provider_settings(PROVIDERS, options, given)
        chosen = provider_names(
            str(own["sora_provider"])
            if "sora_provider" in own
            else ProviderChoice(**options).sora_provider
        )
        for name in reversed(chosen):
            missing = providers[name].missing() if name in providers else []
            if missing:
                needs = f"'{name}' needs {' and '.join(missing)} to be set"
                problems.insert(0, _problem("sora_provider", needs))
        try:
            super().__init__(**options, **own)
        except ValidationError as exc:
            raise _merged(exc.errors(include_url=False, include_input=False), problems) from None
        if problems:
            raise _merged([], problems)
        self._providers = providers

    @field_validator("discord_guild_ids", "shard_ids", mode="before")
    @classmethod
    def _split_guild_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "default_user_daily_quota",
        "shard_count",
        "discord_gateway_url",
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

    @field_validator("discord_api_base")
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
            return value
        raise ValueError(
            "must be a sqlite:/// URL (e.g. sqlite:///data/sora-bot.sqlite3) or a postgresql:// URL"
        )

    @field_validator("sora_provider")
    @classmethod
    def _registered_provider(cls, value: str) -> str:
        names = provider_names(value)
        unknown = [name for name in names if name not in PROVIDERS]
        if not names or unknown:
            raise ValueError(
                "must be one of " + ", ".join(sorted(PROVIDERS)) + ", or several of them "
                "in order, separated by commas (e.g. apixo,sora2api)"
            )
        return ",".join(names)

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        ids = self.shard_ids
        if ids and self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT (the total number of shards)")
        if self.shard_count is not None and any(not 0 <= i < self.shard_count for i in ids):
            raise ValueError(f"SHARD_IDS must be between 0 and {self.shard_count - 1}")
        if len(set(ids)) != len(ids):
            raise ValueError("SHARD_IDS lists a shard twice")
        return self

    @property
    def shards(self) -> list[int] | None:
        """The shards this process runs; None: all (as many as Discord recommends, or
        SHARD_COUNT)."""
        if self.shard_ids:
            return sorted(self.shard_ids)
        return None if self.shard_count is None else list(range(self.shard_count))

    @property
    def syncs_commands(self) -> bool:
        """Only the process running shard 0 syncs the command tree (one sync, not one per
        process)."""
        shards = self.shards
        return shards is None or 0 in shards

    @property
    def sora_providers(self) -> tuple[str, ...]:
        """The providers in use, in order (SORA_PROVIDER, a name or a comma list)."""
        return provider_names(self.sora_provider)

    def provider_settings(self, name: str | None = None) -> ProviderSettings:
        """The settings of provider `name` (default: the first in SORA_PROVIDER): its
        `key`, its `address` (trusted for media) and whatever else it declares."""
        return self._providers[name or self.sora_providers[0]]

    def api_key(self, provider: str) -> SecretStr | None:
        return self.provider_settings(provider).key

    def base_url(self, provider: str) -> str | None:
        return self.provider_settings(provider).address

    def urls(self) -> list[str]:
        """Every configured address, for `check` to show and the log filter to scrub."""
        values = [self.discord_api_base, self.discord_gateway_url, self.webhook_public_url]
        for block in self._providers.values():
            values += block.urls()
        values.append(self.database_url)
        return [v for v in values if v]

    def secret_values(self) -> list[str]:
        """Every secret the configuration holds, for the log filter: tokens, every
        provider's keys and secrets, and passwords inside configured URLs."""
        values = [self.discord_token.get_secret_value()]
        for block in self._providers.values():
            values += block.secret_values()
        if self.metrics_token is not None:
            values.append(self.metrics_token.get_secret_value())
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
        return Settings(**overrides)
    except ValidationError as exc:
        errors = [
            error
            for error in exc.errors(include_input=False, include_url=False)
            if discord_required or tuple(error["loc"]) != ("discord_token",)
        ]
        if errors:
            raise ConfigurationError(describe_errors(errors)) from None
    return Settings(discord_token="unused-without-discord", **overrides)


def _problem(env_name: str, message: str) -> ErrorDetails:
    return ErrorDetails(type="value_error", loc=(env_name,), msg=message, input=None)


def _merged(errors: list[ErrorDetails], more: list[ErrorDetails]) -> ValidationError:
    """One `ValidationError` from the bot's own problems and its providers' (whose
    location is their environment variable), for `load_settings` to report together."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError(error["type"], error["msg"]),
            loc=error["loc"],
            input=None,
        )
        for error in [*errors, *more]
    ]
    return ValidationError.from_exception_data(Settings.__name__, details)


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
