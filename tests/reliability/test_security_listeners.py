"""Listeners bind to loopback unless configured, and an exposed Wyoming server serves only the clients
on its allow-list (Wyoming has no password and Home Assistant's integration cannot send one)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from assistant.bus import Bus
from assistant.config import Settings, WyomingSettings, parse_config
from assistant.errors import ConfigError
from assistant.events import AskRequested
from assistant.integrations.wyoming import WyomingServer, peer_allowed
from assistant.tasks import MonotonicClock, cancel_and_wait

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def serving(**settings: Any) -> AsyncIterator[tuple[WyomingServer, list[AskRequested]]]:
    """A real Wyoming server on a free port; the questions it put on the bus are collected."""
    bus = Bus(MonotonicClock())
    asked: list[AskRequested] = []
    bus.tap(lambda envelope: asked.append(envelope.event) if isinstance(envelope.event, AskRequested) else None)
    server = WyomingServer(WyomingSettings(enabled=True, port=1, **settings).model_copy(update={"port": 0}), bus, "1")
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.started(), 10)
    try:
        yield server, asked
    finally:
        await cancel_and_wait(task)


async def test_by_default_the_wyoming_server_listens_on_loopback_only() -> None:
    assert Settings().wyoming.host == "127.0.0.1"
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    assert shipped["wyoming"]["host"] == "127.0.0.1"
    async with serving() as (server, _):
        assert server.bound == ("127.0.0.1",)
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Describe().event())
            reply = await asyncio.wait_for(client.read_event(), 10)
    assert reply is not None and Info.is_type(reply.type)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "box.local"])
def test_an_exposed_wyoming_server_without_an_allow_list_is_a_config_error(host: str) -> None:
    with pytest.raises(ConfigError, match=r"wyoming: .*reachable from other machines.*wyoming\.allowed_clients"):
        parse_config({"wyoming": {"enabled": True, "host": host}}, Path("config.yaml"))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_hosts_need_no_allow_list(host: str) -> None:
    assert parse_config({"wyoming": {"enabled": True, "host": host}}, Path("c.yaml")).wyoming.host == host


def test_an_exposed_host_with_an_allow_list_is_accepted_and_bad_networks_are_named() -> None:
    settings = parse_config(
        {"wyoming": {"enabled": True, "host": "0.0.0.0", "allowed_clients": ["192.168.1.20", "10.0.0.0/8"]}},
        Path("c.yaml"),
    )
    assert settings.wyoming.allowed_clients == (
        ipaddress.ip_network("192.168.1.20/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    assert parse_config({"wyoming": {"host": "0.0.0.0"}}, Path("c.yaml")).wyoming.enabled is False
    with pytest.raises(ConfigError, match=r"wyoming\.allowed_clients\[0\]: value is not a valid IPv4 or IPv6 network"):
        parse_config({"wyoming": {"allowed_clients": ["the HA box"]}}, Path("c.yaml"))


async def test_a_client_outside_the_allow_list_is_disconnected_and_its_question_never_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "assistant.integrations.wyoming")
    async with serving(allowed_clients=("10.0.0.0/8", "192.168.1.20")) as (server, asked):
        reply: object = "nothing read"
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(Transcript(text="打开大门").event())
                await client.write_event(Describe().event())
                reply = await asyncio.wait_for(client.read_event(), 10)
        except ConnectionError:
            reply = None  # the server closed before reading what we sent: a reset
    assert reply is None, "the server hung up without answering"
    assert asked == []
    assert re.search(r"refused a Wyoming connection from \('127\.0\.0\.1', \d+\)", caplog.text)


async def test_a_client_inside_the_allow_list_is_served() -> None:
    async with serving(allowed_clients=("127.0.0.0/8",)) as (server, _):
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Describe().event())
            reply = await asyncio.wait_for(client.read_event(), 10)
    assert reply is not None and Info.is_type(reply.type)


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        (("192.168.1.20", 5000), True),
        (("::ffff:192.168.1.20", 5000, 0, 0), True),  # an IPv4 client on a dual-stack socket
        (("192.168.2.20", 5000), False),
        (("fe80::1", 5000, 0, 2), False),
        ("", False),  # no address to check
    ],
)
def test_peer_check(peer: object, allowed: bool) -> None:
    networks = [ipaddress.ip_network("192.168.1.0/24")]
    assert peer_allowed(peer, networks) is allowed
    assert peer_allowed(peer, []) is True


_LISTENS = re.compile(
    r"start_server|create_server|start_unix_server|\.bind\(|\.listen\(\s*\d*\s*\)|TCPSite|web\.Application|HTTPServer"
)


def test_the_wyoming_server_is_the_only_listener_in_the_daemon() -> None:
    """A new listener must come with the same loopback default and protection (and a change here)."""
    listeners = {
        str(path.relative_to(ROOT))
        for folder in ("assistant", "skills", "hardware")
        for path in (ROOT / folder).rglob("*.py")
        if _LISTENS.search(path.read_text(encoding="utf-8"))
    }
    assert listeners == {"assistant/integrations/wyoming_server.py"}
