"""The Home Assistant client against a stand-in REST server that can fail on purpose."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from assistant.config import HomeAssistantSettings
from assistant.errors import HomeAssistantError
from assistant.integrations.homeassistant import HomeAssistantClient, build_home_assistant
from support.fake_home_assistant import TOKEN, FakeHomeAssistant, fake_home_assistant
from support.servers import free_port


@pytest.fixture
def ha() -> Iterator[FakeHomeAssistant]:
    with fake_home_assistant() as fake:
        yield fake


def client(url: str, token: str = TOKEN, **overrides: object) -> HomeAssistantClient:
    fields: dict[str, object] = {"enabled": True, "url": url, "token": token, "timeout_seconds": 2, **overrides}
    return HomeAssistantClient(HomeAssistantSettings(**fields), retry_initial_seconds=0.01)  # type: ignore[arg-type]


async def test_reads_states_and_calls_services(ha: FakeHomeAssistant) -> None:
    api = build_home_assistant(HomeAssistantSettings(enabled=True, url=ha.url, token=TOKEN))  # type: ignore[arg-type]
    try:
        await api.check()
        assert [s.entity_id for s in await api.get_states()] == ["light.kitchen"]
        await api.call_service("light", "turn_on", {"entity_id": "light.kitchen", "brightness": 200})
        assert (await api.get_state("light.kitchen")).state == "on"
        assert ha.calls == [("light", "turn_on", {"entity_id": "light.kitchen", "brightness": 200})]
    finally:
        await api.close()


async def test_wrong_token_says_so_at_once_and_never_shows_the_token(
    ha: FakeHomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = client(ha.url, token="wrong-token-feedbeef")
    with pytest.raises(HomeAssistantError, match="refused the access token") as caught:
        await api.get_states()
    await api.close()
    assert caught.value.reason == "auth"
    assert ha.requests == 1, "a wrong token is not worth retrying"
    assert "wrong-token-feedbeef" not in str(caught.value) + caplog.text


async def test_missing_token_is_a_clear_auth_error() -> None:
    with pytest.raises(HomeAssistantError, match="home_assistant.token is not set") as caught:
        HomeAssistantClient(HomeAssistantSettings())
    assert caught.value.reason == "auth"


async def test_home_assistant_down_is_retried_then_reported_as_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    api = client(url, retries=2)
    with pytest.raises(HomeAssistantError, match="is not reachable") as caught:
        await api.get_state("light.kitchen")
    await api.close()
    assert caught.value.reason == "unavailable"
    assert url in str(caught.value)


async def test_transient_server_errors_are_retried(ha: FakeHomeAssistant) -> None:
    ha.fail_next = [500, 503]
    api = client(ha.url, retries=2)
    await api.call_service("light", "turn_on", {"entity_id": "light.kitchen"})
    await api.close()
    assert ha.requests == 3
    assert ha.states["light.kitchen"]["state"] == "on"


async def test_too_many_server_errors_give_up(ha: FakeHomeAssistant) -> None:
    ha.fail_next = [500, 500, 500]
    api = client(ha.url, retries=1)
    with pytest.raises(HomeAssistantError, match="server error") as caught:
        await api.get_states()
    await api.close()
    assert caught.value.reason == "unavailable" and ha.requests == 2


async def test_unknown_entity_and_bad_service_are_rejected_without_retry(ha: FakeHomeAssistant) -> None:
    api = client(ha.url)
    with pytest.raises(HomeAssistantError, match="light.attic") as missing:
        await api.get_state("light.attic")
    with pytest.raises(HomeAssistantError, match="nope.thing") as bad:
        await api.call_service("nope", "thing", {})
    await api.close()
    assert missing.value.reason == bad.value.reason == "rejected"
    assert ha.requests == 2


async def test_slow_home_assistant_times_out_as_unavailable(ha: FakeHomeAssistant) -> None:
    ha.delay_seconds = 1.5
    api = client(ha.url, timeout_seconds=0.3, retries=0)
    with pytest.raises(HomeAssistantError) as caught:
        await api.get_states()
    await api.close()
    assert caught.value.reason == "unavailable"


async def test_notify_and_announce_call_the_right_services(ha: FakeHomeAssistant) -> None:
    api = client(ha.url, tts_entity="tts.piper", media_players=["media_player.kitchen"])
    await api.notify("notify.mobile_app_phone", "Door open", title="Xiangyin")
    await api.announce("饭好了")
    await api.close()
    assert ha.calls == [
        ("notify", "mobile_app_phone", {"message": "Door open", "title": "Xiangyin"}),
        (
            "tts",
            "speak",
            {"entity_id": "tts.piper", "media_player_entity_id": ["media_player.kitchen"], "message": "饭好了"},
        ),
    ]


async def test_announce_without_tts_settings_is_rejected(ha: FakeHomeAssistant) -> None:
    api = client(ha.url)
    with pytest.raises(HomeAssistantError, match="tts_entity") as caught:
        await api.announce("hello")
    assert caught.value.reason == "rejected" and ha.requests == 0


async def test_converse_returns_assists_spoken_reply(ha: FakeHomeAssistant) -> None:
    api = client(ha.url)
    reply = await api.converse("打开厨房灯", language="zh-cn")
    await api.close()
    assert reply == "已打开厨房灯"
    assert ha.calls == [("conversation", "process", {"text": "打开厨房灯", "language": "zh-cn"})]


async def test_a_slow_first_import_of_the_client_library_is_not_counted_as_home_assistant_s_time(
    ha: FakeHomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    make = HomeAssistantClient._make_client

    def slow_make(self: HomeAssistantClient) -> object:
        time.sleep(1.5)  # what the first import of homeassistant_api costs on a small box
        return make(self)

    monkeypatch.setattr(HomeAssistantClient, "_make_client", slow_make)
    api = client(ha.url, timeout_seconds=1)
    try:
        assert [s.entity_id for s in await api.get_states()] == ["light.kitchen"]
    finally:
        await api.close()
