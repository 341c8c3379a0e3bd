"""The settings tree: the shipped file validates and documents every key; mistakes name file and key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from assistant.config import MAX_CONFIG_BYTES, Settings, load_config, parse_config
from assistant.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "config.yaml"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        annotation = info.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys.extend(_keys(candidate, f"{prefix}{name}."))
    return keys


def test_shipped_config_validates() -> None:
    settings = load_config(SHIPPED, env={})
    assert settings.wake.words[0].model == "hey_jarvis"


def test_shipped_config_mentions_every_key() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    missing = []
    for dotted in _keys(Settings):
        leaf = dotted.rsplit(".", 1)[-1]
        if not re.search(rf"^\s*(#\s*)?(- )?{leaf}(_file)?:", text, re.MULTILINE):
            missing.append(dotted)
    assert missing == []


def test_every_field_has_a_docstring() -> None:
    def undocumented(model: type[BaseModel], prefix: str = "") -> list[str]:
        out = []
        for name, info in model.model_fields.items():
            if not info.description:
                out.append(prefix + name)
            for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    out.extend(undocumented(candidate, f"{prefix}{name}."))
        return out

    assert undocumented(Settings) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"audio": {"chunk_mss": 80}}, "c.yaml: audio.chunk_mss: unknown key (did you mean 'chunk_ms'?)"),
        (
            {"endpointing": {"end_silence_seconds": 0}},
            "c.yaml: endpointing.end_silence_seconds: Input should be greater than 0",
        ),
        (
            {"wake": {"words": [{"model": "alexa", "threshold": 2}]}},
            "c.yaml: wake.words[0].threshold: Input should be less than or equal to 1",
        ),
        (
            {"persona": {"dialect": "klingon"}},
            "c.yaml: persona.dialect: Input should be 'mandarin', 'cantonese', 'sichuanese' or 'english'",
        ),
        (
            {"mqtt": {"password": "${MQTT_PASSWORD}"}},
            "c.yaml: mqtt.password: environment variable MQTT_PASSWORD is not set",
        ),
        (
            {"model": {"local": {"audio_tail": "pad"}}},
            "c.yaml: model.local.audio_tail: Input should be 'stepfun' or 'even'",
        ),
        (
            {"voice": {"token2wav": {"speech_pad": "keep"}}},
            "c.yaml: voice.token2wav.speech_pad: Input should be 'drop' or 'stepfun'",
        ),
        ({"bogus": 1}, "c.yaml: bogus: unknown key"),
        ([1, 2], "c.yaml: the top level must be a mapping of sections, got list"),
    ],
)
def test_mistakes_name_the_file_and_the_dotted_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, Path("c.yaml"), env={})
    assert str(caught.value).startswith(message)


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "ha_token"
    token_file.write_text("abc.def.ghi\n")
    settings = parse_config(
        {
            "mqtt": {"password": "${MQTT_PASSWORD}"},
            "home_assistant": {"token_file": str(token_file)},
        },
        Path("c.yaml"),
        env={"MQTT_PASSWORD": "hunter22"},
    )
    assert settings.mqtt.password is not None and settings.mqtt.password.get_secret_value() == "hunter22"
    assert settings.home_assistant.token is not None
    assert settings.home_assistant.token.get_secret_value() == "abc.def.ghi"
    assert "hunter22" not in repr(settings) and "abc.def" not in repr(settings)


def test_unreadable_secret_file_and_bad_yaml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"home_assistant.token_file: cannot read .*nope"):
        parse_config({"home_assistant": {"token_file": str(tmp_path / "nope")}}, Path("c.yaml"), env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("audio:\n  volume: [0.5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line 3"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(Exception, match="frozen"):
        settings.audio.volume = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"persona": {"timezone": "Asia/Shanghia"}}, "persona.timezone: Value error, 'Asia/Shanghia' is not an IANA"),
        ({"persona": {"region": "China"}}, "persona.region: Value error, 'China' is not a two-letter region code"),
        ({"home_assistant": {"enabled": True}}, "home_assistant: Value error, home_assistant.enabled needs a token"),
        (
            {"endpointing": {"start_seconds": 1.0, "no_speech_timeout_seconds": 0.5}},
            "endpointing: Value error, start_seconds (1.0) must be shorter than no_speech_timeout_seconds",
        ),
        (
            {"conversation": {"follow_up_seconds": 0.1}},
            "c.yaml: Value error, conversation.follow_up_seconds (0.1) must be 0 (off) or longer",
        ),
    ],
)
def test_settings_that_could_never_work_are_refused_before_start(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, Path("c.yaml"), env={})
    assert message in str(caught.value)


def test_a_config_path_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(path, env={})


def test_a_config_file_far_larger_than_any_config_is_refused(tmp_path: Path) -> None:
    huge = tmp_path / "config.yaml"
    huge.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(huge, env={})


@pytest.mark.parametrize(
    ("persona", "region"),
    [
        ({}, "CN"),  # Asia/Shanghai
        ({"timezone": "Asia/Hong_Kong"}, "HK"),
        ({"timezone": "Europe/London"}, ""),
        ({"timezone": "Asia/Shanghai", "region": "hk"}, "HK"),  # said outright wins, in any case
    ],
)
def test_region_is_given_or_read_from_the_time_zone(persona: dict[str, str], region: str) -> None:
    assert Settings.model_validate({"persona": persona}).persona.region_code == region


def test_by_default_the_model_hears_and_speaks_as_stepfuns_code_where_it_can() -> None:
    settings = parse_config({}, Path("c.yaml"), env={})
    assert settings.model.local.audio_tail == "stepfun"
    assert settings.voice.token2wav.speech_pad == "drop"  # StepFun's flow cannot voice the pad (docs/voice.md)
