"""The HTTP plumbing shared by the web skills: one client, JSON GETs, failures as ToolError."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant import __version__
from assistant.errors import ToolError
from assistant.httpbody import read_at_most

if TYPE_CHECKING:
    import httpx

_LOGGER = logging.getLogger(__name__)

PROJECT_URL = "https://github.com/xiangyin/xiangyin"
"""Where the project's makers can be reached (also the systemd unit's Documentation=); services use it to contact us."""
USER_AGENT = f"Xiangyin/{__version__} ({PROJECT_URL}) home voice assistant"
"""Names the client and how to reach its makers: Wikimedia throttles or refuses (HTTP 403) agents without
contact information (its User-Agent policy), and other services treat anonymous agents as bots. It must
not start like a bot library's (SearXNG's limiter refuses ``Python…``, ``curl…`` and the like)."""
MAX_BODY_BYTES = 2_000_000
"""Largest answer read from a web API; Open-Meteo and Wikipedia answers are a few kilobytes."""

Params = Mapping[str, str | int | float]
"""Query parameters of a GET."""


class JsonGetter:
    """GETs JSON with the injected client, or with its own one that :meth:`aclose` closes."""

    def __init__(self, client: httpx.AsyncClient | None, service: str, timeout_seconds: float) -> None:
        import httpx

        self._own = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds, headers={"User-Agent": USER_AGENT})
        self._service = service
        self._timeout = timeout_seconds

    async def get(
        self,
        url: str,
        params: Params,
        *,
        headers: Mapping[str, str] | None = None,
        refusals: Mapping[int, str] | None = None,
        service: str = "",
    ) -> Any:
        """Return the decoded JSON body; raise ToolError the model can explain to the user.

        The whole exchange, body included, must finish within the timeout (a server that trickles bytes
        never trips httpx's per-read timeout), and a body over ``MAX_BODY_BYTES`` is refused unread.
        Redirects are followed (an instance moved from http to https). ``refusals`` gives the message for
        an HTTP status that has a known cause and cure; ``service`` names the service in messages when
        one getter serves several.
        """
        import httpx

        service = service or self._service
        try:
            async with asyncio.timeout(self._timeout):
                status, body = await self._fetch(url, params, headers or {})
        except (TimeoutError, httpx.TimeoutException):
            raise ToolError(f"the {service} service did not answer in time") from None
        except httpx.HTTPError as err:
            _LOGGER.warning("%s request failed: %s", service, type(err).__name__)
            raise ToolError(f"the {service} service cannot be reached") from None
        except httpx.InvalidURL:
            # httpx refuses a URL part over 64 KiB before sending anything.
            raise ToolError(f"the request to the {service} service is too long") from None
        if status != 200:
            _LOGGER.warning("%s answered HTTP %d: %s", service, status, _reason(body))
            known = (refusals or {}).get(status)
            raise ToolError(known or f"the {service} service refused the request (HTTP {status})")
        if len(body) > MAX_BODY_BYTES:
            _LOGGER.warning("%s sent more than %d bytes", service, MAX_BODY_BYTES)
            raise ToolError(f"the {service} service sent an answer too large to read")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
            raise ToolError(f"the {service} service sent an answer that is not JSON") from None

    async def _fetch(self, url: str, params: Params, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """GET ``url``; return the status and at most ``MAX_BODY_BYTES + 1`` bytes of the body."""
        request = self._client.stream(
            "GET",
            url,
            params=dict(params),
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT, **headers},
            follow_redirects=True,
        )
        async with request as response:
            return response.status_code, await read_at_most(response, MAX_BODY_BYTES + 1)

    async def aclose(self) -> None:
        """Close the client if it is our own."""
        if self._own:
            await self._client.aclose()


def _reason(body: bytes) -> str:
    text = body[:4096].decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return " ".join(text.split())[:200]
    if isinstance(data, dict):
        return str(data.get("reason") or data.get("error") or data)[:200]
    return str(data)[:200]
