"""Secrets never appear in the log or on MQTT, in any obvious encoding.

``xiangyin run`` (tests/reliability/secret_daemon.py: real config loading, logging, App, MQTT bridge,
Home Assistant client and skills; fakes only for audio and the model) runs at DEBUG with every bus event
logged, in text and in JSON, with a Home Assistant token, an MQTT password, a SearXNG password (in its
URL) and an Open-Meteo key, given through ``${ENV}`` and through ``*_file``. Its turns use every secret,
against upstreams that are as hostile as they come: they echo the Authorization header and the full URL
in their errors, and the model reads every tool result aloud. A real mosquitto records every message the
daemon publishes. Config errors are checked with ``xiangyin check``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiomqtt
import pytest
from aiohttp import web

from assistant import cli
from assistant.config import parse_config
from assistant.errors import ToolError
from assistant.logs import secret_values
from assistant.ports import ModelToolCall
from assistant.redact import Redactor, basic_auth
from assistant.tools import ToolRegistry, tool, tools_of
from support.fakes import FakeClock
from support.servers import Mosquitto, mosquitto
from tests.skill_support import ReplayServer

ROOT = Path(__file__).resolve().parents[2]

HA_TOKEN = "eyJhbGciOiJIUzI1NiJ9.ha-Secret+token/4f9a="
MQTT_USER, MQTT_PASSWORD = "box", "mq!tt p@ss/42é"
WRONG_MQTT_PASSWORD = "not-the-mqtt-pw:7%"
SEARCH_USER, SEARCH_PASSWORD = "searx", "s3@rch:pw/+é"
WEATHER_KEY = "wk+/=9a8b7c-open-meteo"
ALARM_CODE = "9731-40"

SCRIPT = [
    ("turn_on", {"target": "Kitchen Light"}),  # Home Assistant answers
    ("turn_off", {"target": "Kitchen Light"}),  # Home Assistant fails, echoing the token
    ("web_search", {"query": "都江堰"}),  # SearXNG refuses, echoing the Basic credentials
    ("get_weather", {"location": "Chengdu"}),  # Open-Meteo refuses, echoing the URL with the key
    ("get_state", {"target": f"the alarm, code {ALARM_CODE}"}),  # the user says the alarm code aloud
]


def encodings(secret: str, user: str | None = None) -> set[str]:
    """The secret as it could show up: raw, URL-quoted, JSON- and repr-escaped, Basic-auth base64."""
    forms = {
        secret,
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
    if user is not None:
        pair = f"{user}:{secret}".encode()
        forms |= {base64.b64encode(pair).decode(), base64.urlsafe_b64encode(pair).decode()}
    return forms


FORBIDDEN = {
    form
    for secret, user in (
        (HA_TOKEN, None),
        (MQTT_PASSWORD, MQTT_USER),
        (WRONG_MQTT_PASSWORD, MQTT_USER),
        (SEARCH_PASSWORD, SEARCH_USER),
        (WEATHER_KEY, None),
        (ALARM_CODE, None),
    )
    for form in encodings(secret, user)
}


def leaks(text: str) -> list[str]:
    return sorted(form for form in FORBIDDEN if form in text)


@dataclass
class Upstream:
    """Home Assistant, SearXNG and Open-Meteo in one aiohttp server; each records what authenticated it."""

    server: ReplayServer = field(default_factory=ReplayServer)
    seen: list[str] = field(default_factory=list)

    def echo(self, request: web.Request) -> str:
        return f"Authorization: {request.headers.get('Authorization')} rejected for {request.method} {request.url}"

    async def start(self) -> str:
        states = [
            {"entity_id": "light.kitchen", "state": "off", "attributes": {"friendly_name": "Kitchen Light"}},
            {"entity_id": "lock.front_door", "state": "locked", "attributes": {"friendly_name": "Front Door"}},
        ]

        def ha(reply: Any) -> Any:
            async def handle(request: web.Request) -> web.Response:
                if request.headers.get("Authorization") != f"Bearer {HA_TOKEN}":
                    return web.json_response({"message": "Unauthorized"}, status=401)
                self.seen.append("ha")
                return web.json_response(reply)

            return handle

        async def turn_off(request: web.Request) -> web.Response:
            self.seen.append("ha-fail")
            return web.json_response({"message": self.echo(request)}, status=400)

        async def searxng(request: web.Request) -> web.Response:
            expected = base64.b64encode(f"{SEARCH_USER}:{SEARCH_PASSWORD}".encode()).decode()
            if request.headers.get("Authorization") == f"Basic {expected}":
                self.seen.append("search")
            return web.json_response({"error": self.echo(request)}, status=401)

        async def geocoding(request: web.Request) -> web.Response:
            if request.query.get("apikey") == WEATHER_KEY:
                self.seen.append("weather")
            return web.json_response({"reason": self.echo(request)}, status=403)

        self.server.raw("GET", "/api/", ha({"message": "API running."}))
        self.server.raw("GET", "/api/states", ha(states))
        self.server.raw("POST", "/api/services/light/turn_on", ha([]))
        self.server.raw("POST", "/api/services/light/turn_off", turn_off)
        self.server.raw("GET", "/search", searxng)
        self.server.raw("GET", "/v1/search", geocoding)
        return await self.server.start()


@asynccontextmanager
async def upstream() -> AsyncIterator[Upstream]:
    running = Upstream()
    await running.start()
    try:
        yield running
    finally:
        await running.server.aclose()


@asynccontextmanager
async def everything_on(broker: Mosquitto) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Every message on the broker ('#'), as (topic, payload)."""
    seen: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(broker.host, broker.port, username="spy", password="spy-pw") as client:
        await client.subscribe("#", qos=1)

        async def record() -> None:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                seen.append((message.topic.value, payload))

        task = asyncio.create_task(record())
        try:
            yield seen
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@contextmanager
def broker_with_users(tmp_path: Path) -> Iterator[Mosquitto]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    with mosquitto(workdir, users={MQTT_USER: MQTT_PASSWORD, "spy": "spy-pw"}) as running:
        yield running


def search_url(upstream_url: str) -> str:
    """SearXNG behind Basic authentication: the password travels inside the URL, percent-encoded."""
    return upstream_url.replace("http://", f"http://{SEARCH_USER}:{quote(SEARCH_PASSWORD, safe='')}@")


SECRET_KEYS = {  # section, key: environment variable
    ("mqtt", "password"): "MQTT_PASSWORD",
    ("home_assistant", "token"): "HA_TOKEN",
    ("search", "searxng_url"): "SEARCH_URL",
    ("weather", "api_key"): "WEATHER_KEY",
    ("smart_home", "alarm_code"): "ALARM_CODE",
}


def environment(upstream_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HA_TOKEN": HA_TOKEN,
        "MQTT_PASSWORD": MQTT_PASSWORD,
        "SEARCH_URL": search_url(upstream_url),
        "WEATHER_KEY": WEATHER_KEY,
        "ALARM_CODE": ALARM_CODE,
    }


def write_config(folder: Path, *, source: str, log_format: str, broker: Mosquitto, url: str, device: str) -> Path:
    """The daemon's config, its secrets as ``${ENV}`` references or in ``*_file`` files.

    The files hold a wrong MQTT password, so that daemon also fails to connect to the broker.
    """
    folder.mkdir()
    sections: dict[str, dict[str, Any]] = {
        "mqtt": {
            "enabled": True,
            "host": broker.host,
            "port": broker.port,
            "username": MQTT_USER,
            "device_id": device,
            "reconnect_max_seconds": 0.5,
        },
        "home_assistant": {"enabled": True, "url": url, "retries": 0},
        "search": {"providers": ["searxng"]},
        "weather": {"geocoding_url": f"{url}/v1/search", "forecast_url": f"{url}/v1/forecast"},
        "smart_home": {},
    }
    values = environment(url) | {"MQTT_PASSWORD": WRONG_MQTT_PASSWORD}
    for (section, key), variable in SECRET_KEYS.items():
        if source == "env":
            sections[section][key] = f"${{{variable}}}"
        else:
            secret = folder / variable.lower()
            secret.write_text(values[variable] + "\n", encoding="utf-8")
            sections[section][f"{key}_file"] = str(secret)
    skills = {name: sections.pop(name) for name in ("search", "weather", "smart_home")}
    config = {
        "conversation": {"follow_up_seconds": 0, "earcons": False},
        "logging": {"level": "DEBUG", "format": log_format, "events": True},
        "scheduler": {"database": str(folder / "jobs.sqlite")},
        **sections,
        "skills": skills,
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return path


async def run_daemon(config: Path, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.secret_daemon",
        str(config),
        json.dumps(SCRIPT),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        raise AssertionError(f"the daemon did not finish:\n{output.decode(errors='replace')[-4000:]}") from None
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", errors="replace")


@pytest.mark.broker
@pytest.mark.slow
async def test_no_secret_reaches_the_log_or_mqtt_from_env_or_files_in_text_or_json(tmp_path: Path) -> None:
    with broker_with_users(tmp_path) as broker:
        async with upstream() as hostile, everything_on(broker) as published:
            url = hostile.server.url
            from_env = write_config(
                tmp_path / "env", source="env", log_format="text", broker=broker, url=url, device="a"
            )
            from_files = write_config(
                tmp_path / "files", source="files", log_format="json", broker=broker, url=url, device="b"
            )
            (code_env, log_env), (code_files, log_files) = await asyncio.gather(
                run_daemon(from_env, environment(url)), run_daemon(from_files, environment(url))
            )
            await asyncio.sleep(0.5)  # the last messages reach the spy
    (tmp_path / "env.log").write_text(log_env, encoding="utf-8")
    (tmp_path / "files.log").write_text(log_files, encoding="utf-8")
    assert code_env == 0, log_env[-4000:]
    assert code_files == 0, log_files[-4000:]
    # The secrets were really used, and every turn ran.
    assert sorted(set(hostile.seen)) == ["ha", "ha-fail", "search", "weather"]
    for log in (log_env, log_files):
        assert log.count("tool-call-finished") == len(SCRIPT), log[-3000:]
    assert all(json.loads(line) for line in log_files.splitlines() if line.startswith("{"))
    assert "check mqtt.username and mqtt.password" in log_files  # the wrong password was tried and refused
    topics = {topic for topic, _ in published}
    assert {"xiangyin/a/answer/attributes", "xiangyin/a/transcript/attributes"} <= topics, "answers went out"

    on_the_wire = "\n".join(f"{topic} {payload.decode('utf-8', errors='replace')}" for topic, payload in published)
    found = {"text log": leaks(log_env), "JSON log": leaks(log_files), "MQTT": leaks(on_the_wire)}
    assert found == {"text log": [], "JSON log": [], "MQTT": []}


@pytest.mark.parametrize(
    "config",
    [
        {"home_assistant": {"enabled": True, "tokn": "${HA_TOKEN}"}},  # a typo in the key
        {"mqtt": {"port": "${MQTT_PASSWORD}"}},  # in a field of the wrong type
        {"persona": {"timezone": "${HA_TOKEN}"}},  # in a field whose error quotes the value
        {"persona": {"timezone_file": "SECRET_FILE"}},
        {"wyoming": {"enabled": True, "host": "${WEATHER_KEY}"}},
        {"mqtt": {"base_topic": "${MQTT_PASSWORD}#"}},
        {"skills": {"weather": {"api_key": "${WEATHER_KEY}", "units": "${WEATHER_KEY}"}}},
    ],
    ids=["typo", "wrong-type", "quoted-value", "quoted-file", "wyoming-host", "topic", "skill"],
)
def test_config_errors_never_quote_a_secret(
    config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``xiangyin check`` on a config with a secret in the wrong place."""
    for name, value in environment("http://127.0.0.1:1").items():
        monkeypatch.setenv(name, value)
    secret_file = tmp_path / "secret"
    secret_file.write_text(HA_TOKEN, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config).replace("SECRET_FILE", str(secret_file)), encoding="utf-8")
    assert cli.main(["check", "--config", str(path)]) == cli.EXIT_CONFIG
    printed = capsys.readouterr()
    assert "config error" in printed.err
    assert leaks(printed.out + printed.err) == [], printed.err


# --- the parts, one by one ---------------------------------------------------------------------------


def test_secret_values_find_every_secret_the_settings_hold() -> None:
    settings = parse_config(
        {
            "mqtt": {"username": MQTT_USER, "password": MQTT_PASSWORD},
            "home_assistant": {"url": "http://ha.lan:8123", "token": HA_TOKEN},
            "skills": {
                "search": {"searxng_url": f"https://{SEARCH_USER}:{quote(SEARCH_PASSWORD, safe='')}@searx.lan"},
                "weather": {"api_key": WEATHER_KEY, "forecast_url": "https://x.example/v1?apikey=k-in-url-77"},
                "smart_home": {"alarm_code": ALARM_CODE},
            },
        },
        Path("c.yaml"),
    )
    found = set(secret_values(settings))
    assert {HA_TOKEN, MQTT_PASSWORD, SEARCH_PASSWORD, WEATHER_KEY, ALARM_CODE, "k-in-url-77"} <= found
    assert set(basic_auth(MQTT_USER, MQTT_PASSWORD)) | set(basic_auth(SEARCH_USER, SEARCH_PASSWORD)) <= found
    assert "http://ha.lan:8123" not in found and "https://x.example/v1?apikey=k-in-url-77" not in found


def test_the_redactor_masks_every_spelling_and_leaves_the_rest() -> None:
    redact = Redactor([SEARCH_PASSWORD, *basic_auth(SEARCH_USER, SEARCH_PASSWORD), "abc"])
    for form in encodings(SEARCH_PASSWORD, SEARCH_USER):
        assert redact(f"before {form} after") == "before *** after"
    assert redact("abc is too short to be masked") == "abc is too short to be masked"
    assert redact.data({"k": [SEARCH_PASSWORD, 3, None]}) == {"k": ["***", 3, None]}
    assert not Redactor() and Redactor().data({"a": SEARCH_PASSWORD}) == {"a": SEARCH_PASSWORD}


class Leaky:
    """A skill whose upstream echoes the credentials, in a result and in an error."""

    @tool()
    async def echo(self) -> dict[str, object]:
        """Echo."""
        return {"upstream": f"Authorization: Bearer {HA_TOKEN}", "url": f"https://x?apikey={quote(WEATHER_KEY)}"}

    @tool()
    async def fail(self) -> dict[str, object]:
        """Fail."""
        raise ToolError(f"upstream said: bad token {HA_TOKEN}")


async def test_tool_results_never_carry_a_secret_to_the_model() -> None:
    tools = ToolRegistry(FakeClock(), redact=Redactor([HA_TOKEN, WEATHER_KEY]))
    tools.add_all(tools_of(Leaky()))
    echoed = await tools.call(ModelToolCall("c1", "echo", {}))
    failed = await tools.call(ModelToolCall("c2", "fail", {}))
    assert echoed.content == {"ok": True, "upstream": "Authorization: Bearer ***", "url": "https://x?apikey=***"}
    assert failed.content == {"ok": False, "error": "upstream said: bad token ***"}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        *[
            (name, True)
            for name in (
                "alarm_code",
                "apikey",
                "x-api-key",
                "password",
                "confirm_token",
                "pincode",
                "passkey",
                "alarmcode",
                "securitycode",
                "apiToken",
                "accessToken",
                "appkey",
                "api_keys",
                "tokens",
                "secrets",
                "appid",
                "ak",
                "HA_TOKEN",
                "MQTT_PASSWORD",
                "pin",
            )
        ],
        *[(name, False) for name in ("decode", "mapping", "keep_alive", "kv_cache", "monkey", "ping", "host")],
    ],
)
def test_secret_names_are_read_word_by_word_so_ordinary_settings_stay_readable(name: str, secret: bool) -> None:
    from assistant.redact import is_secret_name

    assert is_secret_name(name) is secret


def test_a_broken_log_call_neither_raises_into_its_caller_nor_prints_its_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assistant.config import LoggingSettings
    from assistant.logs import configure_logging

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    configure_logging(LoggingSettings(), secrets=["hunter22-secret"])
    try:
        logging.getLogger("test").warning("value %d", "hunter22-secret")
        logging.getLogger("test").warning("value %s", Unprintable())
    finally:
        logging.getLogger().handlers.clear()
    captured = capsys.readouterr()
    assert captured.out.count("its arguments could not be formatted") == 2
    assert "hunter22-secret" not in captured.out + captured.err


def test_a_short_alarm_code_is_masked_in_the_log_but_does_not_garble_numbers_the_model_reads() -> None:
    from assistant.redact import OUTWARD_MIN_CHARS

    outward = Redactor(["2026", "hunter22-secret"], min_chars=OUTWARD_MIN_CHARS)
    assert outward.data({"date": "2026-11-25", "k": "hunter22-secret"}) == {"date": "2026-11-25", "k": "***"}
    assert Redactor(["2026"])("code 2026") == "code ***"
