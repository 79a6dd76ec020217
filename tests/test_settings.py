"""Settings: defaults, parsing, and one clear message naming every problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.domain import QuotaUnit
from bot.errors import ConfigurationError
from bot.providers.registry import PROVIDERS
from bot.settings import Settings, load_settings
from bot.store.sqlite import load_migrations

# Every setting there is: the bot's own, and each registered provider's own.
ENV_NAMES = {name.upper() for name in Settings.model_fields} | {
    env for spec in PROVIDERS.values() for env in spec.settings.env_names()
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def test_defaults_need_only_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    settings = load_settings()
    assert settings.sora_provider == "demo"
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.discord_gateway_url is None
    assert settings.discord_guild_ids == []
    assert settings.database_url == "sqlite:///data/sora-bot.sqlite3"
    assert settings.sqlite_path == Path("data/sora-bot.sqlite3")
    addresses = {name: settings.provider_settings(name).address for name in PROVIDERS}
    assert addresses == {
        "demo": None,
        "apixo": "https://api.apixo.ai/api/v1",
        "sora2api": "https://api.sora2api.ai/api/v1/sora2",
        "openai": "https://api.openai.com/v1",
        "soravideo": "https://soravideo.art/api/v1",
        "ulazai": "https://ulazai.com/api/v1",
    }
    assert settings.provider_settings().key is None


def test_values_from_environment_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=from-file\nDEFAULT_QUOTA_UNIT=seconds\n")
    monkeypatch.setenv("DISCORD_GUILD_IDS", " 11, 22 ,33")
    monkeypatch.setenv("SORA_PROVIDER", "ulazai")
    monkeypatch.setenv("ULAZAI_API_KEY", "k-123")
    monkeypatch.setenv("DISCORD_API_BASE", "http://127.0.0.1:9/api/v10/")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.discord_token.get_secret_value() == "from-file"
    assert settings.discord_guild_ids == [11, 22, 33]
    assert settings.default_quota_unit is QuotaUnit.SECONDS
    assert settings.discord_api_base == "http://127.0.0.1:9/api/v10"
    assert settings.log_level == "DEBUG"
    key = settings.provider_settings().key
    assert key is not None and key.get_secret_value() == "k-123"
    assert settings.api_key("ulazai") == key  # the older spelling, kept


def test_every_problem_is_named_once_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORA_PROVIDER", "apixo")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    monkeypatch.setenv("DISCORD_GUILD_IDS", "12,abc")
    monkeypatch.setenv("DEFAULT_DAILY_QUOTA", "-1")
    monkeypatch.setenv("DISCORD_GATEWAY_URL", "http://not-a-websocket")
    with pytest.raises(ConfigurationError) as exc:
        load_settings()
    message = str(exc.value)
    assert message.splitlines()[0] == "Configuration problems:"
    for name in (
        "DISCORD_TOKEN",
        "SORA_PROVIDER",
        "DISCORD_GUILD_IDS (item 2)",
        "DEFAULT_DAILY_QUOTA",
        "DISCORD_GATEWAY_URL",
    ):
        assert f"- {name}:" in message
    assert "APIXO_API_KEY" in message
    assert "sk-very-secret-value" not in message and "abc" not in message


def test_unknown_provider_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("SORA_PROVIDER", "midjourney")
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigurationError) as exc:
        load_settings()
    assert "- SORA_PROVIDER:" in str(exc.value) and "- DATABASE_URL:" in str(exc.value)


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        discord_token="tok-secret-1",
        sora_provider="openai",  # type: ignore[arg-type]
        openai_api_key="sk-secret-2",
    )  # type: ignore[arg-type]
    assert "tok-secret-1" not in repr(settings) and "sk-secret-2" not in repr(settings)


def test_cli_reports_configuration_problem_with_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SORA_PROVIDER": "openai"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "- DISCORD_TOKEN: is required but not set" in result.stderr
    assert "- SORA_PROVIDER: 'openai' needs OPENAI_API_KEY to be set" in result.stderr


def test_cli_check_migrates_the_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "DISCORD_TOKEN": "tok-abcdef",
            "DATABASE_URL": "sqlite:///state/bot.sqlite3",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    latest = load_migrations()[-1][0]
    assert "Configuration OK" in result.stdout
    assert f"schema version {latest}" in result.stdout
    assert (tmp_path / "state" / "bot.sqlite3").exists()
    assert "tok-abcdef" not in result.stdout + result.stderr


def test_env_example_is_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Copying .env.example and adding a token must give a working configuration."""
    example = Path(__file__).parent.parent / ".env.example"
    text = example.read_text().replace("DISCORD_TOKEN=\n", "DISCORD_TOKEN=tok\n")
    (tmp_path / ".env").write_text(text)
    settings = load_settings()
    assert settings.discord_gateway_url is None and settings.default_user_daily_quota == 5
    documented = {
        line.split("=", 1)[0] for line in text.splitlines() if "=" in line and line[0] != "#"
    }
    assert documented == ENV_NAMES


def test_several_providers_in_order_each_need_their_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("SORA_PROVIDER", " Apixo , sora2api,apixo ")
    monkeypatch.setenv("APIXO_API_KEY", "k1")
    with pytest.raises(ConfigurationError) as exc:
        load_settings()
    assert "- SORA_PROVIDER: 'sora2api' needs SORA2API_API_KEY to be set" in str(exc.value)
    assert "'apixo' needs" not in str(exc.value)
    monkeypatch.setenv("SORA2API_API_KEY", "k2")
    settings = load_settings()
    assert settings.sora_providers == ("apixo", "sora2api")
    assert settings.provider_settings().key is not None  # the first one's
    assert settings.provider_cooldown_seconds == 300


def test_an_unknown_name_in_the_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("SORA_PROVIDER", "demo,midjourney")
    with pytest.raises(ConfigurationError) as exc:
        load_settings()
    assert "- SORA_PROVIDER: " in str(exc.value) and "separated by commas" in str(exc.value)


def test_shards_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    assert load_settings().shards is None and load_settings().syncs_commands
    monkeypatch.setenv("SHARD_COUNT", "4")
    assert load_settings().shards == [0, 1, 2, 3]
    monkeypatch.setenv("SHARD_IDS", "3, 1")
    settings = load_settings()
    assert settings.shards == [1, 3] and not settings.syncs_commands
    monkeypatch.setenv("SHARD_IDS", "0,4")
    with pytest.raises(ConfigurationError, match="between 0 and 3"):
        load_settings()
    monkeypatch.delenv("SHARD_COUNT")
    monkeypatch.setenv("SHARD_IDS", "0")
    with pytest.raises(ConfigurationError, match="needs SHARD_COUNT"):
        load_settings()
