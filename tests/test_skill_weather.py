"""The weather skill against a local server replaying Open-Meteo's geocoding and forecast APIs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from assistant.errors import ToolError
from skills.weather import WeatherSkill
from tests.skill_support import ReplayServer, Seen, deps, fixture


def geocode(seen: Seen) -> tuple[int, Any]:
    known = {"成都": "geocoding_chengdu_zh.json", "London": "geocoding_london_en.json"}
    return 200, fixture(known.get(seen.query["name"], "geocoding_empty.json"))


def forecast(seen: Seen) -> tuple[int, Any]:
    if float(seen.query["latitude"]) > 90:
        return 400, fixture("forecast_error.json")
    if seen.query.get("temperature_unit") == "fahrenheit":
        return 200, fixture("forecast_london_imperial.json")
    return 200, fixture("forecast_chengdu_metric.json")


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    server = ReplayServer()
    server.json("GET", "/v1/search", geocode)
    server.json("GET", "/v1/forecast", forecast)
    await server.start()
    yield server
    await server.aclose()


async def weather(server: ReplayServer, **config: Any) -> WeatherSkill:
    settings = WeatherSkill.Config(
        geocoding_url=f"{server.url}/v1/search", forecast_url=f"{server.url}/v1/forecast", **config
    )
    return WeatherSkill(settings, deps(home_location="成都")[0])


async def test_chinese_place_with_suffix_is_geocoded_and_forecast_in_metric(server: ReplayServer) -> None:
    skill = await weather(server)
    result = await skill.get_weather("成都市")
    await skill.aclose()

    lookups = [s.query for s in server.seen if s.path == "/v1/search"]
    assert [q["name"] for q in lookups] == ["成都市", "成都"]
    assert lookups[0]["language"] == "zh"
    asked = next(s.query for s in server.seen if s.path == "/v1/forecast")
    assert (asked["latitude"], asked["longitude"]) == ("30.66667", "104.06667")
    assert "temperature_unit" not in asked and asked["forecast_days"] == "1" and "current" in asked
    assert result == {
        "place": "成都市, 四川省, 中国",
        "units": {"temperature": "°C", "wind": "km/h"},
        "current": {
            "temperature": 12.4,
            "feels_like": 10.9,
            "humidity_percent": 83,
            "wind_speed": 5.8,
            "conditions": "light rain",
            "conditions_zh": "小雨",
        },
        "forecast": {
            "date": "2026-11-25",
            "high": 14.1,
            "low": 9.8,
            "precipitation_chance_percent": 78,
            "conditions": "light rain",
            "conditions_zh": "小雨",
        },
    }


async def test_english_place_in_imperial_units_for_a_later_day(server: ReplayServer) -> None:
    skill = await weather(server, units="imperial")
    result = await skill.get_weather("London", days_ahead=2)
    await skill.aclose()
    search = next(s.query for s in server.seen if s.path == "/v1/search")
    asked = next(s.query for s in server.seen if s.path == "/v1/forecast")
    assert search["language"] == "en"
    assert asked["temperature_unit"] == "fahrenheit" and asked["wind_speed_unit"] == "mph"
    assert asked["forecast_days"] == "3" and "current" not in asked
    assert result["units"] == {"temperature": "°F", "wind": "mph"}
    assert "current" not in result
    assert result["forecast"] == {
        "date": "2026-11-27",
        "high": 47.3,
        "low": 40.8,
        "precipitation_chance_percent": 90,
        "conditions": "thunderstorm",
        "conditions_zh": "雷阵雨",
    }


async def test_no_place_means_home_and_places_are_looked_up_once(server: ReplayServer) -> None:
    skill = await weather(server)
    await skill.get_weather("成都")
    await skill.get_weather()
    await skill.aclose()
    assert [s.query["name"] for s in server.seen if s.path == "/v1/search"] == ["成都"]


async def test_unknown_place_is_a_readable_error(server: ReplayServer) -> None:
    skill = await weather(server)
    with pytest.raises(ToolError, match="no place called 'Atlantis'"):
        await skill.get_weather("Atlantis")
    await skill.aclose()


async def test_service_refusal_and_outage_are_readable_errors() -> None:
    server = ReplayServer()
    server.json("GET", "/v1/search", {"results": [{"name": "Nowhere", "latitude": 130, "longitude": 0}]})
    server.json("GET", "/v1/forecast", forecast)
    await server.start()
    skill = await weather(server)
    with pytest.raises(ToolError, match=r"refused the request \(HTTP 400\)"):
        await skill.get_weather("Nowhere")
    await skill.aclose()
    await server.aclose()

    async with httpx.AsyncClient() as client:
        closed = WeatherSkill(WeatherSkill.Config(geocoding_url="http://127.0.0.1:9/v1/search"), deps(http=client)[0])
        with pytest.raises(ToolError, match="cannot be reached"):
            await closed.get_weather("成都")


async def test_slow_service_times_out_with_a_readable_error() -> None:
    server = ReplayServer()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.8)  # well past the skill's 0.2 s timeout
        return web.json_response({})

    server.raw("GET", "/v1/search", slow)
    await server.start()
    skill = WeatherSkill(WeatherSkill.Config(geocoding_url=f"{server.url}/v1/search", timeout_seconds=0.2), deps()[0])
    with pytest.raises(ToolError, match="did not answer in time"):
        await skill.get_weather("成都")
    await skill.aclose()
    await server.aclose()


def test_bad_units_are_a_config_error() -> None:
    with pytest.raises(ValueError, match="units"):
        WeatherSkill.Config(units="kelvin")  # type: ignore[arg-type]
