"""Bad HTTP replies, fuzzed: the real weather, search and Home Assistant clients against a local server
that answers whatever the current example says (any status, content type and body: truncated JSON,
recorded answers with a part swapped for junk, HTML, huge, slow).

The web skills must answer with a result or a clear ToolError (never "internal error"); the Home
Assistant client with its result or a HomeAssistantError saying why. One aiohttp server on 127.0.0.1
serves the whole module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st

from assistant.config import HomeAssistantSettings
from assistant.errors import HomeAssistantError
from assistant.integrations.homeassistant import HomeAssistantClient
from assistant.ports import EntityState, ModelToolCall
from assistant.tools import ToolRegistry, tools_of
from skills._http import MAX_BODY_BYTES
from skills.search import SearchSkill
from skills.weather import WeatherSkill
from support.fakes import FakeClock
from tests.reliability.fuzzing import FUZZ, junk
from tests.skill_support import DATA, deps


@dataclass(frozen=True)
class Reply:
    """One answer of the server."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b"{}"
    delay_seconds: float = 0.0
    trickle: bool = False
    """Send the body a byte at a time, ``delay_seconds`` apart."""


@dataclass
class Server:
    """The module's server: ``replies`` maps a path (or ``*``) to what it answers now."""

    loop: asyncio.AbstractEventLoop
    url: str = ""
    replies: dict[str, Reply] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        reply = self.replies.get(request.path) or self.replies.get("*") or Reply(404)
        if reply.trickle:
            response = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type})
            await response.prepare(request)
            for byte in reply.body:
                await asyncio.sleep(reply.delay_seconds)
                await response.write(bytes([byte]))
            return response
        await asyncio.sleep(reply.delay_seconds)
        body = None if reply.status in (204, 304) else reply.body
        return web.Response(status=reply.status, body=body, headers={"Content-Type": reply.content_type})

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    loop = asyncio.new_event_loop()
    served = Server(loop)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", served.handle)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    served.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    served.http = httpx.AsyncClient()
    try:
        yield served
    finally:
        loop.run_until_complete(served.http.aclose())
        loop.run_until_complete(runner.cleanup())
        loop.close()


# --- what the server may answer -------------------------------------------------------------------


def _recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _nodes(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_nodes(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_nodes(v) for v in value)
    return 1


def _replace(value: Any, index: int, new: Any) -> Any:
    """``value`` with its ``index``-th node (depth first) replaced by ``new``."""
    counter = [index]

    def walk(node: Any) -> Any:
        if counter[0] == 0:
            counter[0] -= 1
            return new
        counter[0] -= 1
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(value)


def answers(*recorded: str) -> st.SearchStrategy[bytes]:
    """Bodies: recorded answers whole, cut short, or with one part swapped for junk; and anything else."""
    docs = [json.loads(_recorded(name)) for name in recorded]
    swapped = st.sampled_from(docs).flatmap(
        lambda doc: st.builds(
            lambda i, new: json.dumps(_replace(doc, i, new), ensure_ascii=False).encode(),
            st.integers(0, _nodes(doc) - 1),
            junk(6),
        )
    )
    truncated = st.sampled_from([_recorded(name) for name in recorded]).flatmap(
        lambda raw: st.integers(0, len(raw)).map(lambda n: raw[:n])
    )
    return st.one_of(
        st.sampled_from([_recorded(name) for name in recorded]),
        swapped,
        swapped,
        truncated,
        junk(10).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
        st.sampled_from([b"", b"<html><body>502 Bad Gateway</body></html>", b"[" * 5000, b"\xff\xfe{}", b"null"]),
        st.binary(max_size=100),
    )


statuses = st.sampled_from([200] * 6 + [201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503]) | st.integers(200, 599)
content_types = st.sampled_from(
    ["application/json"] * 3 + ["text/html", "text/plain", "application/octet-stream", "application/json; charset=gbk"]
)


def replies(*recorded: str) -> st.SearchStrategy[Reply]:
    return st.builds(Reply, statuses, content_types, answers(*recorded))


OK = Reply()
HUGE = Reply(body=b'{"results": [' + b'{"name": "x"},' * 300_000 + b"{}]}")
SLOW = Reply(body=b"{}", delay_seconds=1.0)
TRICKLE = Reply(body=b'{"results": []}' + b" " * 50, delay_seconds=0.1, trickle=True)


def _tool_answer(server: Server, skill: Any, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    registry = ToolRegistry(FakeClock())
    registry.add_all(tools_of(skill))
    result = server.run(registry.call(ModelToolCall("c1", name, arguments)))
    content = dict(result.content)
    if not result.ok:
        error = content["error"]
        assert isinstance(error, str) and error and "internal error" not in error, error
    return content


# --- weather ----------------------------------------------------------------------------------


def _weather(server: Server) -> WeatherSkill:
    config = WeatherSkill.Config(
        geocoding_url=f"{server.url}/v1/search", forecast_url=f"{server.url}/v1/forecast", timeout_seconds=0.5
    )
    return WeatherSkill(config, deps(http=server.http)[0])


GEOCODE = replies("geocoding_chengdu_zh.json", "geocoding_london_en.json") | st.just(
    Reply(body=_recorded("geocoding_chengdu_zh.json"))
)
FORECAST = replies("forecast_chengdu_metric.json", "forecast_london_imperial.json", "forecast_error.json")


@FUZZ
@given(geocode=GEOCODE, forecast=FORECAST, days_ahead=st.integers(0, 6))
@example(geocode=HUGE, forecast=OK, days_ahead=0)
@example(geocode=Reply(body=_recorded("geocoding_chengdu_zh.json")), forecast=SLOW, days_ahead=0)
@example(geocode=TRICKLE, forecast=OK, days_ahead=0)
@example(geocode=Reply(body=b'{"results": {"latitude": 1}}'), forecast=OK, days_ahead=0)
@example(geocode=Reply(body=b'{"results": [{"latitude": {}, "longitude": []}]}'), forecast=OK, days_ahead=0)
def test_weather_answers_or_explains_whatever_the_service_sends(
    server: Server, geocode: Reply, forecast: Reply, days_ahead: int
) -> None:
    server.replies = {"/v1/search": geocode, "/v1/forecast": forecast}
    content = _tool_answer(server, _weather(server), "get_weather", {"location": "成都", "days_ahead": days_ahead})
    if content["ok"]:
        assert isinstance(content["place"], str) and isinstance(content["forecast"], dict)


def test_a_body_over_the_limit_is_refused_unread(server: Server) -> None:
    server.replies = {"*": Reply(body=b" " * (MAX_BODY_BYTES + 10) + b"{}")}
    content = _tool_answer(server, _weather(server), "get_weather", {"location": "成都"})
    assert content == {"ok": False, "error": "the weather service sent an answer too large to read"}


def test_a_server_trickling_bytes_times_out_like_a_silent_one(server: Server) -> None:
    server.replies = {"*": Reply(body=b"{}" + b" " * 40, delay_seconds=0.1, trickle=True)}
    content = _tool_answer(server, _weather(server), "get_weather", {"location": "成都"})
    assert content == {"ok": False, "error": "the weather service did not answer in time"}


# --- search -----------------------------------------------------------------------------------

PROVIDERS = {
    "wikipedia": ("/w/api.php", "wikipedia_query.json"),
    "duckduckgo": ("/", "duckduckgo_instant.json"),
    "searxng": ("/search", "searxng_results.json"),
}


@FUZZ
@given(data=st.data(), provider=st.sampled_from(sorted(PROVIDERS)))
def test_search_answers_or_explains_whatever_the_provider_sends(
    server: Server, data: st.DataObject, provider: str
) -> None:
    path, recorded = PROVIDERS[provider]
    server.replies = {path: data.draw(replies(recorded), label="reply")}
    settings = SearchSkill.Config(providers=(provider,), **{f"{provider}_url": server.url}, timeout_seconds=0.5)  # type: ignore[arg-type]
    skill = SearchSkill(settings, deps(http=server.http)[0])
    content = _tool_answer(server, skill, "web_search", {"query": "大熊猫"})
    if content["ok"]:
        for result in content["results"]:
            assert all(isinstance(result[key], str) for key in ("title", "snippet", "source"))


# --- Home Assistant ---------------------------------------------------------------------------

STATES = json.dumps([{"entity_id": "light.kitchen", "state": "on", "attributes": {"friendly_name": "厨房灯"}}]).encode()
HA_CALLS = ["check", "get_states", "get_state", "call_service", "converse"]


async def _ask_home_assistant(server: Server, call: str) -> Any:
    settings = HomeAssistantSettings(enabled=True, url=server.url, token="t0ken", timeout_seconds=0.5, retries=1)  # type: ignore[arg-type]
    client = HomeAssistantClient(settings, retry_initial_seconds=0.001)
    try:
        match call:
            case "check":
                return await client.check()
            case "get_states":
                return await client.get_states()
            case "get_state":
                return await client.get_state("light.kitchen")
            case "call_service":
                return await client.call_service("light", "turn_on", {"entity_id": "light.kitchen"})
            case _:
                return await client.converse("开灯")
    finally:
        await client.close()


ha_bodies = st.one_of(
    st.just(STATES),
    st.builds(lambda i, new: json.dumps(_replace(json.loads(STATES), i, new)).encode(), st.integers(0, 5), junk(6)),
    junk(10).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.sampled_from([b"", b"<html>502</html>", b"[" * 5000, b'{"message": "API running."}', b"\xff"]),
    st.binary(max_size=60),
)


@FUZZ
@given(call=st.sampled_from(HA_CALLS), reply=st.builds(Reply, statuses, content_types, ha_bodies))
@example(call="get_states", reply=Reply(body=b"[" * 5000))
@example(call="get_states", reply=SLOW)
@example(call="converse", reply=Reply(body=b'{"response": {"speech": []}}'))
def test_home_assistant_client_returns_or_raises_a_home_assistant_error(
    server: Server, call: str, reply: Reply
) -> None:
    server.replies = {"*": reply}
    try:
        answer = server.run(_ask_home_assistant(server, call))
    except HomeAssistantError as err:
        assert err.reason in ("auth", "unavailable", "rejected")
        message = str(err)
        assert server.url in message and "t0ken" not in message and len(message) < 500, message
        return
    match call:
        case "get_states":
            assert all(isinstance(s, EntityState) for s in answer)
        case "get_state":
            assert isinstance(answer, EntityState)
        case "converse":
            assert isinstance(answer, str)


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("wikipedia", b'{"query": null}'),
        ("wikipedia", b'{"query": {"pages": [{"index": {}, "extract": "a"}, {"index": 1, "extract": "b"}]}}'),
        ("searxng", b'{"results": 5}'),
    ],
)
def test_search_answers_of_the_wrong_shape_found_by_the_fuzzer(server: Server, provider: str, body: bytes) -> None:
    server.replies = {PROVIDERS[provider][0]: Reply(body=body)}
    settings = SearchSkill.Config(providers=(provider,), **{f"{provider}_url": server.url})  # type: ignore[arg-type]
    skill = SearchSkill(settings, deps(http=server.http)[0])
    content = _tool_answer(server, skill, "web_search", {"query": "大熊猫"})
    assert content["ok"] and isinstance(content["results"], list)


async def test_a_request_too_long_for_a_url_is_a_clear_tool_error_not_an_internal_one() -> None:
    """httpx refuses URL parts over 64 KiB with InvalidURL, which is not one of its HTTP errors."""
    from assistant.errors import ToolError
    from skills._http import JsonGetter

    getter = JsonGetter(None, "weather", timeout_seconds=5)
    try:
        with pytest.raises(ToolError, match="too long"):
            await getter.get("http://127.0.0.1:9/search", {"name": "x" * 70_000})
    finally:
        await getter.aclose()
