"""The HTTP plumbing shared by the web skills: one client, JSON GETs, failures as ToolError."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError

if TYPE_CHECKING:
    import httpx

_LOGGER = logging.getLogger(__name__)

USER_AGENT = "xiangyin-voice-assistant/0.1"

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

    async def get(self, url: str, params: Params) -> Any:
        """Return the decoded JSON body; raise ToolError the model can explain to the user."""
        import httpx

        try:
            response = await self._client.get(
                url, params=dict(params), timeout=self._timeout, headers={"User-Agent": USER_AGENT}
            )
        except httpx.TimeoutException:
            raise ToolError(f"the {self._service} service did not answer in time") from None
        except httpx.HTTPError as err:
            _LOGGER.warning("%s request failed: %s", self._service, type(err).__name__)
            raise ToolError(f"the {self._service} service cannot be reached") from None
        if response.status_code != 200:
            reason = _reason(response)
            _LOGGER.warning("%s answered HTTP %d: %s", self._service, response.status_code, reason)
            raise ToolError(f"the {self._service} service refused the request (HTTP {response.status_code})")
        try:
            return response.json()
        except ValueError:
            raise ToolError(f"the {self._service} service sent an answer that is not JSON") from None

    async def aclose(self) -> None:
        """Close the client if it is our own."""
        if self._own:
            await self._client.aclose()


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("error") or body)[:200]
    return str(body)[:200]
