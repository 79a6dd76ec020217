"""Secrets in configuration: scrubbed from logs, masked in `check`, validated at start."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import secrets_of
from bot.errors import ConfigurationError
from bot.logging_setup import SecretRedactor
from bot.settings import load_settings, redact_url

WHSEC = "whsec_" + base64.b64encode(b"a-webhook-signing-key-32-bytes!!").decode()


@pytest.fixture(autouse=True)
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def test_webhook_secret_and_url_passwords_are_scrubbed_from_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(
        _env_file=None,
        discord_token="tok-abcdef",
        openai_webhook_secret=WHSEC,
        metrics_token="metrics-token-123",
        discord_api_base="https://proxyuser:proxy-pass-999@proxy.example/api/v10",
    )
    redactor = SecretRedactor(secrets_of(settings))
    logger = logging.getLogger("test.secrets")
    logger.addFilter(redactor)
    try:
        with caplog.at_level(logging.INFO, logger="test.secrets"):
            logger.info("whole %s, key part %s", WHSEC, WHSEC.removeprefix("whsec_"))
            logger.info("metrics %s via %s", "metrics-token-123", settings.discord_api_base)
    finally:
        logger.removeFilter(redactor)
    text = caplog.text
    assert WHSEC.removeprefix("whsec_") not in text
    assert "metrics-token-123" not in text and "proxy-pass-999" not in text
    assert text.count("[redacted]") == 4


@pytest.mark.parametrize(
    "value", ["whsec_not base64!!", "whsec_", "whsec_%%%%", "sk-not-a-webhook-secret"]
)
def test_malformed_webhook_secret_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, discord_token="tok-abcdef", openai_webhook_secret=value)
    assert "OPENAI_WEBHOOK_SECRET" in str(caught.value)
    secret_part = value.removeprefix("whsec_")
    assert not secret_part or secret_part not in str(caught.value)


def test_cli_exits_2_on_a_malformed_webhook_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "DISCORD_TOKEN": "tok-abcdef",
            "SORA_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-test-1",
            "OPENAI_WEBHOOK_SECRET": "whsec_***broken***",
            "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "OPENAI_WEBHOOK_SECRET" in result.stderr and "broken" not in result.stderr


def test_check_masks_passwords_in_urls(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "DISCORD_TOKEN": "tok-abcdef",
            "DATABASE_URL": "sqlite:///state/bot.sqlite3",
            "DISCORD_API_BASE": "https://me:rest-proxy-pw@proxy.example/api/v10",
            "DISCORD_GATEWAY_URL": "wss://me:gw-proxy-pw@gateway.example",
            "SORA_PROVIDER": "apixo",
            "APIXO_API_KEY": "apixo-key-1",
            "APIXO_BASE_URL": "https://me:gateway-pw@apixo.example/api/v1",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for secret in ("rest-proxy-pw", "gw-proxy-pw", "gateway-pw", "apixo-key-1", "tok-abcdef"):
        assert secret not in out
    assert "https://me:***@proxy.example/api/v10" in out
    assert "https://me:***@apixo.example/api/v1" in out


def test_redact_url_leaves_plain_urls_alone() -> None:
    assert redact_url("https://api.apixo.ai/api/v1") == "https://api.apixo.ai/api/v1"
    assert redact_url("https://token@host.example/x") == "https://***@host.example/x"
    assert (
        redact_url("https://u:p@host.example:8443/x?y=1") == "https://u:***@host.example:8443/x?y=1"
    )
