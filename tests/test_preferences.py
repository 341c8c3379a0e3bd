"""Settings changed while running (volume, mute, dialect, wake word, speaking speed) survive a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from assistant.app import Adapters, App
from assistant.bus import Bus
from assistant.config import Settings
from assistant.events import (
    MuteChanged,
    SettingChanged,
    SpeakingSpeedChanged,
    UserTranscript,
    VolumeChanged,
)
from assistant.ports import Clock
from assistant.preference_store import PreferenceStore
from assistant.preferences import Preferences
from assistant.tasks import MonotonicClock, cancel_and_wait
from support.fakes import (
    FakeMicrophone,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeTools,
    FakeVoice,
    FakeWakeDetector,
    ScriptedModel,
)
from support.servers import eventually


def test_each_fact_changes_its_own_preference_and_other_events_change_nothing() -> None:
    kept = Preferences()
    for event in (
        VolumeChanged(level=0.35),
        MuteChanged(muted=True),
        SettingChanged(key="dialect", value="cantonese"),
        SettingChanged(key="wake_word", value="alexa"),
        SpeakingSpeedChanged(speed=0.75),
    ):
        kept = kept.after(event)
    assert kept == Preferences(volume=0.35, muted=True, dialect="cantonese", wake_word="alexa", speed=0.75)
    assert kept.after(UserTranscript(text="hi")) is kept
    assert kept.after(VolumeChanged(level=0.35)) is kept, "the same value again is no change"


def test_the_file_holds_only_what_was_changed_and_reads_back_the_same() -> None:
    kept = Preferences(volume=0.35, dialect="cantonese")
    assert json.loads(kept.to_json()) == {"volume": 0.35, "dialect": "cantonese"}
    assert Preferences.from_json(kept.to_json(), where="f") == kept


def test_a_wrong_value_is_left_out_with_a_warning_and_the_others_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    text = json.dumps({"volume": 7, "dialect": "klingon", "muted": True, "added_by_a_newer_version": 1})
    with caplog.at_level(logging.WARNING):
        kept = Preferences.from_json(text, where="settings.json")
    assert kept == Preferences(muted=True)
    assert "settings.json: ignoring volume=7" in caplog.text and "ignoring dialect='klingon'" in caplog.text


def test_preferences_lay_over_the_config_and_leave_the_rest_alone() -> None:
    settings = Settings.model_validate({"audio": {"volume": 0.8}, "persona": {"dialect": "mandarin", "name": "小乡"}})
    over = Preferences(volume=0.2, dialect="sichuanese").over(settings)
    assert (over.audio.volume, over.persona.dialect, over.persona.name) == (0.2, "sichuanese", "小乡")
    assert Preferences().over(settings) == settings


def test_a_wake_word_no_longer_configured_falls_back_to_every_word(caplog: pytest.LogCaptureFixture) -> None:
    assert Preferences(wake_word="alexa").wake_word_among(("hey_jarvis", "alexa")) == "alexa"
    with caplog.at_level(logging.WARNING):
        assert Preferences(wake_word="alexa").wake_word_among(("hey_jarvis",)) is None
    assert "no longer configured; listening for hey_jarvis" in caplog.text


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "holds list, not a JSON object"),
        (b"\xff\xfe\x00", "cannot read the saved settings"),
        (b"", "is not valid JSON"),
    ],
)
def test_a_corrupt_file_gives_one_clear_log_line_and_the_config_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, says: str
) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR):
        assert PreferenceStore(path).load() == Preferences()
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert says in record.getMessage() and "starting with config.yaml's values" in record.getMessage()


def test_a_missing_file_is_no_error_and_a_folder_in_its_place_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert PreferenceStore(tmp_path / "absent" / "settings.json").load() == Preferences()
        assert caplog.records == []
        (tmp_path / "folder.json").mkdir()
        assert PreferenceStore(tmp_path / "folder.json").load() == Preferences()
    assert "cannot read the saved settings" in caplog.text


def test_saving_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = PreferenceStore(tmp_path / "state" / "settings.json")
    store.save(Preferences(volume=0.5))
    store.save(Preferences(volume=0.6, muted=False))
    assert PreferenceStore(store.path).load() == Preferences(volume=0.6, muted=False)
    assert [p.name for p in store.path.parent.iterdir()] == ["settings.json"]


async def test_every_change_on_the_bus_is_written_and_the_last_one_before_a_stop_too(tmp_path: Path) -> None:
    bus = Bus(MonotonicClock())
    store = PreferenceStore(tmp_path / "settings.json")
    store.load()
    task = asyncio.create_task(store.run(bus))
    await asyncio.sleep(0)  # run() subscribes
    bus.publish(VolumeChanged(level=0.4))
    await eventually(lambda: store.path.exists() and json.loads(store.path.read_text()) == {"volume": 0.4})
    bus.publish(MuteChanged(muted=True))
    bus.publish(SpeakingSpeedChanged(speed=0.8))
    await cancel_and_wait(task)
    assert PreferenceStore(store.path).load() == Preferences(volume=0.4, muted=True, speed=0.8)


async def test_a_disk_that_refuses_is_logged_once_and_the_daemon_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    bus = Bus(MonotonicClock())
    store = PreferenceStore(blocker / "settings.json")
    task = asyncio.create_task(store.run(bus))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        for level in (0.1, 0.2, 0.3):
            bus.publish(VolumeChanged(level=level))
        await eventually(lambda: "cannot save the changed settings" in caplog.text)
        await cancel_and_wait(task)
    assert caplog.text.count("cannot save the changed settings") == 1


# --- the daemon: restored at start-up -----------------------------------------------------------


class Built:
    """What the fake adapter factory saw and set up."""

    settings: Settings | None = None
    speaker: FakeSpeaker | None = None
    speeds: list[float]

    def __init__(self) -> None:
        self.speeds = []


def factory(built: Built) -> Any:
    async def build(settings: Settings, bus: Bus, clock: Clock, stack: contextlib.AsyncExitStack) -> Adapters:
        built.settings = settings
        built.speaker = FakeSpeaker(clock)
        return Adapters(
            source=FakeMicrophone(clock, []),
            sink=built.speaker,
            wake=FakeWakeDetector(),
            vad=FakeSpeechDetector(),
            model=ScriptedModel(clock, []),
            voice=FakeVoice(),
            tools=FakeTools(),
            set_speed=built.speeds.append,
        )

    return build


async def run_app(path: Path, during: Any = None) -> tuple[Built, App, list[object]]:
    """Run the real App on fakes until ``during(app)`` returns; return what it built and published."""
    settings = Settings.model_validate(
        {
            "audio": {"volume": 0.8},
            "wake": {"words": [{"model": "hey_jarvis"}, {"model": "alexa"}]},
            "state": {"settings_path": str(path)},
        }
    )
    built = Built()
    app = App(settings, factory(built))
    seen: list[object] = []
    app.bus.tap(lambda envelope: seen.append(envelope.event))
    running = asyncio.create_task(app.run())
    await eventually(lambda: built.speaker is not None)
    if during is not None:
        await during(app)
    app.request_shutdown("test")
    await asyncio.wait_for(running, 10)
    return built, app, seen


async def test_changes_made_while_running_are_in_force_after_a_restart(tmp_path: Path) -> None:
    """Volume, mute, dialect, wake word and speed set in one run are the start-up values of the next."""
    path = tmp_path / "settings.json"

    async def change(app: App) -> None:
        app.bus.publish(VolumeChanged(level=0.3))
        app.bus.publish(MuteChanged(muted=True))
        app.bus.publish(SettingChanged(key="dialect", value="cantonese"))
        app.bus.publish(SettingChanged(key="wake_word", value="alexa"))
        app.bus.publish(SpeakingSpeedChanged(speed=0.75))

    await run_app(path, change)
    built, app, seen = await run_app(path)
    assert built.settings is not None
    assert (built.settings.audio.volume, built.settings.persona.dialect) == (0.3, "cantonese")
    assert built.speaker is not None and built.speaker.volume == 0.3
    assert built.speeds == [0.75]
    assert app.state.snapshot.muted
    assert MuteChanged(muted=True) in seen and SettingChanged(key="wake_word", value="alexa") in seen


async def test_without_a_settings_path_nothing_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """state.settings_path: null keeps nothing, not even under the default path."""
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings.model_validate({"state": {"settings_path": None}})
    built = Built()
    app = App(settings, factory(built))
    running = asyncio.create_task(app.run())
    await eventually(lambda: built.speaker is not None)
    app.bus.publish(VolumeChanged(level=0.3))
    app.request_shutdown("test")
    await asyncio.wait_for(running, 10)
    assert await asyncio.to_thread(os.listdir, tmp_path) == []
