"""The fake Sora 2 providers speak their documented shapes and serve every fault as specified."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes.providers import (
    ALL_FAKES,
    FAULT_KINDS,
    FakeApixo,
    FakeOpenAI,
    FakeProvider,
    FakeSora2API,
    FakeSoraVideo,
    FakeUlazAI,
    image_size,
    make_jpeg,
    make_png,
    make_webp,
)

JSON = dict[str, Any]
GEN = 0.3  # generation_seconds for these tests

# --------------------------------------------------------------------------------------
# a tiny client per provider
# --------------------------------------------------------------------------------------


def auth(fake: FakeProvider, key: str | None = None) -> dict[str, str]:
    scheme = "Token" if fake.name == "ulazai" else "Bearer"
    return {"Authorization": f"{scheme} {key or fake.api_key}"}


def create_request(fake: FakeProvider, prompt: str) -> tuple[str, JSON]:
    base = fake.base_url
    if isinstance(fake, FakeApixo):
        body: JSON = {
            "request_type": "async",
            "provider": "official",
            "input": {
                "mode": "text-to-video",
                "prompt": prompt,
                "duration": 4,
                "aspect_ratio": "landscape",
                "remove_watermark": True,
            },
        }
        return f"{base}/generateTask/sora-2", body
    if isinstance(fake, FakeSora2API):
        return f"{base}/generate", {"prompt": prompt, "aspectRatio": "landscape", "quality": "hd"}
    if isinstance(fake, FakeSoraVideo):
        return f"{base}/sora2/text-to-video", {"prompt": prompt, "aspectRatio": "16:9"}
    if isinstance(fake, FakeUlazAI):
        body = {"prompt": prompt, "aspect_ratio": "landscape", "prompt_directory_optin": False}
        return f"{base}/sora/generate/text-to-video/", body
    assert isinstance(fake, FakeOpenAI)
    return f"{base}/videos", {
        "model": "sora-2",
        "prompt": prompt,
        "seconds": "4",
        "size": "1280x720",
    }


def status_url(fake: FakeProvider, task_id: str) -> str:
    base = fake.base_url
    return {
        "apixo": f"{base}/statusTask/sora-2?taskId={task_id}",
        "sora2api": f"{base}/record-info?taskId={task_id}",
        "soravideo": f"{base}/tasks/{task_id}",
        "ulazai": f"{base}/sora/status/{task_id}/",
        "openai": f"{base}/videos/{task_id}",
    }[fake.name]


def task_id_of(fake: FakeProvider, body: JSON) -> str:
    if fake.name == "openai":
        return str(body["id"])
    data = body["data"]
    return str(data.get("taskId") or data.get("task_id"))


def normalise(fake: FakeProvider, body: JSON) -> tuple[str, str | None]:
    """("waiting" | "success" | "failed", video url)."""
    if isinstance(fake, FakeApixo):
        data = body["data"]
        if data["state"] == "success":
            return "success", json.loads(data["resultJson"])["resultUrls"][0]
        return ("failed" if data["state"] == "failed" else "waiting"), None
    if isinstance(fake, FakeSora2API):
        data = body["data"]
        flag = data["successFlag"]
        if flag == 1:
            return "success", data["response"]["imageUrl"]
        return ("failed" if flag in (2, 3) else "waiting"), None
    if isinstance(fake, FakeSoraVideo):
        data = body["data"]
        if data["status"] == "completed":
            return "success", data["video_url"]
        return ("failed" if data["status"] == "failed" else "waiting"), None
    if isinstance(fake, FakeUlazAI):
        if body["success"] is False:
            return "failed", None
        data = body["data"]
        if data["status"] == "success":
            return "success", data["video_url"]
        return "waiting", None
    assert isinstance(fake, FakeOpenAI)
    if body["status"] == "completed":
        return "success", fake.media_url(body["id"])
    return ("failed" if body["status"] == "failed" else "waiting"), None


async def create(c: httpx.AsyncClient, fake: FakeProvider, prompt: str = "a cat") -> str:
    url, body = create_request(fake, prompt)
    resp = await c.post(url, json=body, headers=auth(fake))
    assert resp.status_code == (201 if fake.name == "ulazai" else 200), resp.text
    return task_id_of(fake, resp.json())


async def poll(c: httpx.AsyncClient, fake: FakeProvider, task_id: str) -> tuple[str, str | None]:
    resp = await c.get(status_url(fake, task_id), headers=auth(fake))
    assert resp.status_code == 200, resp.text
    return normalise(fake, resp.json())


def error_code(fake: FakeProvider, resp: httpx.Response) -> Any:
    """The provider's error identifier, asserting the error shape on the way."""
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    if fake.name == "apixo":
        assert set(body) == {"code", "message", "data"}
        assert body["code"] == resp.status_code
        return body["code"]
    if fake.name == "sora2api":
        assert set(body) == {"code", "msg", "data"} and body["data"] is None
        return body["code"]
    if fake.name == "soravideo":
        assert set(body) == {"code", "msg", "error"}
        assert body["code"] == resp.status_code
        return body["code"]
    if fake.name == "ulazai":
        assert body["success"] is False and isinstance(body["error"], str)
        assert "data" not in body
        return resp.status_code
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err["code"] or err["type"]


@pytest.fixture(params=ALL_FAKES, ids=lambda cls: cls.name)
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeProvider]:
    cls: type[FakeProvider] = request.param
    async with cls(generation_seconds=GEN) as provider:
        yield provider


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


@dataclass
class Receiver:
    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200

    def payloads(self) -> list[JSON]:
        return [json.loads(body) for _, body in self.got]

    async def wait(self, count: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count:
            assert time.monotonic() < deadline, f"got {len(self.got)} of {count} callbacks"
            await asyncio.sleep(0.01)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.got.append((dict(request.headers), await request.read()))
        return web.Response(status=rec.status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------------------
# the happy path, state progression, steering
# --------------------------------------------------------------------------------------


async def test_create_poll_download(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:")
    task_id = await create(client, fake, "a cat on a skateboard")
    state, url = "waiting", None
    deadline = time.monotonic() + 3
    while state == "waiting":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.03)
        state, url = await poll(client, fake, task_id)
    assert state == "success" and url == fake.media_url(task_id)
    headers = auth(fake) if fake.name == "openai" else {}
    video = await client.get(url, headers=headers)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content == fake.video_bytes and video.content[4:8] == b"ftyp"
    thumb = await client.get(fake.thumbnail_url(task_id), headers=headers)
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")

    create_req = fake.requests_for("create")[0]
    assert create_req.method == "POST"
    assert create_req.json == create_request(fake, "a cat on a skateboard")[1]
    assert create_req.headers["authorization"] == auth(fake)["Authorization"]
    assert fake.tasks[task_id].prompt == "a cat on a skateboard"
    assert fake.tasks[task_id].mode == "text"
    assert all(r.status == 200 for r in fake.requests_for("status"))


async def test_state_progression_follows_the_clock(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    task_id = await create(client, fake)
    task = fake.tasks[task_id]
    assert task.phase(task.created_at) == "queued"
    bodies = []
    for until in (0.05, 0.5, 1.0):
        fake.advance(task.created_at + until * task.duration - fake.now())
        bodies.append((await client.get(status_url(fake, task_id), headers=auth(fake))).json())
    assert [normalise(fake, b)[0] for b in bodies] == ["waiting", "waiting", "success"]
    if isinstance(fake, FakeApixo):
        assert [b["data"]["state"] for b in bodies] == ["pending", "processing", "success"]
        assert isinstance(bodies[2]["data"]["resultJson"], str)
        assert isinstance(bodies[0]["data"]["createTime"], int)
        assert "completeTime" not in bodies[0]["data"] and "costTime" in bodies[2]["data"]
    elif isinstance(fake, FakeSora2API):
        assert [b["data"]["successFlag"] for b in bodies] == [0, 0, 1]
        assert json.loads(bodies[0]["data"]["paramJson"])["prompt"] == "a cat"
        assert bodies[0]["data"]["completeTime"] is None
        assert len(bodies[2]["data"]["completeTime"]) == len("2024-03-20 10:30:00")
    elif isinstance(fake, FakeSoraVideo):
        assert [b["data"]["status"] for b in bodies] == ["pending", "processing", "completed"]
        assert bodies[0]["data"]["progress"] == 0
        assert 0 < bodies[1]["data"]["progress"] < 100 and bodies[2]["data"]["progress"] == 100
    elif isinstance(fake, FakeUlazAI):
        assert [b["data"]["status"] for b in bodies] == ["processing", "processing", "success"]
        assert 0 < bodies[1]["data"]["progress"] < 100
        assert bodies[2]["data"]["duration"] == 10
        assert bodies[2]["data"]["file_size"].endswith(("MB", "KB"))
    else:
        assert [b["status"] for b in bodies] == ["queued", "in_progress", "completed"]
        assert bodies[2]["progress"] == 100 and bodies[2]["expires_at"] > bodies[2]["created_at"]
        assert bodies[2]["error"] is None and bodies[2]["seconds"] == "4"


FAILURE_MARKERS: dict[str, dict[str, Any]] = {
    "#fail": {
        "apixo": "CONTENT_VIOLATION",
        "sora2api": 3,
        "openai": "moderation_blocked",
    },
    "#badimage": {"apixo": "INVALID_IMAGE_URL", "sora2api": 2},
    "#error": {"apixo": "GENERATION_FAILED", "sora2api": 3, "openai": "internal_error"},
}


@pytest.mark.parametrize("marker", ["#fail", "#badimage", "#error"])
async def test_prompt_markers_steer_failures(
    fake: FakeProvider, client: httpx.AsyncClient, marker: str
) -> None:
    task_id = await create(client, fake, f"a cat {marker}")
    fake.advance(GEN)
    resp = await client.get(status_url(fake, task_id), headers=auth(fake))
    body = resp.json()
    assert resp.status_code == 200 and normalise(fake, body)[0] == "failed"
    expected = FAILURE_MARKERS[marker].get(fake.name)
    if isinstance(fake, FakeApixo):
        assert body["data"]["failCode"] == expected and body["data"]["failMsg"]
        assert "resultJson" not in body["data"]
    elif isinstance(fake, FakeSora2API):
        assert body["data"]["successFlag"] == expected and body["data"]["errorMessage"]
        assert body["data"]["response"] is None
    elif isinstance(fake, FakeSoraVideo):
        assert body["data"]["error"] and body["data"]["video_url"] is None
    elif isinstance(fake, FakeUlazAI):
        assert set(body) == {"success", "error", "error_details", "credits_refunded"}
    else:
        assert body["error"]["message"]
        if expected:
            assert body["error"]["code"] == expected
    media = await client.get(fake.media_url(task_id), headers=auth(fake))
    assert media.status_code == 404


async def test_slow_marker_and_forcing(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    slow = await create(client, fake, "a slow cat #slow")
    assert fake.tasks[slow].duration == pytest.approx(10 * GEN)
    fake.finish(slow)
    assert (await poll(client, fake, slow))[0] == "success"
    other = await create(client, fake)
    fake.fail_task(other, "content_policy")
    assert (await poll(client, fake, other))[0] == "failed"
    assert fake.tasks[other].outcome == "content_policy"


# --------------------------------------------------------------------------------------
# auth
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["missing", "wrong"])
async def test_auth_refused(fake: FakeProvider, client: httpx.AsyncClient, header: str) -> None:
    url, body = create_request(fake, "a cat")
    headers = {} if header == "missing" else auth(fake, "wrong-key")
    resp = await client.post(url, json=body, headers=headers)
    assert resp.status_code == (200 if _http_200(fake) else 401)
    assert error_code(fake, resp) in (401, "invalid_api_key", "invalid_request_error")
    assert fake.tasks == {}


def _http_200(fake: FakeProvider) -> bool:
    return isinstance(fake, FakeSora2API) and fake.http_200_errors


async def test_ulazai_refuses_bearer_and_missing_slash(client: httpx.AsyncClient) -> None:
    async with FakeUlazAI() as fake:
        url, body = create_request(fake, "a cat")
        bearer = {"Authorization": f"Bearer {fake.api_key}"}
        resp = await client.post(url, json=body, headers=bearer)
        assert resp.status_code == 401 and resp.json()["success"] is False
        resp = await client.post(url.rstrip("/"), json=body, headers=auth(fake))
        assert resp.status_code == 404


# --------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------

CREDITS_STATUS = {"openai": 429}
POLICY_STATUS = {"ulazai": 422}


async def _fault_target(
    fake: FakeProvider, client: httpx.AsyncClient, kind: str
) -> tuple[str, str, JSON | None]:
    """(method, url, json) of a request the fault applies to."""
    if kind == "unknown_task":
        task_id = await create(client, fake)
        return "GET", status_url(fake, task_id), None
    url, body = create_request(fake, "a cat")
    return "POST", url, body


@pytest.mark.parametrize("kind", sorted(FAULT_KINDS))
async def test_fault_is_served(fake: FakeProvider, client: httpx.AsyncClient, kind: str) -> None:
    method, url, body = await _fault_target(fake, client, kind)
    fake.inject(kind, retry_after=2 if kind == "rate_limit" else None, delay=0.2)
    started = time.monotonic()
    if kind == "connection_reset":
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.request(method, url, json=body, headers=auth(fake))
    else:
        resp = await client.request(method, url, json=body, headers=auth(fake))
        _check_fault(fake, kind, resp, time.monotonic() - started)
    assert fake.requests[-1].fault == kind
    assert fake.pending_faults == []
    # consumed: the same request now gets a normal answer
    again = await client.request(method, url, json=body, headers=auth(fake))
    assert again.status_code in (200, 201) and again.json()


def _check_fault(fake: FakeProvider, kind: str, resp: httpx.Response, elapsed: float) -> None:
    ctype = resp.headers.get("content-type", "")
    if kind.startswith("html_"):
        assert resp.status_code == int(kind[5:])
        assert ctype.startswith("text/html") and "<html" in resp.text
    elif kind == "truncated_json":
        assert resp.status_code == 200 and ctype == "application/json" and resp.content
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.content)
    elif kind == "empty_body":
        assert resp.status_code == 200 and resp.content == b""
    elif kind == "slow":
        assert resp.status_code in (200, 201) and elapsed >= 0.2
    elif kind == "rate_limit":
        assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
        assert error_code(fake, resp) in (429, "rate_limit_exceeded")
    elif kind == "server_error":
        assert resp.status_code == 500
        assert error_code(fake, resp) in (500, "server_error")
    elif kind == "unknown_task":
        assert resp.status_code == 404
        assert error_code(fake, resp) in (404, "invalid_request_error")
    elif kind == "auth":
        assert resp.status_code == 401
        assert error_code(fake, resp) in (401, "invalid_api_key", "invalid_request_error")
    elif kind == "insufficient_credits":
        assert resp.status_code == CREDITS_STATUS.get(fake.name, 402)
        assert error_code(fake, resp) in (402, "insufficient_quota")
    elif kind == "content_policy_on_create":
        assert resp.status_code == POLICY_STATUS.get(fake.name, 400)
        assert error_code(fake, resp) in (400, 422, "moderation_blocked")
    else:  # pragma: no cover
        raise AssertionError(kind)


async def test_fault_path_times_and_rules(client: httpx.AsyncClient) -> None:
    async with FakeSoraVideo(generation_seconds=GEN) as fake:
        fake.inject("server_error", times=2, path="/credits")
        task_id = await create(client, fake)  # not /credits: untouched
        credits = f"{fake.base_url}/credits"
        statuses = [(await client.get(credits, headers=auth(fake))).status_code for _ in range(3)]
        assert statuses == [500, 500, 200]
        fake.inject("unknown_task")  # waits for a status request
        assert (await client.get(credits, headers=auth(fake))).status_code == 200
        assert (await client.get(status_url(fake, task_id), headers=auth(fake))).status_code == 404
        fake.inject("html_503", times=-1)
        for _ in range(3):
            assert (await client.get(credits, headers=auth(fake))).status_code == 503
        fake.clear_faults()
        assert (await client.get(credits, headers=auth(fake))).json()["data"]["credits"] == 990
        with pytest.raises(ValueError):
            fake.inject("meteor_strike")


async def test_fractional_retry_after(client: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        fake.inject("rate_limit", retry_after=0.25)
        resp = await client.get(f"{fake.base_url}/videos", headers=auth(fake))
        assert resp.status_code == 429 and resp.headers["retry-after"] == "0.25"
        assert resp.json()["error"]["code"] == "rate_limit_exceeded"


async def test_sora2api_http_200_errors(client: httpx.AsyncClient) -> None:
    async with FakeSora2API() as fake:
        fake.http_200_errors = True
        url, body = create_request(fake, "a cat")
        resp = await client.post(url, json=body, headers=auth(fake, "nope"))
        assert resp.status_code == 200 and resp.json()["code"] == 401
        fake.inject("insufficient_credits")
        resp = await client.post(url, json=body, headers=auth(fake))
        assert resp.status_code == 200 and resp.json() == {
            "code": 402,
            "msg": "Insufficient credits",
            "data": None,
        }
        fake.http_200_errors = False
        resp = await client.get(f"{fake.base_url}/record-info?taskId=nope", headers=auth(fake))
        assert resp.status_code == 404 and resp.json()["code"] == 404


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


async def test_apixo_validation(client: httpx.AsyncClient) -> None:
    async with FakeApixo() as fake:
        url, good = create_request(fake, "a cat")

        def variant(**changes: Any) -> JSON:
            body: JSON = json.loads(json.dumps(good))
            body["input"].update(changes)
            return body

        for bad in (
            variant(aspect_ratio="square"),
            variant(duration=5),
            variant(duration="4"),
            variant(mode="image-to-video"),
            variant(prompt=""),
            {**good, "request_type": "callback"},
            {**good, "provider": "auto"},
        ):
            resp = await client.post(url, json=bad, headers=auth(fake))
            assert resp.status_code == 400, bad
            assert resp.json()["code"] == 400 and resp.json()["data"]["error"]
        pro = {
            **good,
            "input": {"mode": "text-to-video", "prompt": "x", "duration": 8, "size": "720*1280"},
        }
        resp = await client.post(
            f"{fake.base_url}/generateTask/sora-2-pro", json=pro, headers=auth(fake)
        )
        task_id = resp.json()["data"]["taskId"]
        assert fake.tasks[task_id].model == "sora-2-pro"
        wrong_model = await client.get(status_url(fake, task_id), headers=auth(fake))
        assert wrong_model.status_code == 404
        resp = await client.get(
            f"{fake.base_url}/statusTask/sora-2-pro?taskId={task_id}", headers=auth(fake)
        )
        assert resp.json()["data"]["state"] == "pending"
        bad_json = await client.post(
            url, content=b"{nope", headers={**auth(fake), "Content-Type": "application/json"}
        )
        assert bad_json.status_code == 400


async def test_missing_fields_refused(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    url, _ = create_request(fake, "a cat")
    resp = await client.post(url, json={}, headers=auth(fake))
    assert resp.status_code == (200 if _http_200(fake) else 400)
    assert error_code(fake, resp) in (400, "missing_required_parameter")
    assert fake.tasks == {}


async def test_soravideo_upload_and_credits(client: httpx.AsyncClient) -> None:
    async with FakeSoraVideo() as fake:
        png = make_png(64, 32)
        files = {"file": ("cat.png", png, "image/png")}
        resp = await client.post(f"{fake.base_url}/upload", files=files, headers=auth(fake))
        assert resp.status_code == 200, resp.text
        url = resp.json()["data"]["url"]
        served = await client.get(url)
        assert served.content == png and served.headers["content-type"] == "image/png"
        rec = fake.last_request("upload")
        assert rec.files["file"] == ("cat.png", "image/png", png)
        bad = {"file": ("cat.txt", b"hello", "text/plain")}
        assert (await client.post(f"{fake.base_url}/upload", files=bad, headers=auth(fake))).json()[
            "code"
        ] == 400
        big = {"file": ("big.png", png + bytes(10 * 1024 * 1024), "image/png")}
        resp = await client.post(f"{fake.base_url}/upload", files=big, headers=auth(fake))
        assert resp.status_code == 400
        body = {"prompt": "move", "imageUrl": url, "duration": 15, "quality": "high"}
        resp = await client.post(
            f"{fake.base_url}/sora2-pro/image-to-video", json=body, headers=auth(fake)
        )
        task = fake.tasks[resp.json()["data"]["task_id"]]
        assert task.mode == "image" and task.model == "sora2-pro"
        credits = await client.get(f"{fake.base_url}/credits", headers=auth(fake))
        assert credits.json() == {"code": 200, "msg": "success", "data": {"credits": 970}}


async def test_ulazai_concurrency_and_failure_shape(client: httpx.AsyncClient) -> None:
    async with FakeUlazAI(generation_seconds=60) as fake:
        ids = [await create(client, fake, f"cat {i}") for i in range(10)]
        url, body = create_request(fake, "one too many")
        resp = await client.post(url, json=body, headers=auth(fake))
        assert resp.status_code == 429
        assert resp.json()["success"] is False and "data" not in resp.json()
        fake.finish(ids[0])
        resp = await client.post(url, json=body, headers=auth(fake))
        assert resp.status_code == 201
        data = resp.json()["data"]
        assert data["credits_charged"] == 80 and isinstance(data["credits_remaining"], int)

        fake.fail_task(ids[1], "content_policy")
        failed = await client.get(status_url(fake, ids[1]), headers=auth(fake))
        assert failed.status_code == 200
        assert failed.json() == {
            "success": False,
            "error": "Video generation failed",
            "error_details": "Content policy violation detected in prompt",
            "credits_refunded": 80,
        }
        processing = (await client.get(status_url(fake, ids[2]), headers=auth(fake))).json()
        assert processing["success"] is True and processing["data"]["status"] == "processing"


async def test_openai_input_reference_and_lifecycle(client: httpx.AsyncClient) -> None:
    async with FakeOpenAI(generation_seconds=GEN) as fake:
        url = f"{fake.base_url}/videos"
        fields = {"model": "sora-2", "prompt": "animate", "seconds": "8", "size": "1280x720"}
        wrong = {"input_reference": ("ref.png", make_png(720, 1280), "image/png")}
        resp = await client.post(url, data=fields, files=wrong, headers=auth(fake))
        assert resp.status_code == 400
        assert resp.json()["error"]["param"] == "input_reference"
        assert resp.json()["error"]["code"] == "invalid_value"
        right = {"input_reference": ("ref.jpg", make_jpeg(1280, 720), "image/jpeg")}
        resp = await client.post(url, data=fields, files=right, headers=auth(fake))
        assert resp.status_code == 200, resp.text
        video = resp.json()
        assert video["object"] == "video" and video["id"].startswith("video_")
        assert video["status"] == "queued" and video["seconds"] == "8"
        assert video["remixed_from_video_id"] is None and video["completed_at"] is None
        rec = fake.last_request("create")
        assert rec.form["size"] == "1280x720" and rec.files["input_reference"][0] == "ref.jpg"
        assert fake.tasks[video["id"]].mode == "image"

        for bad in ({"prompt": "x", "seconds": 4}, {"prompt": "x", "size": "1024x1792"}):
            resp = await client.post(url, json=bad, headers=auth(fake))
            assert resp.status_code == 400 and resp.json()["error"]["code"].startswith("invalid_")

        content = f"{url}/{video['id']}/content"
        early = await client.get(content, headers=auth(fake))
        assert early.status_code == 404
        fake.finish(video["id"])
        assert (await client.get(content)).status_code == 401
        for variant, ctype in (
            ("video", "video/mp4"),
            ("thumbnail", "image/webp"),
            ("spritesheet", "image/jpeg"),
        ):
            got = await client.get(content, params={"variant": variant}, headers=auth(fake))
            assert got.status_code == 200 and got.headers["content-type"] == ctype
        remix = await client.post(
            f"{url}/{video['id']}/remix", json={"prompt": "now at night"}, headers=auth(fake)
        )
        assert remix.json()["remixed_from_video_id"] == video["id"]
        listing = (await client.get(url, headers=auth(fake))).json()
        assert listing["object"] == "list" and len(listing["data"]) == 2
        deleted = await client.delete(f"{url}/{video['id']}", headers=auth(fake))
        assert deleted.json() == {"id": video["id"], "object": "video.deleted", "deleted": True}
        assert (await client.get(f"{url}/{video['id']}", headers=auth(fake))).status_code == 404


def test_image_size_parsers() -> None:
    assert image_size(make_png(1280, 720)) == (1280, 720)
    assert image_size(make_jpeg(720, 1280)) == (720, 1280)
    assert image_size(make_webp(1792, 1024)) == (1792, 1024)
    assert image_size(b"GIF89a" + bytes([16, 0, 8, 0])) == (16, 8)
    assert image_size(b"not an image") is None


# --------------------------------------------------------------------------------------
# callbacks and webhooks
# --------------------------------------------------------------------------------------


async def test_apixo_callback(client: httpx.AsyncClient, receiver: Receiver) -> None:
    async with FakeApixo(generation_seconds=GEN) as fake:
        url, body = create_request(fake, "a cat")
        body = {**body, "request_type": "callback", "callback_url": receiver.url}
        task_id = (await client.post(url, json=body, headers=auth(fake))).json()["data"]["taskId"]
        async_body = create_request(fake, "no callback")[1]
        await client.post(url, json=async_body, headers=auth(fake))
        fake.advance(GEN)
        await receiver.wait(1)
        await asyncio.sleep(0.05)
        assert len(receiver.got) == 1  # only the callback task calls back
        payload = receiver.payloads()[0]
        assert payload["code"] == 200 and payload["data"]["taskId"] == task_id
        assert payload["data"]["state"] == "success"
        assert json.loads(payload["data"]["resultJson"])["resultUrls"] == [fake.media_url(task_id)]
        assert fake.callbacks_sent == [(receiver.url, payload)]
        assert receiver.got[0][0]["Content-Type"] == "application/json"


@pytest.mark.parametrize("variant", ["record", "urls"])
async def test_sora2api_callback_variants_and_duplicates(
    client: httpx.AsyncClient, receiver: Receiver, variant: str
) -> None:
    async with FakeSora2API(generation_seconds=GEN) as fake:
        fake.callback_variant = "urls" if variant == "urls" else "record"
        fake.duplicate_callbacks = 2
        url, body = create_request(fake, "a cat")
        ok = await client.post(url, json={**body, "callBackUrl": receiver.url}, headers=auth(fake))
        failed_body = {**body, "prompt": "a cat #fail", "callBackUrl": receiver.url}
        bad = await client.post(url, json=failed_body, headers=auth(fake))
        ok_id, bad_id = ok.json()["data"]["taskId"], bad.json()["data"]["taskId"]
        fake.advance(GEN)
        await receiver.wait(4)
        by_task: dict[str, list[JSON]] = {}
        for payload in receiver.payloads():
            by_task.setdefault(payload["data"]["taskId"], []).append(payload)
        assert len(by_task[ok_id]) == 2 and by_task[ok_id][0] == by_task[ok_id][1]
        good, failure = by_task[ok_id][0], by_task[bad_id][0]
        assert good["code"] == 200 and failure["code"] == 500
        if variant == "urls":
            assert good["data"]["resultUrls"] == [fake.media_url(ok_id)]
            assert json.loads(good["data"]["promptJson"])["prompt"] == "a cat"
            assert failure["data"]["resultUrls"] == []
        else:
            assert good["data"]["successFlag"] == 1
            assert good["data"]["response"]["imageUrl"] == fake.media_url(ok_id)
            assert failure["data"]["successFlag"] == 3 and failure["data"]["errorMessage"]
        assert len(fake.callbacks_sent) == 4


async def test_callback_retries(client: httpx.AsyncClient, receiver: Receiver) -> None:
    async with FakeSora2API(generation_seconds=GEN) as fake:
        fake.callback_retries = 2
        fake.callback_retry_delay = 0.01
        receiver.status = 503
        url, body = create_request(fake, "a cat")
        await client.post(url, json={**body, "callBackUrl": receiver.url}, headers=auth(fake))
        fake.advance(GEN)
        deliveries = await fake.wait_for_callbacks(3)
        assert [d.attempt for d in deliveries] == [1, 2, 3]
        assert all(d.status == 503 for d in deliveries)


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if abs(time.time() - int(headers["webhook-timestamp"])) > 300:
        return False
    return any(
        hmac.compare_digest(sig.partition(",")[2], expected)
        for sig in headers["webhook-signature"].split()
        if sig.startswith("v1,")
    )


async def test_openai_webhook_signed(client: httpx.AsyncClient, receiver: Receiver) -> None:
    async with FakeOpenAI(generation_seconds=GEN) as fake:
        fake.webhook_url = receiver.url
        fake.duplicate_callbacks = 2
        ok_id = await create(client, fake, "a cat")
        bad_id = await create(client, fake, "a cat #error")
        fake.advance(GEN)
        await receiver.wait(4)
        events: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        for headers, body in receiver.got:
            lowered = {k.lower(): v for k, v in headers.items()}
            assert verify_standard_webhook(fake.webhook_secret, lowered, body)
            assert not verify_standard_webhook(
                "whsec_" + base64.b64encode(b"x" * 32).decode(), lowered, body
            )
            events.setdefault(json.loads(body)["data"]["id"], []).append((lowered, body))
        (h1, b1), (h2, b2) = events[ok_id]
        assert h1["webhook-id"] == h2["webhook-id"] and b1 == b2  # duplicates share the id
        event = json.loads(b1)
        assert event["type"] == "video.completed" and event["object"] == "event"
        assert event["id"].startswith("evt_") and isinstance(event["created_at"], int)
        assert json.loads(events[bad_id][0][1])["type"] == "video.failed"

    body = b'{"hello":"world"}'
    good = fake.sign_webhook(body, msg_id="wh_1", timestamp=int(time.time()))
    assert verify_standard_webhook(fake.webhook_secret, good, body)
    stale = fake.sign_webhook(body, timestamp=int(time.time()) - 3600)
    assert not verify_standard_webhook(fake.webhook_secret, stale, body)
    other = fake.sign_webhook(body, secret="whsec_" + base64.b64encode(b"k" * 32).decode())
    assert not verify_standard_webhook(fake.webhook_secret, other, body)
    assert fake.webhook_secret.startswith("whsec_")
    assert len(base64.b64decode(fake.webhook_secret[6:])) == 32


async def test_no_webhook_without_url(client: httpx.AsyncClient) -> None:
    async with FakeOpenAI(generation_seconds=GEN) as fake:
        await create(client, fake)
        fake.advance(GEN)
        await asyncio.sleep(0.05)
        assert fake.callbacks_sent == []
