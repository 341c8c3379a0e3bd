"""The weather skill against a local server replaying Open-Meteo's geocoding and forecast APIs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from assistant.errors import ToolError
from skills._places import Choice, choose, label
from skills.weather import WeatherSkill, describe
from tests.skill_support import ReplayServer, Seen, deps, fixture

GEOCODED = {
    "成都": "geocoding_chengdu_zh.json",
    "London": "geocoding_london_en.json",
    "北京": "geocoding_beijing_zh.json",
    "广州": "geocoding_guangzhou_zh.json",
    "四川": "geocoding_sichuan_zh.json",
    "白沙": "geocoding_baisha_zh.json",
    "海口": "geocoding_haikou_zh.json",
}


def geocode(seen: Seen) -> tuple[int, Any]:
    """Open-Meteo's search: the known results in its own order, at most ``count`` of them (default 10)."""
    found = fixture(GEOCODED.get(seen.query["name"], "geocoding_empty.json"))
    if "results" in found:
        found["results"] = found["results"][: int(seen.query.get("count", 10))]
    return 200, found


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


async def weather(server: ReplayServer, home: str = "成都", **config: Any) -> WeatherSkill:
    settings = WeatherSkill.Config(
        geocoding_url=f"{server.url}/v1/search", forecast_url=f"{server.url}/v1/forecast", **config
    )
    return WeatherSkill(settings, deps(home_location=home, region="CN")[0])


def forecast_at(server: ReplayServer) -> tuple[float, float]:
    asked = next(s.query for s in server.seen if s.path == "/v1/forecast")
    return float(asked["latitude"]), float(asked["longitude"])


async def test_chinese_place_with_suffix_is_geocoded_and_forecast_in_metric(server: ReplayServer) -> None:
    skill = await weather(server)
    result = await skill.get_weather("成都市")
    await skill.aclose()

    lookups = [s.query for s in server.seen if s.path == "/v1/search"]
    assert [q["name"] for q in lookups] == ["成都市", "成都"]
    assert lookups[0]["language"] == "zh" and lookups[0]["count"] == "10"
    asked = next(s.query for s in server.seen if s.path == "/v1/forecast")
    assert (asked["latitude"], asked["longitude"]) == ("30.66667", "104.06667")
    assert "note" not in result  # a clear match needs no naming
    assert "temperature_unit" not in asked and asked["forecast_days"] == "1" and "current" in asked
    assert result == {
        "place": "成都市, 四川省, 中国",
        "units": {"temperature": "°C", "wind": "km/h", "precipitation": "mm"},
        "current": {
            "temperature": 12.4,
            "feels_like": 10.9,
            "humidity_percent": 83,
            "wind_speed": 5.8,
            "precipitation": 0.3,
            "conditions": "light rain",
            "conditions_zh": "小雨",
        },
        "forecast": {
            "date": "2026-11-25",
            "high": 14.1,
            "low": 9.8,
            "precipitation_chance_percent": 78,
            "wind_max": 9.4,
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
    assert result["units"] == {"temperature": "°F", "wind": "mph", "precipitation": "inch"}
    assert "current" not in result
    assert result["forecast"] == {
        "date": "2026-11-27",
        "high": 47.3,
        "low": 40.8,
        "precipitation_chance_percent": 90,
        "wind_max": 22.0,
        "conditions": "thunderstorm",
        "conditions_zh": "雷阵雨",
    }


async def test_the_capital_wins_over_villages_the_geocoder_ranks_first(server: ReplayServer) -> None:
    # Open-Meteo has ranked hamlets in Chongqing and Sichuan above the capital for 北京 (geocoding-api#20).
    skill = await weather(server)
    result = await skill.get_weather("北京")
    await skill.aclose()
    assert forecast_at(server) == (39.9075, 116.39723)
    assert result["place"] == "北京, 北京市, 中国" and "note" not in result


async def test_a_capital_missing_from_the_results_is_found_under_its_full_name() -> None:
    server = ReplayServer()

    def villages_only(seen: Seen) -> tuple[int, Any]:
        found = fixture("geocoding_beijing_zh.json")
        if seen.query["name"] == "北京":
            return 200, {"results": found["results"][:2]}
        return 200, {"results": found["results"][2:]} if seen.query["name"] == "北京市" else {}

    server.json("GET", "/v1/search", villages_only)
    server.json("GET", "/v1/forecast", forecast)
    await server.start()
    skill = await weather(server)
    await skill.get_weather("北京")
    await skill.aclose()
    await server.aclose()
    assert [s.query["name"] for s in server.seen if s.path == "/v1/search"] == ["北京", "北京市"]
    assert forecast_at(server) == (39.9075, 116.39723)


async def test_traditional_characters_are_looked_up_in_simplified(server: ReplayServer) -> None:
    skill = await weather(server)
    result = await skill.get_weather("廣州")
    await skill.aclose()
    assert [s.query["name"] for s in server.seen if s.path == "/v1/search"] == ["广州"]
    assert forecast_at(server) == (23.11667, 113.25)
    assert result["place"] == "广州, 广东省, 中国"


async def test_a_province_means_its_capital_and_the_answer_says_so(server: ReplayServer) -> None:
    skill = await weather(server)
    result = await skill.get_weather("四川省")
    await skill.aclose()
    assert forecast_at(server) == (30.66667, 104.06667)  # 成都, not the province's centre on the plateau
    assert result["note"] == "四川省 is a province: this is the weather of its capital, 成都市，四川; say so"


async def test_a_doubtful_choice_prefers_the_home_province_and_names_the_place(server: ReplayServer) -> None:
    skill = await weather(server, home="海口")
    result = await skill.get_weather("白沙")
    await skill.aclose()
    assert forecast_at(server) == (19.2243, 109.4456)  # the 白沙 in 海南, where the household lives
    assert result["note"] == "several places are called 白沙: say that this is the weather for 白沙，海南"


async def test_failures_after_the_first_answer_lose_nothing() -> None:
    server = ReplayServer()

    def flaky(seen: Seen) -> tuple[int, Any]:
        if seen.query["name"] == "白沙市":  # the second spelling meets an outage
            return 503, {"error": True, "reason": "Service Unavailable"}
        return geocode(seen)

    server.json("GET", "/v1/search", flaky)
    server.json("GET", "/v1/forecast", forecast)
    await server.start()
    skill = await weather(server, home="Atlantis")  # a home town the geocoder does not know
    result = await skill.get_weather("白沙")
    await skill.aclose()
    await server.aclose()
    assert forecast_at(server) == (22.25639, 112.84972)  # the first 白沙 the geocoder gave
    assert result["note"] == "several places are called 白沙: say that this is the weather for 白沙，广东"


async def test_a_district_is_found_without_its_suffix() -> None:
    haidian = {"id": 2037997, "name": "海淀区", "latitude": 39.95, "longitude": 116.3, "feature_code": "ADM3",
               "country_code": "CN", "population": 3133469, "country": "中国", "admin1": "北京市"}  # fmt: skip
    server = ReplayServer()
    server.json("GET", "/v1/search", lambda seen: (200, {"results": [haidian]} if seen.query["name"] == "海淀" else {}))
    server.json("GET", "/v1/forecast", forecast)
    await server.start()
    skill = await weather(server)
    result = await skill.get_weather("海淀区")
    await skill.aclose()
    await server.aclose()
    assert forecast_at(server) == (39.95, 116.3) and result["place"] == "海淀区, 北京市, 中国"


def test_among_equals_a_place_in_the_home_country_wins() -> None:
    abroad = {"id": 1, "name": "Richmond", "latitude": 1.0, "longitude": 2.0, "feature_code": "PPLA2",
              "country_code": "US", "admin1": "Virginia", "population": 226610}  # fmt: skip
    at_home = {"id": 2, "name": "Richmond", "latitude": 3.0, "longitude": 4.0, "feature_code": "PPLA2",
               "country_code": "GB", "admin1": "England", "population": 21469}  # fmt: skip
    assert choose([abroad, at_home], country="GB") == Choice(at_home, doubtful=True)
    assert choose([abroad, at_home]) == Choice(abroad, doubtful=True)  # no home: the larger one


def test_a_big_district_elsewhere_makes_the_choice_doubtful_a_small_seat_does_not() -> None:
    city = {"id": 1, "name": "朝阳市", "latitude": 41.57, "longitude": 120.45, "feature_code": "PPLA2",
            "country_code": "CN", "admin1": "辽宁省", "population": 340000}  # fmt: skip
    district = {"id": 2, "name": "朝阳区", "latitude": 39.92, "longitude": 116.44, "feature_code": "ADM3",
                "country_code": "CN", "admin1": "北京市", "population": 3545000}  # fmt: skip
    town = {"id": 3, "name": "朝阳镇", "latitude": 42.9, "longitude": 125.9, "feature_code": "PPLA4",
            "country_code": "CN", "admin1": "吉林省", "population": 20000}  # fmt: skip
    assert choose([city, district], country="CN") == Choice(city, doubtful=True)
    assert choose([city, town], country="CN") == Choice(city, doubtful=False)
    assert label(city, home_country="CN") == "朝阳市，辽宁"  # no country at home, Chinese comma


def test_light_and_heavy_freezing_drizzle_and_rain_are_told_apart() -> None:
    assert describe(56) == ("light freezing drizzle", "小冻毛毛雨")
    assert describe(57) == ("dense freezing drizzle", "大冻毛毛雨")
    assert describe(66) == ("light freezing rain", "小冻雨")
    assert describe(67) == ("heavy freezing rain", "大冻雨")


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
