"""Weather from Open-Meteo (no key, or a customer key): geocode the place, then conditions and forecast."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr

from assistant.errors import ToolError
from assistant.skills import Skill, SkillConfig, SkillDeps
from assistant.tools import tool

from ._hanzi import has_chinese
from ._http import JsonGetter
from ._places import choose, full_name, is_clear, label, province_capital, query_names, usable

_RESULTS = 10
"""Geocoding results asked for per name: the right place is often not the first (see _places.py)."""

# WMO weather interpretation codes, as documented by Open-Meteo.
_WMO: dict[int, tuple[str, str]] = {
    0: ("clear sky", "晴"),
    1: ("mainly clear", "晴间少云"),
    2: ("partly cloudy", "多云"),
    3: ("overcast", "阴"),
    45: ("fog", "雾"),
    48: ("freezing fog", "冻雾"),
    51: ("light drizzle", "小毛毛雨"),
    53: ("drizzle", "毛毛雨"),
    55: ("dense drizzle", "大毛毛雨"),
    56: ("light freezing drizzle", "小冻毛毛雨"),
    57: ("dense freezing drizzle", "大冻毛毛雨"),
    61: ("light rain", "小雨"),
    63: ("rain", "中雨"),
    65: ("heavy rain", "大雨"),
    66: ("light freezing rain", "小冻雨"),
    67: ("heavy freezing rain", "大冻雨"),
    71: ("light snow", "小雪"),
    73: ("snow", "中雪"),
    75: ("heavy snow", "大雪"),
    77: ("snow grains", "米雪"),
    80: ("light rain showers", "小阵雨"),
    81: ("rain showers", "阵雨"),
    82: ("violent rain showers", "强阵雨"),
    85: ("snow showers", "阵雪"),
    86: ("heavy snow showers", "强阵雪"),
    95: ("thunderstorm", "雷阵雨"),
    96: ("thunderstorm with hail", "雷阵雨伴有冰雹"),
    99: ("thunderstorm with heavy hail", "雷阵雨伴有大冰雹"),
}

_CURRENT = "temperature_2m,apparent_temperature,relative_humidity_2m,weather_code,wind_speed_10m,precipitation"
_DAILY = "weather_code,temperature_2m_max,temperature_2m_min,precipitation_probability_max,wind_speed_10m_max"


def describe(code: Any) -> tuple[str, str]:
    """English and Chinese words for a WMO weather code."""
    if isinstance(code, int | float) and math.isfinite(code):
        return _WMO.get(int(code), ("unknown", "未知"))
    return ("unknown", "未知")


class WeatherSkill(Skill):
    """Current weather and forecasts for any place."""

    name = "weather"
    needs_network = True

    class Config(SkillConfig):
        """Settings of the weather skill."""

        units: Literal["metric", "imperial"] = "metric"
        """metric: °C and km/h; imperial: °F and mph."""
        default_location: str = ""
        """Place used when the user names none; empty means the persona's home town."""
        geocoding_url: str = "https://geocoding-api.open-meteo.com/v1/search"
        """Open-Meteo geocoding endpoint."""
        forecast_url: str = "https://api.open-meteo.com/v1/forecast"
        """Open-Meteo forecast endpoint."""
        timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 6.0
        """Timeout of one HTTP request, in seconds."""
        api_key: SecretStr | None = None
        """Open-Meteo customer API key (sent as ``apikey``, with the customer-api URLs), from ${ENV} or
        api_key_file; null for the free API."""

    def __init__(self, config: Config, deps: SkillDeps) -> None:
        super().__init__(config, deps)
        self.settings = config
        self._web = JsonGetter(deps.http, "weather", config.timeout_seconds)
        self._key: dict[str, str] = {"apikey": config.api_key.get_secret_value()} if config.api_key else {}
        self._places: dict[str, tuple[dict[str, Any], str | None]] = {}

    async def aclose(self) -> None:
        """Close our HTTP client, if we made one."""
        await self._web.aclose()

    @tool(timeout_seconds=15, untrusted_output=True)
    async def get_weather(
        self,
        location: Annotated[
            str,
            Field(
                max_length=100, description="City or place as the user said it, in Chinese or English; empty for home"
            ),
        ] = "",
        days_ahead: Annotated[int, Field(ge=0, le=6, description="0 for today, 1 for tomorrow, up to 6")] = 0,
    ) -> dict[str, object]:
        """Get current weather and the forecast for a place; use it for any weather, rain or temperature question."""
        place, note = await self._geocode(location.strip() or self.settings.default_location or self.deps.home_location)
        metric = self.settings.units == "metric"
        params: dict[str, str | int | float] = {
            "latitude": place["latitude"],
            "longitude": place["longitude"],
            "daily": _DAILY,
            "timezone": "auto",
            "forecast_days": days_ahead + 1,
        }
        if days_ahead == 0:
            params["current"] = _CURRENT
        if not metric:
            params |= {"temperature_unit": "fahrenheit", "wind_speed_unit": "mph", "precipitation_unit": "inch"}
        data = await self._web.get(self.settings.forecast_url, params | self._key)
        result: dict[str, object] = {
            "place": full_name(place),
            "units": {
                "temperature": "°C" if metric else "°F",
                "wind": "km/h" if metric else "mph",
                "precipitation": "mm" if metric else "inch",
            },
        }
        if note:
            result["note"] = note
        try:
            if days_ahead == 0:
                result["current"] = _current(data["current"])
            result["forecast"] = _day(data["daily"], days_ahead)
        except (LookupError, TypeError, AttributeError):  # the service's JSON, of whatever shape it came
            raise ToolError("the weather service sent an incomplete forecast") from None
        return result

    async def _geocode(self, said: str) -> tuple[dict[str, Any], str | None]:
        """The place for a name the user said, and a note for the model when it should name the place."""
        if not said:
            raise ToolError("no place given and no home town configured; ask the user which place they mean")
        key = said.casefold()
        if key in self._places:
            return self._places[key]
        province = province_capital(said)
        found = await self._lookup(province[1] if province else said)
        choice = choose(found, country=self.deps.region)
        if choice is None:
            raise ToolError(f"no place called {said!r} was found; ask the user to say it another way")
        if choice.doubtful:
            # Among equals, the one in the household's own province is the likelier meaning.
            choice = choose(found, country=self.deps.region, admin1=await self._home_admin1(key)) or choice
        note = None
        place = label(choice.place, home_country=self.deps.region)
        if province:
            note = f"{said} is a province: this is the weather of its capital, {place}; say so"
        elif choice.doubtful:
            note = f"several places are called {said}: say that this is the weather for {place}"
        self._places[key] = (choice.place, note)
        return choice.place, note

    async def _home_admin1(self, asked: str) -> str:
        """The province of the home town; empty when there is none, or it is what was asked, or not found."""
        home = self.deps.home_location
        if not home or home.casefold() == asked:
            return ""
        try:
            place, _ = await self._geocode(home)
        except ToolError:  # a tie-break only: the answer stands without it
            return ""
        return str(place.get("admin1") or "")

    async def _lookup(self, said: str) -> list[dict[str, Any]]:
        """Geocoding results for each spelling of ``said`` in turn, until one gives a clear match."""
        language = "zh" if has_chinese(said) else "en"
        found: list[dict[str, Any]] = []
        for name in query_names(said):
            params: dict[str, str | int | float] = {"name": name, "count": _RESULTS, "language": language}
            try:
                answer = await self._web.get(self.settings.geocoding_url, params | {"format": "json"} | self._key)
            except ToolError:
                if found:  # another spelling failed: choose among what the first ones found
                    break
                raise
            found += usable(answer)
            if any(is_clear(p) for p in found):
                break
        return found


def _current(current: dict[str, Any]) -> dict[str, object]:
    english, chinese = describe(current.get("weather_code"))
    return {
        "temperature": current["temperature_2m"],
        "feels_like": current.get("apparent_temperature"),
        "humidity_percent": current.get("relative_humidity_2m"),
        "wind_speed": current.get("wind_speed_10m"),
        "precipitation": current.get("precipitation"),
        "conditions": english,
        "conditions_zh": chinese,
    }


def _day(daily: dict[str, Any], index: int) -> dict[str, object]:
    english, chinese = describe(daily["weather_code"][index])
    return {
        "date": daily["time"][index],
        "high": daily["temperature_2m_max"][index],
        "low": daily["temperature_2m_min"][index],
        "precipitation_chance_percent": _at(daily.get("precipitation_probability_max"), index),
        "wind_max": _at(daily.get("wind_speed_10m_max"), index),
        "conditions": english,
        "conditions_zh": chinese,
    }


def _at(values: Any, index: int) -> object:
    """The day's value of an optional daily series; None when the service left it out."""
    return values[index] if isinstance(values, list) and index < len(values) else None
