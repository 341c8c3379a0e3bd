"""Composition root: the only module that builds concrete adapters from the settings and wires them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .bus import Bus
from .config import Settings
from .endpointing import PauseMemory
from .errors import ConfigError, ModelError
from .events import ConnectionChanged, DaemonStarted, ShutdownRequested, TurnEnded
from .logs import log_event
from .model.unavailable import LoadingModel, UnavailableModel
from .ports import (
    AudioSink,
    AudioSource,
    Clock,
    ProsodyDetector,
    Replayer,
    SpeechDetector,
    SpeechModel,
    ToolRunner,
    Voice,
    WakeDetector,
    WakeWordEnroller,
)
from .preference_store import PreferenceStore
from .preferences import Preferences
from .sdnotify import Notifier
from .state import StateTracker
from .supervisor import Supervisor, SupervisorOptions
from .tasks import MonotonicClock, SerialWorker, Worker, in_daemon_thread
from .turn import TurnDeps

if TYPE_CHECKING:
    from .scheduler import ReminderScheduler
    from .tools import ToolRegistry
    from .voice import ReplayVoice

_LOGGER = logging.getLogger(__name__)

Service = Callable[[], Coroutine[Any, Any, None]]
"""A long-running edge (MQTT bridge, Wyoming server): runs until cancelled, never raises for a dropped link."""


@dataclass
class Adapters:
    """The concrete parts the core runs on."""

    source: AudioSource
    sink: AudioSink
    wake: WakeDetector
    vad: SpeechDetector
    model: SpeechModel
    voice: Voice
    tools: ToolRunner
    stop_word: WakeDetector | None = None
    replayer: Replayer | None = None
    prosody: ProsodyDetector | None = None
    """Pitch per chunk for the end of speech; None waits as if every phrase sounded finished."""
    services: Sequence[Service] = field(default_factory=list)
    """Edges run beside the supervisor."""
    keep_unspoken: Callable[[Sequence[str]], None] | None = None
    """Stores announcements not spoken when the daemon stops, so the next start says them."""
    detectors_on: Worker | None = None
    """Where the wake and stop detectors run: a thread of their own for real models; None runs them on the
    event loop, for fakes that take no time."""
    enroller: WakeWordEnroller | None = None
    """Enrols wake words from the microphone when Home Assistant asks; None where enrolment is not offered."""
    listening_enrolled: tuple[str, ...] = ()
    """Enrolled words the wake detector listens for."""
    prompt_voice: Voice | None = None
    """Says the enrolment's instruction without it becoming the answer "say that again" repeats."""
    set_speed: Callable[[float], None] | None = None
    """Sets the speaking speed (a factor, 1.0 normal) kept from before a restart; None: the voice has none."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""Signals that stop the daemon cleanly, unsaid announcements kept. SIGHUP is one of them rather than a
reload: under systemd (``Restart=always``) a clean stop is a restart on the new config, validated at start."""

AdapterFactory = Callable[[Settings, Bus, Clock, contextlib.AsyncExitStack], Coroutine[Any, Any, Adapters]]
"""Builds the adapters; registers their clean-up on the exit stack."""


class App:
    """The daemon: wires the core to its adapters and runs until a signal or ShutdownRequested."""

    def __init__(self, settings: Settings, build: AdapterFactory, *, clock: Clock | None = None) -> None:
        self._settings = settings
        self._build = build
        self.clock: Clock = clock or MonotonicClock()
        self.bus = Bus(self.clock)
        self.state = StateTracker(self.bus)
        if settings.logging.events:
            self.bus.tap(log_event)

    def request_shutdown(self, reason: str) -> None:
        """Ask the daemon to stop; safe from signal handlers."""
        self.bus.publish(ShutdownRequested(reason=reason))

    async def run(self) -> None:
        """Build the adapters, serve, and shut down cleanly on SIGTERM, SIGINT or SIGHUP."""
        store, preferences = self._preferences()
        settings = preferences.over(self._settings)
        async with contextlib.AsyncExitStack() as stack:
            adapters = await self._build(settings, self.bus, self.clock, stack)
            if preferences.speed is not None and adapters.set_speed is not None:
                adapters.set_speed(preferences.speed)
            await self._serve(settings, adapters, preferences, store)
        _LOGGER.info("stopped")

    def _preferences(self) -> tuple[PreferenceStore | None, Preferences]:
        """The settings changed at run time before the last stop, and where changes are kept."""
        path = self._settings.state.settings_path
        if path is None:
            return None, Preferences()
        store = PreferenceStore(_expand(path))
        return store, store.load()

    async def _serve(
        self, settings: Settings, adapters: Adapters, preferences: Preferences, store: PreferenceStore | None
    ) -> None:
        conversation = settings.conversation
        wake_words = tuple(word.name for word in settings.wake.words)
        deps = TurnDeps(
            publish=self.bus.publish,
            clock=self.clock,
            vad=adapters.vad,
            model=adapters.model,
            voice=adapters.voice,
            sink=adapters.sink,
            tools=adapters.tools,
            endpoint=settings.endpointing,
            conversation=conversation,
            replayer=adapters.replayer,
            speak=settings.voice.mode != "tts",
            prosody=adapters.prosody,
            pauses=PauseMemory(),
        )
        supervisor = Supervisor(
            bus=self.bus,
            source=adapters.source,
            wake=adapters.wake,
            stop_word=adapters.stop_word,
            deps=deps,
            detectors_on=adapters.detectors_on,
            enroller=adapters.enroller,
            prompt_voice=adapters.prompt_voice,
            options=SupervisorOptions(
                follow_up_seconds=conversation.follow_up_seconds,
                forget_after_seconds=conversation.forget_after_seconds,
                suppress_wake_during_playback=settings.wake.suppress_during_playback,
                initial_volume=settings.audio.volume,
                initial_muted=bool(preferences.muted),
                wake_words=wake_words,
                # A word kept from before the restart may be an enrolled one that the daemon listens for.
                wake_word=preferences.wake_word_among((*wake_words, *adapters.listening_enrolled)),
                speak_remote_answers=conversation.speak_remote_answers,
                dialect=settings.persona.dialect,
                listening_enrolled=adapters.listening_enrolled,
            ),
        )
        notifier = Notifier()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self.request_shutdown, signal.Signals(signum).name)
        try:
            async with asyncio.TaskGroup() as group:
                edges: list[asyncio.Task[None]] = [
                    group.create_task(service(), name=f"service:{i}") for i, service in enumerate(adapters.services)
                ]
                if (interval := notifier.watchdog_interval_seconds) is not None:
                    edges.append(group.create_task(self._watchdog(notifier, interval), name="watchdog"))
                if store is not None:
                    edges.append(group.create_task(store.run(self.bus), name="preferences"))
                self.bus.publish(DaemonStarted(version=__version__))
                notifier.notify("READY=1")
                _LOGGER.info("xiangyin %s ready", __version__)
                try:
                    await supervisor.run()
                finally:
                    # Also when an edge crashed and the group cancelled the supervisor: nothing said is lost.
                    notifier.notify("STOPPING=1")
                    self._keep_unspoken(adapters, supervisor.unspoken)
                for task in edges:
                    task.cancel()
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    @staticmethod
    def _keep_unspoken(adapters: Adapters, texts: Sequence[str]) -> None:
        if not texts:
            return
        if adapters.keep_unspoken is None:
            _LOGGER.warning("%d announcements were not spoken and cannot be kept: %s", len(texts), list(texts))
            return
        try:
            adapters.keep_unspoken(texts)
        except Exception:
            _LOGGER.exception("could not keep %d unspoken announcements: %s", len(texts), list(texts))

    async def _watchdog(self, notifier: Notifier, interval_seconds: float) -> None:
        """Ping systemd from the event loop, so a blocked loop gets the daemon restarted."""
        while True:
            notifier.notify("WATCHDOG=1")
            await self.clock.sleep(interval_seconds)


def report_unavailable(bus: Bus, service: str, detail: str) -> None:
    """Log and publish that an edge could not be set up."""
    _LOGGER.error("%s unavailable: %s", service, detail)
    with contextlib.suppress(Exception):
        bus.publish(ConnectionChanged(service=service, connected=False, detail=detail))


# --- building the real adapters -----------------------------------------------------------------


async def build_adapters(
    settings: Settings,
    bus: Bus,
    clock: Clock,
    stack: contextlib.AsyncExitStack,
    *,
    input_wav: Path | None = None,
    output_wav: Path | None = None,
) -> Adapters:
    """Build every real adapter from the settings; edges that fail are reported and left out, never fatal."""
    from hardware import FileSink, FileSource, build_ducker, build_echo_canceller, build_microphone, build_speaker

    from .listen import build_prosody, build_stop_detector, build_vad
    from .listen.enroller import StoreEnroller
    from .output import OutputMonitor

    services: list[Service] = []
    audio = settings.audio
    source: AudioSource
    if input_wav is not None:  # first: a bad file stops the start before anything is written
        source = FileSource(input_wav, chunk_ms=audio.chunk_ms, realtime=True, clock=clock)
    echo = build_echo_canceller(audio) if input_wav is None and output_wav is None else None
    sink: AudioSink | None = None
    if output_wav is not None:
        # The file is made last, once everything that may refuse to start has started.
        monitor = OutputMonitor()
    else:
        speaker = build_speaker(audio, bus, echo=echo)
        sink, monitor = speaker, speaker.monitor
        if (ducker := build_ducker(audio)) is not None:
            services.append(lambda: ducker.run(bus))
    if input_wav is None:
        source = build_microphone(audio, bus, echo=echo)

    voice = await _build_voice(settings, stack)
    model = _build_model(settings, bus, stack, services, voice)
    # A replay queued by a turn that ended before speaking must not leak into the next answer.
    bus.tap(lambda envelope: voice.cancel_replay() if isinstance(envelope.event, TurnEnded) else None)
    tools, scheduler = await build_tools(settings, bus, clock, stack, services, voice)
    # Wake-word models take milliseconds per chunk, much more when the CPU is starved: never on the loop.
    detectors = SerialWorker("wake-word")
    stack.callback(detectors.close)
    # The wake words enrolled from Home Assistant are swapped in through the same enroller, so it builds all.
    enroller = StoreEnroller(settings.wake, monitor=monitor)
    (wake, listening), stop_word, vad, prosody = (
        enroller.detector(),
        build_stop_detector(settings.wake),
        build_vad(),
        build_prosody(),
    )
    if sink is None:
        assert output_wav is not None
        file_sink = FileSink(output_wav, monitor=monitor)
        stack.callback(file_sink.close)
        sink = file_sink
    return Adapters(
        source=source,
        sink=sink,
        wake=wake,
        enroller=enroller,
        listening_enrolled=listening,
        prompt_voice=voice.inner,
        stop_word=stop_word,
        vad=vad,
        prosody=prosody,
        model=model,
        voice=voice,
        tools=tools,
        replayer=voice,
        services=services,
        keep_unspoken=scheduler.keep if scheduler is not None else None,
        detectors_on=detectors,
        set_speed=voice.set_speed,
    )


def _build_model(
    settings: Settings, bus: Bus, stack: contextlib.AsyncExitStack, services: list[Service], voice: ReplayVoice
) -> SpeechModel:
    if settings.model.backend not in ("local", "vllm"):
        from .plugins import MODELS, build

        plugin: SpeechModel = build(
            MODELS,
            settings.model.backend,
            settings.persona,
            bus.publish,
            key="model.backend",
            options=settings.model.options,
        )
        if (close := getattr(plugin, "aclose", None)) is not None:
            stack.push_async_callback(close)
        return plugin
    if settings.model.backend == "vllm":
        from .model.stepaudio2.vllm import build_vllm_model

        remote = build_vllm_model(settings.model.vllm, settings.persona, bus.publish)
        stack.push_async_callback(remote.aclose)
        services.append(remote.run_health_checks)
        return remote

    async def load() -> SpeechModel:
        from .model.stepaudio2 import build_local_model

        try:
            # Loading reads gigabytes; off the loop so the wake word and Home Assistant keep working.
            model = await in_daemon_thread(build_local_model, settings.model.local, settings.persona)
        except Exception as err:
            # Every turn then answers with the error earcon and this reason in the log.
            report_unavailable(bus, "model", str(err))
            return UnavailableModel(str(err))
        try:
            await model.warm_up()  # the first answer would otherwise pay for kernel set-up
        except ModelError as err:
            _LOGGER.warning("model warm-up failed: %s", err)
        bus.publish(ConnectionChanged(service="model", connected=True, detail=settings.model.local.path))
        # Questions need not wait for token2wav: the TTS speaks until the model's own voice is ready.
        attaching = asyncio.get_running_loop().create_task(_attach_model_voice(settings, voice), name="voice:attach")
        stack.callback(attaching.cancel)
        return model

    loading: asyncio.Task[SpeechModel] = asyncio.get_running_loop().create_task(load(), name="model:load")
    stack.callback(loading.cancel)
    return LoadingModel(loading)


async def _attach_model_voice(settings: Settings, voice: ReplayVoice) -> None:
    """Once a downloaded model is on disk, speak with its token2wav instead of the TTS."""
    from .model.stepaudio2.loading import resolve
    from .voice import AnswerVoice, SpeechError, VoiceUnavailable, build_token_speaker

    inner = voice.inner
    if settings.voice.mode == "tts" or not isinstance(inner, AnswerVoice) or inner.has_tokens:
        return
    local = settings.model.local
    try:
        folder = await in_daemon_thread(lambda: resolve(local.path, revision=local.revision))
        tokens = await in_daemon_thread(build_token_speaker, settings.voice, folder)
        inner.attach_tokens(tokens, settings.voice.mode)
        await voice.prepare()
    except (VoiceUnavailable, SpeechError, ModelError) as err:
        _LOGGER.warning("answers stay with the TTS: %s", err)
    except Exception:
        # Nobody awaits this task; an unexpected failure must still be seen, and the TTS keeps speaking.
        _LOGGER.exception("loading the model's voice failed; answers stay with the TTS")
    else:
        _LOGGER.info("answers now use the model's own voice (token2wav)")


async def _build_voice(settings: Settings, stack: contextlib.AsyncExitStack) -> ReplayVoice:
    from .voice import SpeechError, VoiceUnavailable, build_voice

    voice_settings = settings.voice
    model_dir = _local_model_dir(settings)
    if voice_settings.mode == "model" and model_dir is None and settings.model.backend == "local":
        # The model (and its token2wav) may still be downloading: speak through the TTS until it is here.
        voice_settings = voice_settings.model_copy(update={"mode": "auto"})
    try:
        voice = build_voice(voice_settings, settings.persona, model_dir)
    except VoiceUnavailable as err:
        _LOGGER.warning("%s; answers are spoken through the TTS", err)
        try:
            voice = build_voice(settings.voice.model_copy(update={"mode": "tts"}), settings.persona, None)
        except VoiceUnavailable as tts_err:
            raise ConfigError(f"voice.tts: {tts_err}") from tts_err
    stack.callback(voice.close)
    try:
        await voice.prepare()
    except SpeechError as err:
        _LOGGER.warning("the model's voice is unusable, answers use the TTS: %s", err)
    return voice


def _local_model_dir(settings: Settings) -> Path | None:
    """The local model directory, when model.local.path names one (token2wav/ lives inside it)."""
    local = _expand(settings.model.local.path)
    return local if local.is_dir() else None


def _expand(path: str) -> Path:
    return Path(path).expanduser()


async def build_tools(
    settings: Settings,
    bus: Bus,
    clock: Clock,
    stack: contextlib.AsyncExitStack,
    services: list[Service],
    voice: ReplayVoice,
) -> tuple[ToolRegistry, ReminderScheduler | None]:
    """Build the skills and what they reach (MQTT bridge, Home Assistant, scheduler); edges go to ``services``."""
    import httpx

    from .errors import HomeAssistantError, StorageError
    from .integrations.ha_registry import build_house_registry
    from .integrations.homeassistant import build_home_assistant
    from .integrations.mqtt import MqttBridge
    from .integrations.wyoming import WyomingServer
    from .logs import secret_values
    from .ports import HomeAssistantApi, HouseRegistry, MessagePublisher
    from .redact import OUTWARD_MIN_CHARS, Redactor
    from .scheduler import ReminderScheduler
    from .skills import SkillDeps, load_skills

    redact = Redactor(secret_values(settings), min_chars=OUTWARD_MIN_CHARS)
    mqtt: MessagePublisher | None = None
    if settings.mqtt.enabled:
        bridge = MqttBridge(
            settings.mqtt,
            bus,
            __version__,
            wake_words=[word.name for word in settings.wake.words],
            wake_word=settings.wake.words[0].name,
            dialect=settings.persona.dialect,
            volume=settings.audio.volume,
            redact=redact,
        )
        services.append(bridge.run)
        mqtt = bridge
    home_assistant: HomeAssistantApi | None = None
    house: HouseRegistry | None = None
    if settings.home_assistant.enabled:
        try:
            client = build_home_assistant(settings.home_assistant, publish=bus.publish)
        except HomeAssistantError as err:
            report_unavailable(bus, "home_assistant", str(err))
        else:
            stack.push_async_callback(client.close)
            # A failure is logged and published by the client, which keeps trying on every request.
            with contextlib.suppress(HomeAssistantError):
                await client.check()
            home_assistant = client
            registry = build_house_registry(settings.home_assistant, publish=bus.publish)
            services.append(registry.run)
            house = registry
            if settings.home_assistant.pause_players:
                from .integrations.media_pause import MediaPauser

                pauser = MediaPauser(client, settings.home_assistant.pause_players)
                services.append(lambda: pauser.run(bus))
            if settings.home_assistant.media_players:
                from .integrations.announce import HomeAnnouncer

                services.append(HomeAnnouncer(bus, client.announce, settings.home_assistant.media_players).run)
    if settings.wyoming.enabled:
        services.append(WyomingServer(settings.wyoming, bus, __version__, voice=voice, redact=redact).run)

    reminders = ReminderScheduler(
        _expand(settings.scheduler.database),
        publish=bus.publish,
        timezone=settings.persona.timezone,
        misfire_grace_seconds=settings.scheduler.misfire_grace_seconds,
        wait_until_spoken=True,  # the supervisor reports each one spoken
    )
    scheduler: ReminderScheduler | None = reminders
    try:
        await reminders.start(paused=True)  # observe() resumes it once the supervisor listens
    except StorageError as err:
        # Without reminders, the rest of the assistant still works; the timers skill explains its absence.
        report_unavailable(bus, "scheduler", str(err))
        scheduler = None
    else:
        stack.push_async_callback(reminders.stop)
        bus.tap(reminders.observe)
    http = httpx.AsyncClient(timeout=10)
    stack.push_async_callback(http.aclose)
    deps = SkillDeps(
        publish=bus.publish,
        clock=clock,
        timezone=settings.persona.timezone,
        home_location=settings.persona.location,
        region=settings.persona.region_code,
        http=http,
        home_assistant=home_assistant,
        house=house,
        box_device_id=settings.mqtt.device_id,
        mqtt=mqtt,
        mqtt_command_topics=settings.mqtt.command_topics,
        scheduler=scheduler,
        voice=voice,
    )
    tools = await load_skills(settings.skills, deps, redact=redact)
    stack.push_async_callback(tools.aclose)
    bus.tap(tools.observe)
    return tools, scheduler
