"""A result language as a BCP 47 tag, and what each service wants for it: pure logic."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG = re.compile(r"(?P<language>[a-z]{2,3})(?:[-_](?P<script>[a-z]{4}))?(?:[-_](?P<region>[a-z]{2}))?", re.IGNORECASE)
_TRADITIONAL_REGIONS = frozenset({"HK", "MO", "TW"})


@dataclass(frozen=True)
class Language:
    """``zh``, ``zh-CN``, ``zh-Hant``, ``zh-HK``, ``en``, …: Chinese is Simplified unless asked otherwise."""

    language: str
    """ISO 639 code, lower case (zh, en)."""
    script: str = ""
    """ISO 15924 script, title case (Hans, Hant); empty when not given."""
    region: str = ""
    """ISO 3166-1 region, upper case (CN, HK, TW); empty when not given."""

    @classmethod
    def parse(cls, tag: str) -> Language:
        """Read a tag; raise ValueError for anything that is not language[-Script][-REGION]."""
        match = _TAG.fullmatch(tag.strip())
        if match is None:
            raise ValueError(f"{tag[:40]!r} is not a language tag such as zh, zh-CN, zh-HK or en")
        return cls(match["language"].lower(), (match["script"] or "").title(), (match["region"] or "").upper())

    @property
    def tag(self) -> str:
        """The tag, normalised: zh-Hant-HK, en-US."""
        return "-".join(part for part in (self.language, self.script, self.region) if part)

    @property
    def is_chinese(self) -> bool:
        """Whether results are in Chinese."""
        return self.language == "zh"

    @property
    def is_traditional(self) -> bool:
        """Chinese in Traditional characters: asked for by Hant, or by HK, MO or TW without a script."""
        return self.is_chinese and (self.script == "Hant" or (not self.script and self.region in _TRADITIONAL_REGIONS))

    @property
    def is_simplified(self) -> bool:
        """Chinese in Simplified characters: the default for zh."""
        return self.is_chinese and not self.is_traditional

    @property
    def wikipedia_edition(self) -> str:
        """Wikipedia's subdomain: one edition per language, whatever the region (zh-CN → zh)."""
        return self.language

    @property
    def wikipedia_variant(self) -> str:
        """MediaWiki's ``variant``, which picks the script the Chinese edition converts to; empty otherwise."""
        if not self.is_chinese:
            return ""
        region_writes_traditional = self.region in _TRADITIONAL_REGIONS
        if self.region and self.is_traditional == region_writes_traditional:
            return f"zh-{self.region.lower()}"  # the region's words too: 出租车 (zh-cn), 的士 (zh-hk), 計程車 (zh-tw)
        if self.script:  # zh-Hant, or a script the region does not write (zh-Hans-HK)
            return f"zh-{self.script.lower()}"
        return "zh-cn"

    @property
    def searxng(self) -> str:
        """SearXNG's ``language``: a locale it knows (zh, zh-CN, zh-HK, zh-TW, en-US, …)."""
        if self.region:
            return f"{self.language}-{self.region}"
        if self.is_chinese:  # Simplified means the mainland's engines and words, as the variant does
            return "zh-TW" if self.is_traditional else "zh-CN"
        return self.language

    @property
    def accept_language(self) -> str:
        """An Accept-Language header asking for this language first."""
        first = self.searxng
        return first if first == self.language else f"{first},{self.language};q=0.9"
