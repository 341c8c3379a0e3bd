"""A minimal HomeAssistantApi over homeassistant-api's AsyncClient, for the smart-home skill's REST test.

The daemon's real adapter is built in assistant/integrations (issue 7); this one exists only so a test
drives the skill through homeassistant-api against a server that speaks Home Assistant's REST API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant_api import AsyncClient
from homeassistant_api.errors import HomeassistantAPIError, UnauthorizedError

from assistant.errors import HomeAssistantError
from assistant.ports import EntityState


class RestHomeAssistant:
    """HomeAssistantApi through homeassistant-api; errors become HomeAssistantError with a reason."""

    def __init__(self, url: str, token: str) -> None:
        self._client = AsyncClient(f"{url.rstrip('/')}/api", token)

    async def get_states(self) -> list[EntityState]:
        try:
            states = await self._client.get_states()
        except HomeassistantAPIError as err:
            raise _error(err) from None
        return [EntityState(s.entity_id, s.state, dict(s.attributes)) for s in states]

    async def get_state(self, entity_id: str) -> EntityState:
        try:
            state = await self._client.get_state(entity_id=entity_id)
        except HomeassistantAPIError as err:
            raise _error(err) from None
        return EntityState(state.entity_id, state.state, dict(state.attributes))

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        try:
            await self._client.trigger_service(domain, service, **data)
        except HomeassistantAPIError as err:
            raise _error(err) from None

    async def aclose(self) -> None:
        await self._client._session.close()


def _error(err: HomeassistantAPIError) -> HomeAssistantError:
    if isinstance(err, UnauthorizedError):
        return HomeAssistantError("Home Assistant refused the token", reason="auth")
    return HomeAssistantError(f"Home Assistant request failed: {type(err).__name__}", reason="rejected")
