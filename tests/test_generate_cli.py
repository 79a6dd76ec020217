"""`sora-bot generate` end to end: the real CLI process against fake provider servers."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bot.domain import GenerationOptions, Mode
from bot.errors import ProviderBusyError
from bot.providers.base import GenerationRequest, ProviderState
from bot.providers.demo import demo_video
from bot.providers.limits import TaskCap
from tests.fakes.providers import FakeApixo, FakeOpenAI, FakeSoraVideo, FakeUlazAI, make_png


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
    assert "so yours will be 12 seconds" in out
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


async def test_task_cap_refuses_the_eleventh_and_frees_finished_slots() -> None:
    cap = TaskCap(_Slow(), limit=10)
    request = GenerationRequest(Mode.TEXT, "x", GenerationOptions())
    results = await asyncio.gather(
        *(cap.submit(request) for _ in range(12)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ProviderBusyError)]
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 10 and len(refused) == 2
    assert "already making 10 videos" in refused[0].user_message
    await asyncio.sleep(0.05)
    status = await cap.status(accepted[0].provider_task_id)
    assert status.state is ProviderState.SUCCEEDED
    assert cap.active == 9
    await cap.submit(request)


@pytest.mark.parametrize("limit", [1])
async def test_task_cap_restore_after_restart(limit: int) -> None:
    cap = TaskCap(_Slow(), limit=limit)
    cap.restore(["demo-1-s-x"])
    with pytest.raises(ProviderBusyError):
        await cap.submit(GenerationRequest(Mode.TEXT, "x", GenerationOptions()))
