"""What each provider adapter declares about itself: its own settings, and its registration.

An adapter module defines, next to its code:

* a `ProviderSettings` subclass with its own `env_prefix`: the environment variables it
  reads (`APIXO_` + `api_key` is `APIXO_API_KEY`), their defaults and their checks. A
  provider reached over HTTP with a key inherits `ApiProviderSettings` (`<PREFIX>API_KEY`,
  `<PREFIX>BASE_URL`) and adds its extras;
* a `ProviderSpec`: its `SORA_PROVIDER` name, display name, settings class, and how to
  build the adapter from those settings and the shared HTTP client.

`bot.providers.registry` lists the specs, one line each. `bot.settings` reads every
listed provider's settings from the same places as the bot's own (environment, then
`.env`; names in any case; blank means unset) and reports their problems in the same
"Configuration problems:" message, so adding a provider edits nothing outside this
package but the registry line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.providers.base import Capabilities, VideoProvider
from bot.providers.http import ProviderHTTP

# Where every setting is read from, the bot's own (`bot.settings`) and each provider's:
# keyword values, then the environment, then `.env`; names in any case.
SOURCES = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    case_sensitive=False,
)


class ProviderSettings(BaseSettings):
    """One provider's own settings. Subclasses set `model_config = SettingsConfigDict(
    env_prefix="NAME_")` (merged with `SOURCES`) and declare their fields."""

    model_config = SOURCES

    # Fields SORA_PROVIDER may not name this provider without: "'x' needs X_API_KEY to be set".
    required: ClassVar[tuple[str, ...]] = ()

    @field_validator("*", mode="before")
    @classmethod
    def _blank_means_unset(cls, value: object, info: ValidationInfo) -> object:
        """An empty `NAME_API_KEY=` line is an unset optional setting (None), as in
        `.env.example`; a setting with a real default keeps its own check instead."""
        field = cls.model_fields.get(info.field_name or "")
        blank = isinstance(value, str) and value.strip() == ""
        return None if blank and field is not None and field.default is None else value

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of one of this provider's fields."""
        return (str(cls.model_config.get("env_prefix") or "") + field).upper()

    @classmethod
    def env_names(cls) -> list[str]:
        return [cls.env_name(field) for field in cls.model_fields]

    @property
    def key(self) -> SecretStr | None:
        """The provider's API key when it has one and it is set."""
        return None

    @property
    def address(self) -> str | None:
        """The provider's own base URL, None for a provider without one (the demo). Media
        at this exact origin is trusted as configured (`bot.fetch.MediaPolicy`)."""
        return None

    def missing(self) -> list[str]:
        """The environment variables of `required` fields that are not set."""
        unset = [field for field in self.required if not _is_set(getattr(self, field))]
        return [self.env_name(field) for field in unset]

    def secret_values(self) -> list[str]:
        """Every secret this block holds, for the log filter (every `SecretStr` set)."""
        values = []
        for field in type(self).model_fields:
            value = getattr(self, field)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    def urls(self) -> list[str]:
        """Every address this block holds, for `check` and the log filter's passwords."""
        return [
            value
            for value in (getattr(self, field) for field in type(self).model_fields)
            if isinstance(value, str) and "://" in value
        ]


class ApiProviderSettings(ProviderSettings):
    """A provider reached over HTTP with a key: `<PREFIX>API_KEY` (required to use it)
    and `<PREFIX>BASE_URL` (each subclass gives its documented default)."""

    required: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: SecretStr | None = None
    base_url: str

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def key(self) -> SecretStr | None:
        return self.api_key if _is_set(self.api_key) else None

    @property
    def address(self) -> str | None:
        return self.base_url

    def http(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        capabilities: Capabilities,
        scheme: str = "Bearer",
    ) -> ProviderHTTP:
        """The provider's view of the shared client: its address, `Authorization: <scheme>
        <key>`, and its documented request rate. ValueError when the key is not set."""
        key = self.key
        if key is None:
            raise ValueError(f"{self.env_name('api_key')} is not set")
        return ProviderHTTP(
            client,
            provider=provider,
            base_url=self.base_url,
            auth_header=("Authorization", f"{scheme} {key.get_secret_value()}"),
            requests_per_minute=capabilities.max_requests_per_minute,
        )


S = TypeVar("S", bound=ProviderSettings)


@dataclass(frozen=True, slots=True)
class ProviderSpec(Generic[S]):
    """One provider, as the registry lists it (each adapter module exports its `SPEC`)."""

    name: str  # the SORA_PROVIDER value, and the provider's name in the store
    display_name: str
    settings: type[S]
    build: Callable[[S, httpx.AsyncClient], VideoProvider]


def load_provider_settings(
    specs: Mapping[str, ProviderSpec[Any]],
    options: Mapping[str, Any],
    given: Mapping[str, Any],
) -> tuple[dict[str, ProviderSettings], list[ErrorDetails]]:
    """Every provider's settings, and the problems of those that could not be read
    (whose settings, if any, hold defaults in place of the bad values: only for saying
    what else is missing, since the problems are reported and nothing starts).

    `options` are pydantic-settings' own (`_env_file=None`...); `given` are values handed
    in by keyword under their environment names (`apixo_api_key=...`), which win over the
    environment as keyword values do. A problem's location is its environment variable.
    """
    blocks: dict[str, ProviderSettings] = {}
    problems: list[ErrorDetails] = []
    for name, spec in specs.items():
        cls = spec.settings
        prefix = str(cls.model_config.get("env_prefix") or "").lower()
        values: dict[str, Any] = {}
        for key, value in given.items():
            field = key.lower().removeprefix(prefix)
            if key.lower().startswith(prefix) and field in cls.model_fields:
                values[field] = value
        try:
            blocks[name] = cls(**options, **values)
            continue
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)  # input may be secret
        bad = {str(error["loc"][0]) for error in errors if error["loc"]} & set(cls.model_fields)
        for error in errors:
            first, *rest = error["loc"] or ("",)
            error["loc"] = (cls.env_name(str(first)), *rest)
            problems.append(error)
        # With its bad values set aside, so that what is missing can still be said too.
        defaults = {
            field: cls.model_fields[field].get_default(call_default_factory=True)
            for field in bad
            if not cls.model_fields[field].is_required()
        }
        with contextlib.suppress(ValidationError):
            blocks[name] = cls(**options, **{**values, **defaults})
    return blocks, problems


def _is_set(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value().strip())
    return value is not None and value != ""
