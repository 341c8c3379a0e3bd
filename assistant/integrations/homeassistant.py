"""Home Assistant's REST API through homeassistant-api: states, services, notifications, announcements.

Every failure becomes a ``HomeAssistantError`` whose ``reason`` tells the caller what to do: ``auth``
(the token is wrong: nothing will work until the user fixes it), ``unavailable`` (down or slow: retried
here with backoff, then reported) or ``rejected`` (Home Assistant understood and said no). Messages name
the URL, never the token. Every change of reachability is published as
``ConnectionChanged(service="home_assistant")``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import HomeAssistantSettings
from ..errors import HomeAssistantError
from ..events import ConnectionChanged, Event
from ..ports import EntityState, HomeAssistantApi
from ..tasks import backoff, in_daemon_thread
from . import media_players

if TYPE_CHECKING:
    from homeassistant_api import AsyncClient

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE = "home_assistant"
"""``ConnectionChanged.service`` of Home Assistant."""


class HomeAssistantClient:
    """``HomeAssistantApi`` over HA's REST API, with retries and clear errors."""

    def __init__(
        self,
        settings: HomeAssistantSettings,
        *,
        retry_initial_seconds: float = 0.5,
        publish: Callable[[Event], None] | None = None,
    ) -> None:
        if settings.token is None:
            raise HomeAssistantError(
                "home_assistant.token is not set: create a long-lived access token in Home Assistant "
                "(your profile → Security) and give it as ${ENV} or token_file",
                reason="auth",
            )
        self._settings = settings
        self._url = settings.url.rstrip("/")
        self._retry_initial_seconds = retry_initial_seconds
        self._client: AsyncClient | None = None
        self._publish = publish
        self._usable: bool | None = None
        """Last reachability reported; None before the first request."""

    def _api(self) -> AsyncClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> AsyncClient:
        # The first import of homeassistant_api takes 1.5-2.7 s: see _ready.
        from homeassistant_api import AsyncClient

        assert self._settings.token is not None
        return AsyncClient(
            f"{self._url}/api",
            self._settings.token.get_secret_value(),
            verify_ssl=self._settings.verify_ssl,
            global_request_kwargs={"timeout": self._settings.timeout_seconds},
        )

    async def _ready(self) -> None:
        """Make the client off the event loop, before any deadline starts: its slow import is not HA's time."""
        if self._client is None:
            client = await in_daemon_thread(self._make_client)
            if self._client is None:
                self._client = client

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            client, self._client = self._client, None
            await client._session.close()

    # --- HomeAssistantApi ---------------------------------------------------------------------------

    async def check(self) -> None:
        """Fail early with a clear message if the URL or the token is wrong (``GET /api/``)."""
        await self._call("reach the API", lambda api: api.check_api_running())

    async def get_states(self) -> list[EntityState]:
        """Return every entity."""
        states = await self._call("read the states", lambda api: api.get_states())
        return [EntityState(s.entity_id, s.state, dict(s.attributes)) for s in states]

    async def get_state(self, entity_id: str) -> EntityState:
        """Return one entity; ``rejected`` if Home Assistant has no such entity."""
        state = await self._call(f"read {entity_id}", lambda api: api.get_state(entity_id=entity_id))
        return EntityState(state.entity_id, state.state, dict(state.attributes))

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        """Call a service such as ``light.turn_on``."""
        await self._call(f"call {domain}.{service}", lambda api: api.trigger_service(domain, service, **data))

    # --- beyond the port ----------------------------------------------------------------------------

    async def notify(self, service: str, message: str, *, title: str | None = None) -> None:
        """Send a notification through ``notify.<service>`` (e.g. ``mobile_app_pixel``)."""
        data: dict[str, Any] = {"message": message}
        if title:
            data["title"] = title
        await self.call_service("notify", service.removeprefix("notify."), data)

    async def announce(self, message: str, *, players: tuple[str, ...] = (), tts_entity: str | None = None) -> None:
        """Speak ``message`` on Home Assistant media players through ``tts.speak``.

        Defaults come from ``home_assistant.media_players`` and ``home_assistant.tts_entity``.
        """
        players = players or self._settings.media_players
        engine = tts_entity or self._settings.tts_entity
        if not players or not engine:
            raise HomeAssistantError(
                "announcing through Home Assistant needs home_assistant.tts_entity and home_assistant.media_players",
                reason="rejected",
            )
        await media_players.speak(self, engine, players, message)

    async def converse(self, text: str, *, language: str | None = None) -> str:
        """Pass a sentence to Home Assistant's own Assist agent (``/api/conversation/process``); return its reply.

        Useful as the smart-home skill's fallback: HA's intents know every exposed entity and area by name.
        """
        from http import HTTPMethod

        body: dict[str, Any] = {"text": text}
        if language:
            body["language"] = language
        result = await self._call(
            "ask Assist", lambda api: api.request("conversation/process", method=HTTPMethod.POST, json=body)
        )
        try:
            return str(result["response"]["speech"]["plain"]["speech"])
        except (KeyError, TypeError) as err:
            raise HomeAssistantError(
                f"Home Assistant at {self._url} gave an unexpected Assist answer: missing {err}", reason="unavailable"
            ) from None

    # --- errors and retries -------------------------------------------------------------------------

    async def _call(self, action: str, request: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run ``request`` with retries, all within ``timeout_seconds``; HomeAssistantError on failure."""
        budget = self._settings.timeout_seconds
        await self._ready()
        try:
            # One deadline for every attempt: a hanging HA must be reported before the tool's own deadline
            # would cut the call off with a vaguer "did not answer".
            async with asyncio.timeout(budget):
                result = await self._attempts(action, request)
        except TimeoutError:
            failure = HomeAssistantError(
                f"Home Assistant at {self._url} did not answer within {budget:g} s trying to {action}",
                reason="unavailable",
            )
            self._report(False, str(failure))
            raise failure from None
        self._report(True, self._url)
        return result

    async def _attempts(self, action: str, request: Callable[[AsyncClient], Awaitable[T]]) -> T:
        delays = backoff(self._retry_initial_seconds, 10.0)
        attempts = 1 + self._settings.retries
        for attempt in range(1, attempts + 1):
            try:
                return await request(self._api())
            except asyncio.CancelledError:
                raise
            except Exception as err:
                failure = self._translate(action, err)
                if not _transient(err) or attempt == attempts:
                    # "rejected" is an answer: Home Assistant is there and working.
                    self._report(failure.reason == "rejected", str(failure))
                    raise failure from None
                delay = next(delays)
                _LOGGER.info("%s; attempt %d of %d, retrying in %.1f s", failure, attempt, attempts, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _report(self, usable: bool, detail: str) -> None:
        """Log and publish a change of reachability (the first request's outcome counts as one)."""
        if usable == self._usable:
            return
        was, self._usable = self._usable, usable
        if not usable:
            _LOGGER.warning("Home Assistant is unavailable: %s", detail)
        elif was is False:
            _LOGGER.info("Home Assistant at %s is reachable again", self._url)
        if self._publish is not None:
            self._publish(ConnectionChanged(service=SERVICE, connected=usable, detail=detail))

    def _translate(self, action: str, err: Exception) -> HomeAssistantError:
        """Map homeassistant-api and niquests errors to our three reasons, with a message for people."""
        from homeassistant_api import errors

        where = f"Home Assistant at {self._url}"
        match err:
            case errors.UnauthorizedError():
                return HomeAssistantError(
                    f"{where} refused the access token (401) trying to {action}: create a new long-lived "
                    "token (your profile → Security) and set home_assistant.token",
                    reason="auth",
                )
            case errors.EndpointNotFoundError():
                return HomeAssistantError(f"{where} could not {action}: not found", reason="rejected")
            case errors.RequestTimeoutError():
                return HomeAssistantError(
                    f"{where} did not answer within {self._settings.timeout_seconds:g} s trying to {action}",
                    reason="unavailable",
                )
            case errors.RequestError():
                return HomeAssistantError(f"{where} refused to {action}: {_short(err)}", reason="rejected")
            case errors.InternalServerError():
                return HomeAssistantError(f"{where} failed to {action} (server error)", reason="unavailable")
            case errors.HomeassistantAPIError() | TypeError() | ValueError() | KeyError():
                return HomeAssistantError(
                    f"{where} gave an unexpected answer trying to {action}: {_short(err)}", reason="unavailable"
                )
        # niquests: connection refused, DNS, TLS, read timeouts. Its messages hold the URL, never headers.
        return HomeAssistantError(
            f"{where} is not reachable trying to {action}: {_short(err)}; is it running and is "
            "home_assistant.url right?",
            reason="unavailable",
        )


def _transient(err: Exception) -> bool:
    """True when trying again may help: HA down, slow or restarting.

    An answer we could not read is not retried: the request arrived, and repeating it could toggle twice.
    """
    from homeassistant_api import errors

    if isinstance(err, errors.RequestTimeoutError | errors.InternalServerError):
        return True
    return not isinstance(err, errors.HomeassistantAPIError | TypeError | ValueError | KeyError)


def _short(err: Exception, limit: int = 200) -> str:
    text = str(err).replace("\n", " ").strip() or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_home_assistant(
    settings: HomeAssistantSettings, publish: Callable[[Event], None] | None = None
) -> HomeAssistantClient:
    """The daemon's ``HomeAssistantApi`` (plus ``notify`` and ``announce``) from ``home_assistant`` settings.

    ``publish`` (the bus's) gets a ``ConnectionChanged`` whenever Home Assistant becomes usable or not.
    """
    client = HomeAssistantClient(settings, publish=publish)
    _: HomeAssistantApi = client  # mypy checks here that the client fits the port
    return client
