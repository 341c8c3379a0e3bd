"""Where the household is, as an ISO 3166-1 region code: given in config, or read from the time zone.

The web skills need it: what can be reached differs (Wikipedia and DuckDuckGo are blocked in mainland
China), and of two places with the same name the one in the household's country is the likelier meaning.
"""

from __future__ import annotations

# Only the zones whose region changes what the skills do; any other zone means "elsewhere".
_REGION_OF_ZONE = {
    "Asia/Shanghai": "CN",
    "Asia/Chongqing": "CN",
    "Asia/Chungking": "CN",
    "Asia/Harbin": "CN",
    "Asia/Urumqi": "CN",
    "Asia/Kashgar": "CN",
    "PRC": "CN",
    "Asia/Hong_Kong": "HK",
    "Hongkong": "HK",
    "Asia/Macau": "MO",
    "Asia/Macao": "MO",
    "Asia/Taipei": "TW",
    "ROC": "TW",
    "Asia/Singapore": "SG",
    "Singapore": "SG",
    "Asia/Kuala_Lumpur": "MY",
}

MAINLAND_CHINA = "CN"


def region_of_zone(timezone: str) -> str:
    """The region a time zone belongs to, for the zones that matter here; empty for any other."""
    return _REGION_OF_ZONE.get(timezone, "")
