"""Choosing the place a user meant among Open-Meteo's geocoding results: pure logic, no I/O.

The geocoder ranks by its own relevance, which can put a village first: for 北京 with ``language=zh`` it
has ranked hamlets in Chongqing and Sichuan above the capital (open-meteo/geocoding-api#20). So the skill
asks for several results and prefers capitals and administrative seats (GeoNames feature codes PPLC,
PPLA…PPLA4), then the household's country, then its province, then population; and it says which place
it chose when the choice is doubtful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._hanzi import has_chinese, simplified

# Users say 成都市, 四川省 or 海淀区; GeoNames often knows the bare name only.
_SUFFIXES = ("特别行政区", "自治州", "自治区", "自治县", "新区", "地区", "市", "省", "县", "区", "镇", "乡")

_SEAT_RANK = {"PPLC": 5, "PPLA": 4, "PPLA2": 3, "PPLA3": 2, "PPLA4": 1}
"""GeoNames feature codes of capitals and seats of administrative divisions, the national capital first."""

_TOWN_POPULATION = 100_000
"""Inhabitants from which a place that is no administrative seat still counts as a clear match."""

# Provinces and autonomous regions: weather "for Sichuan" is the weather of its capital, not of the
# province's centroid in the mountains. Municipalities (北京, 上海, 天津, 重庆) and the SARs are cities.
_CAPITALS = {
    "河北": "石家庄", "山西": "太原", "辽宁": "沈阳", "吉林": "长春", "黑龙江": "哈尔滨", "江苏": "南京",
    "浙江": "杭州", "安徽": "合肥", "福建": "福州", "江西": "南昌", "山东": "济南", "河南": "郑州",
    "湖北": "武汉", "湖南": "长沙", "广东": "广州", "海南": "海口", "四川": "成都", "贵州": "贵阳",
    "云南": "昆明", "陕西": "西安", "甘肃": "兰州", "青海": "西宁", "台湾": "台北", "内蒙古": "呼和浩特",
    "广西": "南宁", "西藏": "拉萨", "宁夏": "银川", "新疆": "乌鲁木齐",
}  # fmt: skip
_REGION_SUFFIXES = ("壮族自治区", "回族自治区", "维吾尔自治区", "自治区", "省")
_ALSO_A_CITY = frozenset({"吉林"})
"""Bare province names that are also a city's name: 吉林 is the city, 吉林省 the province."""


@dataclass(frozen=True)
class Choice:
    """The place chosen for a name the user said."""

    place: dict[str, Any]
    """The geocoding result: name, latitude, longitude, admin1, country, country_code, feature_code …"""
    doubtful: bool
    """Another place with that name is about as likely, or the match is only a village."""


def province_capital(said: str) -> tuple[str, str] | None:
    """``(province, capital)`` when ``said`` names a province or autonomous region (四川, 广东省)."""
    name = simplified(said.strip())
    for suffix in _REGION_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in _CAPITALS:
            return name[: -len(suffix)], _CAPITALS[name[: -len(suffix)]]
    if name in _CAPITALS and name not in _ALSO_A_CITY:
        return name, _CAPITALS[name]
    return None


def query_names(said: str) -> list[str]:
    """Names to ask the geocoder, most likely first: Simplified, as said, without 市/区 (or with 市)."""
    name = simplified(said.strip())
    names = [name, said.strip()]
    if has_chinese(name):
        bare = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s) and len(name) > len(s) + 1), None)
        # GeoNames knows some cities only as 北京市, and ranks villages called 北京 above the capital.
        names.append(bare if bare else name + "市")
    return list(dict.fromkeys(names))


def usable(results: Any) -> list[dict[str, Any]]:
    """The results of a geocoding answer that have finite coordinates."""
    found = results.get("results") if isinstance(results, dict) else None
    return [
        r
        for r in (found if isinstance(found, list) else [])
        if isinstance(r, dict) and _is_coordinate(r.get("latitude")) and _is_coordinate(r.get("longitude"))
    ]


def is_clear(place: dict[str, Any]) -> bool:
    """A capital, an administrative seat or a town of some size: not a same-named hamlet."""
    return _seat(place) > 0 or _population(place) >= _TOWN_POPULATION


def choose(places: Sequence[dict[str, Any]], *, country: str = "", admin1: str = "") -> Choice | None:
    """The likeliest place, preferring seats, then ``country`` (ISO code), then ``admin1``, then size."""
    if not places:
        return None
    unique = list({_key(p): p for p in places}.values())  # a place found under two spellings counts once

    def rank(place: dict[str, Any]) -> tuple[int, bool, bool, int]:
        in_country = bool(country) and str(place.get("country_code", "")).upper() == country.upper()
        in_admin1 = bool(admin1) and place.get("admin1") == admin1
        return _seat(place), in_country, in_admin1, _population(place)

    ranked = sorted(unique, key=rank, reverse=True)
    best = ranked[0]
    return Choice(best, doubtful=not is_clear(best) or any(_rivals(p, best) for p in ranked[1:]))


def label(place: dict[str, Any], *, home_country: str = "") -> str:
    """How to name the place aloud: 广州，广东 (the country only when it is not home), or Paris, Texas."""
    name = str(place.get("name") or "")
    chinese = has_chinese(name)
    admin1 = _short(place.get("admin1")) if chinese else str(place.get("admin1") or "")
    parts = [name]
    if admin1 and admin1 != _short(name):  # not 北京，北京
        parts.append(admin1)
    if not home_country or str(place.get("country_code", "")).upper() != home_country.upper():
        parts.append(str(place.get("country") or ""))
    return ("，" if chinese else ", ").join(part for part in parts if part)


def full_name(place: dict[str, Any]) -> str:
    """Name, province or state, and country, as the geocoder spells them."""
    seen: list[str] = []
    for part in (place.get("name"), place.get("admin1"), place.get("country")):
        if part and str(part) not in seen:
            seen.append(str(part))
    return ", ".join(seen)


def _rivals(other: dict[str, Any], best: dict[str, Any]) -> bool:
    """Whether ``other``, elsewhere, is about as likely a meaning as ``best``.

    Clear places only, and near in rank or size: 朝阳区 (Beijing, 3.5 million) rivals 朝阳市 (Liaoning), but
    London, Ontario does not rival the capital.
    """
    if _area(other) == _area(best) or not is_clear(other):
        return False
    return _seat(other) >= _seat(best) - 1 or _population(other) * 2 >= _population(best)


def _short(admin: Any) -> str:
    text = str(admin or "")
    for suffix in _REGION_SUFFIXES + ("特别行政区", "市"):
        if text.endswith(suffix) and len(text) > len(suffix) + 1:
            return text[: -len(suffix)]
    return text


def _seat(place: dict[str, Any]) -> int:
    return _SEAT_RANK.get(str(place.get("feature_code", "")), 0)


def _population(place: dict[str, Any]) -> int:
    value = place.get("population")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) else 0


def _area(place: dict[str, Any]) -> tuple[str, str]:
    return str(place.get("country_code", "")), str(place.get("admin1", ""))


def _key(place: dict[str, Any]) -> object:
    return place.get("id") or (place.get("latitude"), place.get("longitude"))


def _is_coordinate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
