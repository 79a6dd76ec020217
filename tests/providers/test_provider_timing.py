"""Generation times from the providers' own clocks (`ProviderStatus.generation_seconds`).

Against each fake server: a finished task reports the time the fake took, to the
precision of what it sends (whole seconds for OpenAI and Sora2API, milliseconds for APIXO
and soravideo.art). Against hand-made answers: every odd timestamp gives None, never an
exception, and changes nothing else in the status.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.providers.apixo import ApixoProvider
from bot.providers.base import (
    GenerationRequest,
    ProviderState,
    ProviderStatus,
    VideoProvider,
    plan_options,
)
from bot.providers.http import ProviderHTTP
from bot.providers.openai import OpenAIProvider
from bot.providers.sora2api import Sora2ApiProvider
from bot.providers.soravideo import SoraVideoProvider
from tests.fakes.providers import (
    FakeApixo,
    FakeOpenAI,
    FakeProvider,
    FakeSora2API,
    FakeSoraVideo,
)
from tests.helpers import eventually, fast_http
from tests.providers.conftest import Received

# What each fake's timestamps allow: whole seconds truncate (up to 1 s off), milliseconds
# truncate to a millisecond.
TOLERANCE = {"openai": 1.0, "sora2api": 1.0, "apixo": 0.002, "soravideo": 0.002}
FAKES: dict[str, type[FakeProvider]] = {
    "openai": FakeOpenAI,
    "apixo": FakeApixo,
    "sora2api": FakeSora2API,
    "soravideo": FakeSoraVideo,
}
BUILDERS: dict[str, Callable[[ProviderHTTP], VideoProvider]] = {
    "openai": OpenAIProvider,
    "apixo": ApixoProvider,
    "sora2api": Sora2ApiProvider,
    "soravideo": SoraVideoProvider,
}


def _request(
    provider: VideoProvider, prompt: str, callback_url: str | None = None
) -> GenerationRequest:
    planned = plan_options(
        provider.display_name,
        provider.capabilities,
        Mode.TEXT,
        prompt,
        GenerationOptions(Aspect.LANDSCAPE, 8, Quality.STANDARD),
    )
    return GenerationRequest(Mode.TEXT, prompt, planned.options, callback_url=callback_url)


def _on_fake(name: str, fake: FakeProvider, client: httpx.AsyncClient) -> VideoProvider:
    return BUILDERS[name](fast_http(client, name, fake.base_url, fake.api_key))


# Against the fakes ------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [150.0, 1234.5])
@pytest.mark.parametrize("prompt", ["a red fox in the snow", "a red fox in the snow #fail"])
@pytest.mark.parametrize("name", list(FAKES))
async def test_finished_task_reports_the_fakes_generation_time(
    name: str, prompt: str, seconds: float
) -> None:
    async with FAKES[name](generation_seconds=seconds) as fake, httpx.AsyncClient() as client:
        provider = _on_fake(name, fake, client)
        submission = await provider.submit(_request(provider, prompt))
        before = await provider.status(submission.provider_task_id)
        fake.advance(seconds)
        after = await provider.status(submission.provider_task_id)
    assert not before.state.is_final
    assert before.generation_seconds is None
    failed = "#fail" in prompt
    assert after.state is (ProviderState.FAILED if failed else ProviderState.SUCCEEDED)
    assert after.generation_seconds == pytest.approx(seconds, abs=TOLERANCE[name])


async def test_apixo_callback_carries_the_generation_time(
    receiver: tuple[str, list[Received]],
) -> None:
    url, got = receiver
    async with FakeApixo(generation_seconds=150) as fake, httpx.AsyncClient() as client:
        provider = _on_fake("apixo", fake, client)
        submission = await provider.submit(_request(provider, "a fox", callback_url=url))
        fake.advance(150)
        await eventually(lambda: got, timeout=5)
    status = provider.parse_callback(got[0].headers, got[0].body)
    assert status.state is ProviderState.SUCCEEDED
    assert status.provider_task_id == submission.provider_task_id.split(":")[-1]
    assert status.generation_seconds == pytest.approx(150, abs=TOLERANCE["apixo"])


@pytest.mark.parametrize("prompt", ["a fox", "a fox #fail"])
@pytest.mark.parametrize(("variant", "timed"), [("record", True), ("urls", False)])
async def test_sora2api_callbacks_carry_the_generation_time_when_timed(
    receiver: tuple[str, list[Received]], variant: str, timed: bool, prompt: str
) -> None:
    """The record-info variant has createTime/completeTime; the urls variant has none."""
    url, got = receiver
    async with FakeSora2API(generation_seconds=150) as fake, httpx.AsyncClient() as client:
        fake.callback_variant = variant  # type: ignore[assignment]
        provider = _on_fake("sora2api", fake, client)
        await provider.submit(_request(provider, prompt, callback_url=url))
        fake.advance(150)
        await eventually(lambda: got, timeout=5)
    status = provider.parse_callback(got[0].headers, got[0].body)
    failed = "#fail" in prompt
    assert status.state is (ProviderState.FAILED if failed else ProviderState.SUCCEEDED)
    if timed:
        assert status.generation_seconds == pytest.approx(150, abs=TOLERANCE["sora2api"])
    else:
        assert status.generation_seconds is None


# Against hand-made answers ----------------------------------------------------------------


def _render(template: Mapping[str, Any], raw: Mapping[str, str], fields: tuple[str, ...]) -> bytes:
    """`template` as JSON with each timing field's placeholder replaced by raw JSON text
    (so NaN, Infinity, huge integers and wrong types reach the adapter); null if not given."""
    text = json.dumps(template)
    for field in fields:
        text = text.replace(json.dumps(f"@{field}@"), raw.get(field, "null"))
    return text.encode()


def _openai(state: str, raw: Mapping[str, str]) -> bytes:
    video = {
        "id": "video_t",
        "object": "video",
        "status": {"succeeded": "completed", "failed": "failed", "running": "in_progress"}[state],
        "progress": 40,
        "created_at": "@created_at@",
        "completed_at": "@completed_at@",
        "error": {"code": "moderation_blocked", "message": "blocked"}
        if state == "failed"
        else None,
        "model": "sora-2",
    }
    return _render(video, raw, ("created_at", "completed_at"))


def _apixo(state: str, raw: Mapping[str, str]) -> bytes:
    data: dict[str, Any] = {
        "taskId": "t1",
        "state": {"succeeded": "success", "failed": "failed", "running": "processing"}[state],
        "createTime": "@createTime@",
        "completeTime": "@completeTime@",
        "costTime": "@costTime@",
    }
    if state == "succeeded":
        data["resultJson"] = json.dumps({"resultUrls": ["https://cdn.example/v.mp4"]})
    if state == "failed":
        data.update(failCode="CONTENT_VIOLATION", failMsg="Content violates safety guidelines")
    envelope = {"code": 200, "message": "success", "data": data}
    return _render(envelope, raw, ("createTime", "completeTime", "costTime"))


def _sora2api_record(state: str) -> dict[str, Any]:
    return {
        "taskId": "s1",
        "paramJson": "{}",
        "createTime": "@createTime@",
        "completeTime": "@completeTime@",
        "response": {"imageUrl": "https://cdn.example/v.mp4"} if state == "succeeded" else None,
        "successFlag": {"succeeded": 1, "failed": 3, "running": 0}[state],
        "errorCode": 400 if state == "failed" else 0,
        "errorMessage": "Content policy violation" if state == "failed" else None,
    }


def _sora2api(state: str, raw: Mapping[str, str]) -> bytes:
    envelope = {"code": 200, "msg": "success", "data": _sora2api_record(state)}
    return _render(envelope, raw, ("createTime", "completeTime"))


def _soravideo(state: str, raw: Mapping[str, str]) -> bytes:
    done = state == "succeeded"
    data = {
        "task_id": "t1",
        "status": {"succeeded": "completed", "failed": "failed", "running": "processing"}[state],
        "progress": 100 if done else 50,
        "video_url": "https://cdn.example/v.mp4" if done else None,
        "thumbnail_url": "https://cdn.example/t.jpg" if done else None,
        "created_at": "@created_at@",
        "completed_at": "@completed_at@",
        "error": "Content policy violation" if state == "failed" else None,
    }
    envelope = {"code": 200, "msg": "success", "data": data}
    return _render(envelope, raw, ("created_at", "completed_at"))


@dataclass(frozen=True)
class Wire:
    name: str
    task_id: str
    body: Callable[[str, Mapping[str, str]], bytes]
    started: str  # the start and end timestamp fields
    finished: str
    good: tuple[str, str]  # raw JSON for them, `expected` seconds apart
    expected: float


WIRES = {
    "openai": Wire(
        "openai", "video_t", _openai, "created_at", "completed_at",
        ("1700000000", "1700000150"), 150.0,
    ),
    "apixo": Wire(
        "apixo", "sora-2:t1", _apixo, "createTime", "completeTime",
        ("1700000000000", "1700000150250"), 150.25,
    ),
    "sora2api": Wire(
        "sora2api", "s1", _sora2api, "createTime", "completeTime",
        ('"2024-03-20 10:25:00"', '"2024-03-20 10:30:00"'), 300.0,  # the docs' own example
    ),
    "soravideo": Wire(
        "soravideo", "t1", _soravideo, "created_at", "completed_at",
        ('"2025-01-03T10:15:30.000Z"', '"2025-01-03T10:17:45.500Z"'), 135.5,
    ),
}  # fmt: skip


async def _status(wire: Wire, body: bytes) -> ProviderStatus:
    """What the adapter makes of `body` as its provider's answer to a status check."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        http = fast_http(client, wire.name, "https://provider.test/api/v1", "key")
        return await BUILDERS[wire.name](http).status(wire.task_id)


def _times(wire: Wire, started: str, finished: str) -> dict[str, str]:
    return {wire.started: started, wire.finished: finished}


@pytest.mark.parametrize("state", ["succeeded", "failed"])
@pytest.mark.parametrize("name", list(WIRES))
async def test_final_status_carries_the_exact_time_and_nothing_else_changes(
    name: str, state: str
) -> None:
    wire = WIRES[name]
    timed = await _status(wire, wire.body(state, _times(wire, *wire.good)))
    untimed = await _status(wire, wire.body(state, {}))
    assert timed.state is ProviderState(state)
    assert timed.generation_seconds == pytest.approx(wire.expected, abs=1e-6)
    assert untimed.generation_seconds is None
    assert dataclasses.replace(timed, generation_seconds=None) == untimed


@pytest.mark.parametrize("name", list(WIRES))
async def test_unfinished_status_carries_no_time_even_with_timestamps(name: str) -> None:
    wire = WIRES[name]
    raw = _times(wire, *wire.good) | {"costTime": "150000"}
    status = await _status(wire, wire.body("running", raw))
    assert status.state is ProviderState.RUNNING
    assert status.generation_seconds is None


HUGE = "1" + "0" * 400  # a JSON integer too large for a float
UNIX_SECONDS = {
    "strings": ('"1700000000"', '"1700000150"'),
    "bools": ("true", "true"),
    "true_as_one": ("true", "150"),
    "completed_null": ("1700000000", "null"),
    "objects": ('{"t": 1700000000}', '{"t": 1700000150}'),
    "lists": ("[1700000000]", "[1700000150]"),
    "nan": ("NaN", "1700000150"),
    "infinities": ("-Infinity", "Infinity"),
    "both_infinite": ("Infinity", "Infinity"),
    "overflowing_floats": ("1e400", "1e400"),
    "huge_ints": (HUGE, HUGE[:-3] + "150"),
    "backwards": ("1700000150", "1700000000"),
    "equal": ("1700000000", "1700000000"),
    "over_a_day": ("1700000000", "1700100000"),
    "epoch_zero": ("0", "150"),
    "negative": ("-150", "-1"),
}
UNIX_MS = {
    "strings": ('"1700000000000"', '"1700000150000"'),
    "bools": ("true", "true"),
    "true_as_one": ("true", "150000"),
    "completed_null": ("1700000000000", "null"),
    "objects": ('{"t": 1700000000000}', '{"t": 1700000150000}'),
    "lists": ("[1700000000000]", "[1700000150000]"),
    "nan": ("NaN", "1700000150000"),
    "infinities": ("-Infinity", "Infinity"),
    "overflowing_floats": ("1e400", "1e400"),
    "huge_ints": (HUGE, HUGE[:-6] + "150000"),
    "backwards": ("1700000150000", "1700000000000"),
    "over_a_day": ("1700000000000", "1700100000000"),
    "epoch_zero": ("0", "150000"),
}
CLOCK_TEXT = {
    "numbers": ("1700000000", "1700000150"),
    "bools": ("true", "false"),
    "objects": ('{"t": "2024-03-20 10:25:00"}', '{"t": "2024-03-20 10:30:00"}'),
    "lists": ('["2024-03-20 10:25:00"]', '["2024-03-20 10:30:00"]'),
    "words": ('"yesterday"', '"just now"'),
    "empty": ('""', '""'),
    "impossible_date": ('"2024-13-45 99:99:99"', '"2024-03-20 10:30:00"'),
    "nul_byte": ('"2024-03-20 10:25:00\\u0000"', '"2024-03-20 10:30:00"'),
    "odd_separator": ('"2024-03-20x10:25:00"', '"2024-03-20x10:30:00"'),
    "nul_separator": ('"2024-03-20\\u000010:25:00"', '"2024-03-20 10:30:00"'),
    "date_only": ('"2024-03-20"', '"2024-03-20 10:30:00"'),
    "very_long": ('"' + "2" * 100_000 + '"', '"2024-03-20 10:30:00"'),
    "zone_and_no_zone": ('"2024-03-20 10:25:00"', '"2024-03-20T10:30:00Z"'),
    "backwards": ('"2024-03-20 10:30:00"', '"2024-03-20 10:25:00"'),
    "equal": ('"2024-03-20 10:25:00"', '"2024-03-20 10:25:00"'),
    "over_a_day": ('"2024-03-20 10:25:00"', '"2024-03-22 10:25:00"'),
    "extremes": ('"0001-01-01T00:00:00+14:00"', '"9999-12-31T23:59:59-23:59"'),
    "completed_null": ('"2024-03-20 10:25:00"', "null"),
}
HOSTILE = (
    [("openai", case, pair) for case, pair in UNIX_SECONDS.items()]
    + [("apixo", case, pair) for case, pair in UNIX_MS.items()]
    + [
        (name, case, pair)
        for name in ("sora2api", "soravideo")
        for case, pair in CLOCK_TEXT.items()
    ]
)


@pytest.mark.parametrize("state", ["succeeded", "failed"])
@pytest.mark.parametrize(
    ("name", "pair"), [(n, p) for n, _, p in HOSTILE], ids=[f"{n}-{c}" for n, c, _ in HOSTILE]
)
async def test_odd_timestamps_give_no_time_and_change_nothing(
    name: str, pair: tuple[str, str], state: str
) -> None:
    wire = WIRES[name]
    odd = await _status(wire, wire.body(state, _times(wire, *pair)))
    untimed = await _status(wire, wire.body(state, {}))
    assert odd.generation_seconds is None
    assert odd == untimed


ISO_SPELLINGS = {
    ("sora2api", "documented"): ('"2024-03-20 10:25:00"', '"2024-03-20 10:30:00"', 300.0),
    ("sora2api", "t_separator"): ('"2024-03-20T10:25:00"', '"2024-03-20T10:30:00"', 300.0),
    ("sora2api", "utc"): ('"2024-03-20T10:25:00Z"', '"2024-03-20T10:30:00Z"', 300.0),
    ("sora2api", "offsets"): ('"2024-03-20 10:25:00+00:00"', '"2024-03-20 11:30:00+01:00"', 300.0),
    ("sora2api", "padded"): ('" 2024-03-20 10:25:00 "', '"2024-03-20 10:30:00"', 300.0),
    ("soravideo", "fake"): ('"2025-01-03T10:15:30.000Z"', '"2025-01-03T10:17:45.500Z"', 135.5),
    ("soravideo", "offset"): ('"2025-01-03T12:15:30+02:00"', '"2025-01-03T12:17:45.5+02"', 135.5),
    ("soravideo", "no_zone"): ('"2025-01-03T10:15:30"', '"2025-01-03T10:17:45.500"', 135.5),
    ("soravideo", "mixed_zones"): ('"2025-01-03T10:15:30Z"', '"2025-01-03T12:17:45.5+02"', 135.5),
    ("soravideo", "space"): ('"2025-01-03 10:15:30Z"', '"2025-01-03 10:17:45.5Z"', 135.5),
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "started", "finished", "expected"),
    [(n, *v) for (n, _), v in ISO_SPELLINGS.items()],
    ids=[f"{n}-{c}" for n, c in ISO_SPELLINGS],
)
async def test_date_text_spellings_give_the_exact_time(
    name: str, started: str, finished: str, expected: float
) -> None:
    wire = WIRES[name]
    status = await _status(wire, wire.body("succeeded", _times(wire, started, finished)))
    assert status.generation_seconds == pytest.approx(expected, abs=1e-6)


# APIXO's own costTime ---------------------------------------------------------------------

APIXO_TIMES = {"createTime": "1700000000000", "completeTime": "1700000150000"}


async def test_apixo_prefers_its_cost_time() -> None:
    body = _apixo("succeeded", APIXO_TIMES | {"costTime": "123456"})
    assert (await _status(WIRES["apixo"], body)).generation_seconds == pytest.approx(123.456)


@pytest.mark.parametrize(
    "cost",
    ['"123456"', "true", "null", "0", "-5000", "NaN", "Infinity", "1e400", HUGE,
     '{"ms": 123456}', "[123456]", "86400001"],
)  # fmt: skip
async def test_apixo_odd_cost_time_falls_back_to_the_timestamps(cost: str) -> None:
    body = _apixo("succeeded", APIXO_TIMES | {"costTime": cost})
    assert (await _status(WIRES["apixo"], body)).generation_seconds == pytest.approx(150.0)


async def test_apixo_cost_time_alone_is_enough() -> None:
    body = _apixo("failed", {"createTime": '"soon"', "costTime": "98765"})
    status = await _status(WIRES["apixo"], body)
    assert status.state is ProviderState.FAILED
    assert status.generation_seconds == pytest.approx(98.765)


@pytest.mark.parametrize("state", ["succeeded", "failed"])
async def test_apixo_callback_reads_times_like_a_status(state: str) -> None:
    async with httpx.AsyncClient() as client:
        provider = ApixoProvider(fast_http(client, "apixo", "https://x.test", "key"))
    timed = provider.parse_callback({}, _apixo(state, APIXO_TIMES | {"costTime": "150500"}))
    odd = provider.parse_callback({}, _apixo(state, {"createTime": "NaN", "costTime": '"1"'}))
    untimed = provider.parse_callback({}, _apixo(state, {}))
    assert timed.provider_task_id == "t1"
    assert timed.generation_seconds == pytest.approx(150.5)
    assert odd == untimed
    assert dataclasses.replace(timed, generation_seconds=None) == untimed


# Sora2API callbacks -----------------------------------------------------------------------


def _sora2api_urls_callback(ok: bool, raw: Mapping[str, str]) -> bytes:
    data = {
        "taskId": "s1",
        "resultUrls": ["https://cdn.example/v.mp4"] if ok else [],
        "createTime": "@createTime@",
        "completeTime": "@completeTime@",
    }
    envelope = {"code": 200 if ok else 500, "msg": "success" if ok else "failed", "data": data}
    return _render(envelope, raw, ("createTime", "completeTime"))


@pytest.mark.parametrize("ok", [True, False])
@pytest.mark.parametrize("shape", ["record", "urls"])
async def test_sora2api_callbacks_read_times_where_present(shape: str, ok: bool) -> None:
    async with httpx.AsyncClient() as client:
        provider = Sora2ApiProvider(fast_http(client, "sora2api", "https://x.test", "key"))

    def body(raw: Mapping[str, str]) -> bytes:
        if shape == "urls":
            return _sora2api_urls_callback(ok, raw)
        return _sora2api("succeeded" if ok else "failed", raw)

    good = {"createTime": '"2024-03-20 10:25:00"', "completeTime": '"2024-03-20 10:27:30"'}
    odd = {"createTime": '"2024-03-20 10:25:00"', "completeTime": "[1, 2]"}
    timed = provider.parse_callback({}, body(good))
    untimed = provider.parse_callback({}, body({}))
    assert timed.state is (ProviderState.SUCCEEDED if ok else ProviderState.FAILED)
    assert timed.generation_seconds == pytest.approx(150.0)
    assert provider.parse_callback({}, body(odd)) == untimed
    assert dataclasses.replace(timed, generation_seconds=None) == untimed
