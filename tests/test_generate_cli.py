"""`sora-bot generate` end to end: the real CLI process against fake provider servers."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import Collection
from pathlib import Path

import httpx
import pytest

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import ProviderBusyError
from bot.fetch import Fetcher
from bot.generate import EXIT_OK, GenerateArgs, generate
from bot.providers.base import GenerationRequest
from bot.providers.demo import demo_video
from bot.providers.http import ProviderHTTP
from bot.providers.limits import TaskCap
from bot.providers.ulazai import UlazAIProvider
from bot.url_policy import MediaPolicy
from tests.fakes.providers import FakeApixo, FakeOpenAI, FakeSoraVideo, FakeUlazAI, make_png
from tests.fakes.providers.base import Fault, ProviderRequest, Reply, format_retry_after


async def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "generate", *args,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_demo_needs_no_key_and_no_discord_token(tmp_path: Path) -> None:
    code, out, err = await run_cli(
        ["a cat surfing", "--poll-seconds", "0.1"], {"DEMO_GENERATION_SECONDS": "0.5"}, tmp_path
    )
    assert code == 0, err
    assert "submitted to Demo" in out and "succeeded 100%" in out
    saved = list(tmp_path.glob("sora-demo-*.mp4"))
    assert len(saved) == 1 and saved[0].read_bytes() == demo_video()
    assert "\r" not in out  # plain lines, not a bar, when not on a terminal


async def test_apixo_with_debug_logs_writes_video_and_never_shows_the_key(tmp_path: Path) -> None:
    async with FakeApixo(generation_seconds=0.3) as fake:
        env = {**fake.env(), "LOG_LEVEL": "DEBUG", "DISCORD_TOKEN": "discord-secret-token-1"}
        code, out, err = await run_cli(
            ["a fox", "--duration", "10", "--out", "fox.mp4", "--poll-seconds", "0.1"],
            env,
            tmp_path,
        )
    assert code == 0, err
    assert (tmp_path / "fox.mp4").read_bytes() == fake.video_bytes
    assert "so yours will be 12 s." in out
    assert fake.requests_for("create")[0].json["input"]["duration"] == 12
    assert fake.api_key not in out + err and "discord-secret-token-1" not in out + err


async def test_content_policy_failure_exits_1_with_reason(tmp_path: Path) -> None:
    async with FakeSoraVideo(generation_seconds=0.2) as fake:
        code, _out, err = await run_cli(
            ["a fox #fail", "--poll-seconds", "0.1"], fake.env(), tmp_path
        )
    assert code == 1
    assert "failed: content_policy" in err and "provider said:" in err
    assert not list(tmp_path.glob("*.mp4"))


async def test_unsupported_option_is_refused_before_any_request(tmp_path: Path) -> None:
    async with FakeApixo() as fake:
        code, _, err = await run_cli(["a fox", "--aspect", "square"], fake.env(), tmp_path)
    assert code == 2
    assert "cannot make square videos" in err
    assert fake.requests == []


async def test_bad_key_and_missing_key_are_configuration_errors(tmp_path: Path) -> None:
    async with FakeUlazAI() as fake:
        env = {**fake.env(), "ULAZAI_API_KEY": "wrong-key-123456"}
        code, _, err = await run_cli(["a fox"], env, tmp_path)
    assert code == 2 and "rejected the API key" in err
    assert "wrong-key-123456" not in err
    code, _, err = await run_cli(["a fox", "--provider", "apixo"], {}, tmp_path)
    assert code == 2 and "APIXO_API_KEY is not set" in err


async def test_openai_image_upload_and_download_with_key(tmp_path: Path) -> None:
    (tmp_path / "still.png").write_bytes(make_png(640, 480))
    async with FakeOpenAI(generation_seconds=0.2) as fake:
        code, _out, err = await run_cli(
            ["animate", "--image", "still.png", "--aspect", "portrait", "--duration", "4",
             "--poll-seconds", "0.1", "--out", "v.mp4"],
            fake.env(), tmp_path,
        )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "v.mp4").read_bytes() == fake.video_bytes
    assert "input_reference" in fake.requests_for("create")[0].files


async def test_url_provider_refuses_a_local_image(tmp_path: Path) -> None:
    (tmp_path / "still.png").write_bytes(make_png(640, 480))
    async with FakeApixo() as fake:
        code, _, err = await run_cli(["a", "--image", "still.png"], fake.env(), tmp_path)
    assert code == 2 and "public URL" in err and fake.requests == []


class _Slow:
    """A provider whose submit waits, to show concurrent submits cannot overshoot the cap."""

    name = "slow"
    display_name = "Slow"

    def __init__(self) -> None:
        from bot.providers.demo import DemoProvider

        self._demo = DemoProvider(0.01)
        self.capabilities = self._demo.capabilities

    async def submit(self, request: GenerationRequest):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        return await self._demo.submit(request)

    async def status(self, task_id: str):  # type: ignore[no-untyped-def]
        return await self._demo.status(task_id)

    def parse_callback(self, headers, body):  # type: ignore[no-untyped-def]
        return self._demo.parse_callback(headers, body)

    async def media(self, task_id, status):  # type: ignore[no-untyped-def]
        return await self._demo.media(task_id, status)


class _Ledger:
    """Stands in for the store's count (see tests/test_provider_slots.py for the real
    one): which provider task ids are recorded, and which of those are unfinished."""

    def __init__(self) -> None:
        self.recorded: set[str] = set()
        self.unfinished: set[str] = set()

    async def count(self, just_submitted: Collection[str]) -> int:
        return len(self.unfinished) + len(set(just_submitted) - self.recorded)


async def test_task_cap_refuses_the_eleventh_and_frees_finished_slots() -> None:
    ledger = _Ledger()
    cap = TaskCap(_Slow(), limit=10, count_active=ledger.count)
    request = GenerationRequest(Mode.TEXT, "x", GenerationOptions())
    results = await asyncio.gather(
        *(cap.submit(request) for _ in range(12)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ProviderBusyError)]
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 10 and len(refused) == 2
    assert "already making 10 videos" in refused[0].user_message
    ledger.recorded = {a.provider_task_id for a in accepted}
    ledger.unfinished = set(ledger.recorded)
    assert await cap.active() == 10
    ledger.unfinished.discard(accepted[0].provider_task_id)  # ended, whichever way
    assert await cap.active() == 9
    await cap.submit(request)


async def test_task_cap_without_a_store_counts_its_own_submits() -> None:
    """`sora-bot generate` has no store: what it submitted itself still counts."""
    cap = TaskCap(_Slow(), limit=1)
    await cap.submit(GenerationRequest(Mode.TEXT, "x", GenerationOptions()))
    assert await cap.active() == 1
    with pytest.raises(ProviderBusyError):
        await cap.submit(GenerationRequest(Mode.TEXT, "x", GenerationOptions()))


# UlazAI under status faults (issue 10, item 8)


class _GatewayUlazAI(FakeUlazAI):
    """Its error pages carry the Retry-After given at injection, as a gateway's 503 in
    maintenance does (the stock fake puts one on a 429 only)."""

    def _fault_reply(self, rule: Fault, req: ProviderRequest, m: re.Match[str] | None) -> Reply:
        reply = super()._fault_reply(rule, req, m)
        if rule.retry_after is not None:
            reply.headers["Retry-After"] = format_retry_after(rule.retry_after)
        return reply


ULAZAI_CLI = ["a fox", "--provider", "ulazai", "--poll-seconds", "0.1", "--out", "fox.mp4"]


async def test_ulazai_rides_out_429_500_502_and_503_status_answers(tmp_path: Path) -> None:
    async with FakeUlazAI(generation_seconds=0.3) as fake:
        fake.inject("rate_limit", path="/sora/status/", retry_after=0.5)
        for fault in ("server_error", "html_502", "html_503"):
            fake.inject(fault, path="/sora/status/")
        code, _out, err = await run_cli(ULAZAI_CLI, fake.env(), tmp_path)
    assert code == 0, err
    assert (tmp_path / "fox.mp4").read_bytes() == fake.video_bytes
    checks = fake.requests_for("status")
    faults = ["rate_limit", "server_error", "html_502", "html_503"]
    assert [r.fault for r in checks[:5]] == [*faults, None]
    assert checks[1].at - checks[0].at >= 0.5  # as long as the 429 asked


async def test_a_gateway_asking_for_an_hour_does_not_hang_generate(tmp_path: Path) -> None:
    """The hour used to be slept inside the status call, past `--timeout`, with no word.
    Now it reaches the follow loop, which waits it only up to the deadline, looks once
    more there, and here finds the video done."""
    async with _GatewayUlazAI(generation_seconds=0.3) as fake:
        fake.inject("html_503", path="/sora/status/", retry_after=3600)
        code, _out, err = await run_cli([*ULAZAI_CLI, "--timeout", "2"], fake.env(), tmp_path)
    assert code == 0, err
    assert (tmp_path / "fox.mp4").read_bytes() == fake.video_bytes
    gateway, answered = fake.requests_for("status")
    assert (gateway.status, answered.status) == (503, 200)
    assert answered.at - gateway.at >= 1.5  # not asked again before the deadline


async def test_generate_waits_a_long_retry_after_before_asking_again(tmp_path: Path) -> None:
    """A 429 asking for longer than the HTTP layer's retry budget comes back to the follow
    loop, which used to ask again at its own pace (and count six refusals as a failure)."""
    async with (
        FakeUlazAI(generation_seconds=0.2) as fake,
        httpx.AsyncClient(timeout=5) as client,
    ):
        http = ProviderHTTP(
            client,
            provider="ulazai",
            base_url=fake.base_url,
            auth_header=("Authorization", f"Token {fake.api_key}"),
            backoff_initial=0.01,
            max_retry_seconds=0.2,
        )
        fake.inject("rate_limit", path="/sora/status/", retry_after=0.8)
        args = GenerateArgs(
            "a fox", None, Aspect.LANDSCAPE, 10, Quality.STANDARD, tmp_path / "fox.mp4", 60, 0.05
        )
        out, err = io.StringIO(), io.StringIO()
        async with asyncio.timeout(20):
            code = await generate(
                UlazAIProvider(http),
                client,
                args,
                out=out,
                err=err,
                fetcher=Fetcher(client, MediaPolicy([fake.base_url])),
            )
    assert code == EXIT_OK, err.getvalue()
    limited, answered = fake.requests_for("status")[:2]
    assert (limited.status, answered.status) == (429, 200)
    assert answered.at - limited.at >= 0.8


async def test_generate_fails_over_along_the_provider_list(tmp_path: Path) -> None:
    async with (
        FakeApixo(generation_seconds=0.3) as first,
        FakeOpenAI(generation_seconds=0.3) as second,
    ):
        first.inject("insufficient_credits")
        env = {**first.env(), **second.env(), "SORA_PROVIDER": "demo"}
        code, out, err = await run_cli(
            ["a fox", "--provider", "apixo,openai", "--out", "fox.mp4", "--poll-seconds", "0.1"],
            env,
            tmp_path,
        )
    assert code == 0, err
    assert "APIXO failed (out_of_credits): trying the next provider" in err
    assert "submitted to OpenAI" in out
    assert len(first.requests_for("create")) == 1 and len(second.requests_for("create")) == 1
    assert (tmp_path / "fox.mp4").read_bytes() == second.video_bytes


async def test_generate_does_not_fail_over_a_content_refusal(tmp_path: Path) -> None:
    async with FakeApixo() as first, FakeOpenAI() as second:
        first.inject("content_policy_on_create")
        env = {**first.env(), **second.env()}
        code, _, err = await run_cli(["a fox", "--provider", "apixo,openai"], env, tmp_path)
    assert code == 1 and "Could not submit" in err
    assert second.requests_for("create") == []
