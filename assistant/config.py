"""One pydantic settings tree for the whole daemon, loaded once at start-up.

Every model is frozen and forbids unknown keys, so a typo is an error that names the file and the dotted
key. Secrets never live in the file: a value may be ``${ENV_NAME}``, and any ``<key>_file`` entry is
replaced by the stripped contents of that file (``password_file: /etc/xiangyin/mqtt_password``).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .plugins import MODELS, TTS, WAKE_ENGINES, check_name
from .redact import Redactor, is_secret_name, url_secrets
from .region import region_of_zone

Dialect = Literal["mandarin", "cantonese", "sichuanese", "english"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


# --- audio --------------------------------------------------------------------------------------


class AudioSettings(_Model):
    """Microphone and speaker."""

    input_device: str | int | None = None
    """Capture device: a PortAudio index, or a substring of its name; null for the default."""
    output_device: str | int | None = None
    """Playback device: a PortAudio index, or a substring of its name; null for the default."""
    chunk_ms: Annotated[int, Field(ge=10, le=200)] = 80
    """Milliseconds of audio per microphone chunk (openWakeWord's natural frame is 80)."""
    volume: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    """Linear output gain at start-up, 0.0 to 1.0."""
    duck_level: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    """Linear gain (0.0 to 1.0) applied to other applications' audio on the sound server while the
    assistant listens or speaks; 1.0 turns ducking off."""
    reconnect_max_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    """Longest wait, in seconds, between attempts to reopen a vanished device."""
    stall_seconds: Annotated[float, Field(ge=0.5, le=30.0)] = 2.0
    """Seconds without audio from an open microphone after which it counts as lost and is reopened."""
    output_rate_hz: Annotated[int, Field(ge=8000, le=192_000)] | None = None
    """Rate the speaker is opened at; null opens it at each stream's own rate (resampled if refused)."""
    output_block_ms: Annotated[int, Field(ge=5, le=100)] = 20
    """Milliseconds of audio the speaker hands the device at a time; bounds how late stop() cuts sound."""
    echo_cancel: Literal["none", "webrtc"] = "none"
    """webrtc: cancel the speaker's echo in the microphone with WebRTC AEC3 (the livekit package); none: rely
    on the wake-word echo guard, or on an echo-cancelling sound server (see docs/audio.md)."""
    noise_suppression: bool = False
    """With echo_cancel webrtc, also suppress steady background noise in the microphone."""


# --- wake word ----------------------------------------------------------------------------------


def _plugin(group: str) -> Callable[[str], str]:
    """A validator: the name is a built-in engine of ``group`` or an installed plugin of it."""
    return lambda name: check_name(group, name)


class WakeWordModel(_Model):
    """One wake word: a model, or a word the household enrolled (``xiangyin wake enroll NAME``)."""

    model: Annotated[str, Field(min_length=1)] | None = None
    """A bundled name (alexa, hey_jarvis, hey_mycroft, hey_rhasspy, okay_nabu) or a model file path:
    .tflite or .onnx for openWakeWord, the .json manifest (next to its .tflite) for microWakeWord."""
    enrolled: Annotated[str, Field(min_length=1)] | None = None
    """Name of a word enrolled under wake.enrolled_dir (openWakeWord engine only); instead of model."""
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    """Score (0.0 to 1.0) at or above which the word counts as heard; null for the model's own default
    (0.5 for openWakeWord, the cutoff shipped with a microWakeWord model, the threshold calibrated at
    enrolment for an enrolled word)."""
    refractory_seconds: Annotated[float, Field(ge=0.0, le=30.0)] = 2.0
    """Seconds after a detection during which this word is ignored."""

    @model_validator(mode="after")
    def _one_source(self) -> WakeWordModel:
        if (self.model is None) == (self.enrolled is None):
            raise ValueError("give exactly one of model and enrolled")
        return self

    @property
    def name(self) -> str:
        """The word as configured: the model spec or the enrolled name."""
        return self.model if self.model is not None else str(self.enrolled)


class WakeSettings(_Model):
    """Wake-word detection."""

    engine: Annotated[str, AfterValidator(_plugin(WAKE_ENGINES))] = "openwakeword"
    """Detection engine: openwakeword, microwakeword, or an installed ``xiangyin.wake_engines`` plugin."""
    engine_options: dict[str, Any] = {}
    """Settings handed to a plugin engine (see its documentation); the built-in engines take none."""
    openwakeword_runner: Literal["lean", "pyopen"] = "lean"
    """How openWakeWord's bundled models run: lean (one thread with XNNPACK, about 50 CPU seconds per
    audio hour) or pyopen (pyopen-wakeword's own multi-threaded interpreters, 5-6 times the CPU; the same
    scores, kept for comparison and as a fallback)."""
    quiet_gate: bool = True
    """openWakeWord only: skip the models while the room is quiet (chunks under 6 dB above the noise
    floor and over 2 s from any sound) and let them catch up on the 2 s of audio kept when sound starts,
    so no word is lost. microWakeWord costs little and keeps state that skipping would disturb."""
    words: Annotated[tuple[WakeWordModel, ...], Field(min_length=1)] = (WakeWordModel(model="hey_jarvis"),)
    """Wake words listened for at the same time."""
    stop_words: tuple[WakeWordModel, ...] = ()
    """Words that stop the assistant; armed only while it speaks."""
    enrolled_dir: Path = Path("~/.local/share/xiangyin/wake")
    """Folder holding the enrolled wake words (one subfolder per word; ~ is expanded)."""
    listen_enrolled: bool = True
    """The daemon also listens for every enrolled word that neither words nor stop_words names (with its
    calibrated threshold and a 2 s refractory period), so a word enrolled from Home Assistant is heard at
    once, without editing the config; false: only the words listed here."""
    suppress_during_playback: bool = False
    """Ignore wake words while the assistant speaks (for speakers next to the mic without an echo
    canceller); the stop words still work, but the wake word no longer interrupts."""
    echo_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    """While the assistant's own output is audible, a wake word counts only at this score (0.0 to 1.0)
    or above, so the assistant does not wake itself; 1.0 ignores them all then, 0.0 turns the guard off."""
    echo_tail_seconds: Annotated[float, Field(ge=0.0, le=5.0)] = 0.5
    """Seconds after the speaker goes quiet during which the echo guard stays on (room reverb, buffers)."""

    @model_validator(mode="after")
    def _each_word_once(self) -> WakeSettings:
        # Two entries of one word would load its model twice and report every detection twice.
        seen: dict[str, str] = {}
        for key, words in (("words", self.words), ("stop_words", self.stop_words)):
            for i, word in enumerate(words):
                where = f"{key}[{i}]"
                if word.name in seen:
                    raise ValueError(f"{where}: {word.name!r} is already listed as {seen[word.name]}")
                seen[word.name] = where
        return self


# --- end of speech ------------------------------------------------------------------------------

_PROFILES: dict[str, dict[str, float]] = {
    "normal": {
        "end_silence_seconds": 0.3,
        "hold_silence_seconds": 1.0,
        "fall_semitones": 0.5,
        "pitch_cues": False,
        "no_speech_timeout_seconds": 5.0,
        "max_speech_seconds": 15.0,
    },
    # Slow or elderly speakers pause mid-sentence, often for 2 s and more after a hesitation or an unfinished
    # phrase; 2.9 s keeps pauses of 2.5 s whole, and a phrase that sounds finished still ends after 1.5 s.
    "patient": {
        "end_silence_seconds": 1.5,
        "hold_silence_seconds": 2.9,
        # A slow speaker's pause cut short costs more than a late answer: only a clear fall counts as finished.
        "fall_semitones": 1.0,
        "pitch_cues": True,
        "no_speech_timeout_seconds": 8.0,
        "max_speech_seconds": 30.0,
    },
}


class EndpointSettings(_Model):
    """When the user has finished speaking."""

    profile: Literal["normal", "patient"] = "normal"
    """Preset for the four durations and the fall below; any of them set here overrides the preset."""
    speech_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    """VAD probability (0.0 to 1.0) at or above which a chunk counts as speech."""
    start_seconds: Annotated[float, Field(ge=0.0, le=2.0)] = 0.15
    """Seconds of continuous speech before the user counts as speaking."""
    end_silence_seconds: Annotated[float, Field(gt=0.0, le=10.0)] = 0.3
    """Seconds of silence that end the utterance after a phrase that sounds finished (falling pitch)."""
    hold_silence_seconds: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    """Seconds of silence that end it after a phrase that sounds unfinished: a hesitation ("嗯", "um"), or a
    level or rising end. Never shorter than end_silence_seconds."""
    pitch_cues: bool = False
    """Also hold the turn open after a level or rising end, not only after a hesitation (patient: true). Slow
    speakers' unfinished phrases end so, but so do many questions (rising) and Chinese tones (level): on, the
    wait after those is the longer one."""
    fall_semitones: Annotated[float, Field(ge=0.0, le=12.0)] = 0.5
    """With pitch_cues, semitones the pitch must fall at the end of a phrase for it to sound finished
    (patient: 1.0)."""
    learn_pauses: bool = True
    """Lengthen both waits to fit the pauses this household was heard to make mid-sentence (recent turns)."""
    room_gate: bool = True
    """Tell the user from the room: speech no louder than what the box heard before the wake word (a TV,
    a radio) does not keep the turn open."""
    room_margin_db: Annotated[float, Field(ge=0.0, le=30.0)] = 3.0
    """Decibels above the background's loud level (its 90th percentile before the wake word) that a chunk
    needs to count as the user."""
    voice_margin_db: Annotated[float, Field(ge=0.0, le=40.0)] = 6.0
    """Decibels under the user's own level (the wake word, then the question) that a chunk always counts
    as the user from, however loud the background was."""
    speculate_seconds: Annotated[float, Field(ge=0.0, le=5.0)] = 0.16
    """Seconds of silence after which the model starts on the utterance so far, while the end is still being
    decided; its answer plays only once the end is decided, and is dropped if the user goes on. 0 disables."""
    no_speech_timeout_seconds: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    """Seconds to wait for speech to start before giving up."""
    max_speech_seconds: Annotated[float, Field(gt=0.0, le=120.0)] = 15.0
    """Longest utterance in seconds; the model hears at most this much."""
    preroll_seconds: Annotated[float, Field(ge=0.0, le=2.0)] = 0.3
    """Seconds of audio kept from before speech started, so the first syllable is not lost."""

    @model_validator(mode="after")
    def _can_hear_someone(self) -> EndpointSettings:
        if self.start_seconds >= self.no_speech_timeout_seconds:
            raise ValueError(
                f"start_seconds ({self.start_seconds}) must be shorter than no_speech_timeout_seconds "
                f"({self.no_speech_timeout_seconds}), or no one could ever start speaking in time"
            )
        if self.hold_silence_seconds < self.end_silence_seconds:
            raise ValueError(
                f"hold_silence_seconds ({self.hold_silence_seconds}) must not be shorter than end_silence_seconds "
                f"({self.end_silence_seconds})"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("profile", "normal"), str):
            preset = _PROFILES.get(data.get("profile", "normal"), {})
            merged = {**preset, **data}
            end = data.get("end_silence_seconds")
            if "hold_silence_seconds" not in data and isinstance(end, int | float):
                # A longer end silence set alone lengthens the hold too, rather than contradicting it.
                merged["hold_silence_seconds"] = max(float(end), preset.get("hold_silence_seconds", 0.0))
            return merged
        return data


# --- conversation -------------------------------------------------------------------------------


class ConversationSettings(_Model):
    """How turns follow each other."""

    follow_up_seconds: Annotated[float, Field(ge=0.0, le=30.0)] = 4.0
    """Seconds after an answer during which the user may speak again without the wake word; 0 disables."""
    max_tool_rounds: Annotated[int, Field(ge=1, le=10)] = 4
    """Most model → tools → model rounds in one turn."""
    forget_after_seconds: Annotated[float, Field(ge=0.0)] = 300.0
    """Idle seconds after which the next wake word starts a fresh conversation."""
    earcons: bool = True
    """Play short sounds on wake, and on errors."""
    model_first_event_timeout_seconds: Annotated[float, Field(gt=0.0, le=600.0)] = 45.0
    """Longest wait, in seconds, from asking the model to its first event (transcript, text, speech or tool
    call); a model that never answers then ends the turn with the error earcon."""
    model_idle_timeout_seconds: Annotated[float, Field(gt=0.0, le=600.0)] = 20.0
    """Longest wait, in seconds, between two events of the model once it has started answering."""
    speak_remote_answers: bool = False
    """Also speak at the box the answers to questions asked from Home Assistant (the MQTT ask entity or
    topic, a Wyoming transcript); False answers only the asker, without a sound at the box."""


# --- persona ------------------------------------------------------------------------------------


class PersonaSettings(_Model):
    """Who the assistant is and how it talks to this household."""

    name: Annotated[str, Field(min_length=1)] = "小音"
    """The assistant's name, used in its system prompt."""
    dialect: Dialect = "mandarin"
    """The household's language or dialect for answers."""
    style: Literal["default", "elderly", "brief"] = "default"
    """Speaking style: ``elderly`` is slower, simpler and repeats key facts."""
    location: str = ""
    """Home town, for weather and local questions when the user names no place."""
    timezone: str = "Asia/Shanghai"
    """IANA time zone of the household."""
    region: str = ""
    """ISO 3166-1 code of where the household is: CN (mainland China), HK, MO, TW, SG, US …; empty means
    read from ``timezone`` (Asia/Shanghai is CN, Asia/Hong_Kong HK, Asia/Taipei TW, …; zones outside
    Greater China, Singapore and Malaysia: unknown, so give it). The web skills choose reachable services
    and, among same-named places, the one in this country by it."""

    @field_validator("region")
    @classmethod
    def _region_code(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"{value[:20]!r} is not a two-letter region code such as CN, HK or TW")
        return value.upper()

    @property
    def region_code(self) -> str:
        """The configured region, else the one of the time zone; empty when unknown."""
        return self.region or region_of_zone(self.timezone)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
            raise ValueError(
                f"{value[:80]!r} is not an IANA time zone such as Asia/Shanghai or Asia/Hong_Kong"
            ) from None
        return value


# --- model --------------------------------------------------------------------------------------


class LocalModelSettings(_Model):
    """In-process Step-Audio 2 mini."""

    path: str = "stepfun-ai/Step-Audio-2-mini"
    """A local model directory, or a Hugging Face repo id downloaded on first start."""
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    """Where the model runs; auto picks CUDA, then MPS, then CPU."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Weight precision; auto is bfloat16 on GPUs and float32 on CPU."""
    quantization: Literal["none", "int8", "int4"] = "none"
    """Weight quantization so the model fits 12 to 16 GB cards."""
    max_new_tokens: Annotated[int, Field(ge=16, le=8192)] = 2048
    """Most tokens generated per model round."""
    history_tokens: Annotated[int, Field(ge=512, le=32768)] = 8192
    """Token budget for the conversation history kept in the KV cache."""
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    """Sampling temperature (StepFun's examples use 0.7 for speech); 0 always picks the likeliest token."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """Nucleus sampling: the smallest set of tokens whose probabilities add up to this fraction."""
    repetition_penalty: Annotated[float, Field(ge=1.0, le=2.0)] = 1.05
    """Divides the score of tokens already in the context; 1.0 disables it."""
    decode: Literal["auto", "dynamic", "static", "compiled"] = "auto"
    """KV cache and decode step: dynamic (grows as needed); static (history_tokens + max_new_tokens
    positions allocated per cached conversation); compiled (static, with the decode step compiled by
    torch.compile, replayed as a CUDA graph on GPUs; the start-up's warm-up pays seconds of compiling);
    auto (the fastest measured on the device: compiled on a CPU when the decoder's layers are large enough
    for the compiled one-row product, else static; dynamic elsewhere until a GPU is measured)."""
    revision: str | None = None
    """Hugging Face revision (branch, tag or commit) to download; null for the default branch."""
    audio_tail: Literal["stepfun", "even"] = "stepfun"
    """Audio longer than 25 s is heard in 25 s chunks. stepfun: cut as StepFun's code cuts, so a tail under
    50 ms is a chunk of one placeholder or none; even: that tail is evened out with the chunk before it,
    so the last 50 ms reach the model through at least two embeddings."""


class VllmModelSettings(_Model):
    """StepFun's OpenAI-compatible vLLM server (one GPU box serving many rooms)."""

    base_url: Annotated[str, Field(pattern=r"^https?://")] = "http://127.0.0.1:8000/v1"
    """Server URL up to and including /v1."""
    model: Annotated[str, Field(min_length=1)] = "step-audio-2-mini"
    """Served model name (vLLM's --served-model-name)."""
    api_key: SecretStr | None = None
    """Bearer token, from ${ENV} or api_key_file; null when the server has no --api-key."""
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60.0
    """Longest wait for a whole reply (one model round), in seconds."""
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    """Extra attempts, with jittered backoff, when the server refuses the connection before any reply;
    slower failures (timeouts, 5xx, broken streams) are retried once by the turn instead."""
    connect_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 3.0
    """Longest wait to open a TCP connection to the server, in seconds."""
    first_token_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 20.0
    """Longest wait from sending a request to the first streamed token, in seconds (covers queueing
    behind other rooms and audio encoding)."""
    idle_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Longest silence between two streamed chunks once the reply has started, in seconds."""
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    """Sampling temperature (StepFun's examples use 0.7 for speech)."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """Nucleus sampling mass, 0.0 to 1.0."""
    repetition_penalty: Annotated[float, Field(ge=1.0, le=2.0)] = 1.05
    """vLLM repetition penalty; 1.0 disables it."""
    max_tokens: Annotated[int, Field(ge=16, le=8192)] = 2048
    """Most tokens generated per model round (about 32 per second of speech)."""
    history_tokens: Annotated[int, Field(ge=0, le=16384)] = 6000
    """Estimated token budget for each room's conversation history; older spoken answers are first
    kept as text only, then the oldest exchanges are dropped. 0 keeps only the current turn."""
    health_interval_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    """Seconds between health checks of the server (GET /v1/models) while it is reachable."""


class ModelSettings(_Model):
    """The speech model."""

    backend: Annotated[str, AfterValidator(_plugin(MODELS))] = "local"
    """Run the model in-process (local), call a vLLM server (vllm), or an installed ``xiangyin.models`` plugin."""
    options: dict[str, Any] = {}
    """Settings handed to a plugin backend (see its documentation); local and vllm have their own sections."""
    local: LocalModelSettings = LocalModelSettings()
    """Settings of the in-process backend."""
    vllm: VllmModelSettings = VllmModelSettings()
    """Settings of the vLLM backend."""


# --- voice --------------------------------------------------------------------------------------


class TtsSettings(_Model):
    """The text-to-speech fallback."""

    engine: Annotated[str, AfterValidator(_plugin(TTS))] = "espeak-ng"
    """Offline engine for text answers: espeak-ng, piper, or an installed ``xiangyin.tts`` plugin."""
    options: dict[str, Any] = {}
    """Settings handed to a plugin voice (see its documentation); the built-in engines take none."""
    voice: str | None = None
    """Engine voice; null picks one for the persona's dialect (espeak-ng: yue, cmn-latn-pinyin, en)."""
    rate_wpm: Annotated[int, Field(ge=60, le=400)] = 150
    """Speaking rate in words per minute (espeak-ng)."""
    volume: Annotated[float, Field(ge=0.1, le=2.0)] = 1.0
    """Loudness of the TTS voice relative to the engine's default (1.0); persona style elderly adds 25 %."""
    piper_model: str | None = None
    """Path of a Piper .onnx voice, for engine piper."""


class Token2WavSettings(_Model):
    """token2wav: the model's speech tokens to 24 kHz audio."""

    path: str | None = None
    """The released token2wav/ folder (flow.pt, hift.pt, two .onnx); null: token2wav/ inside the model directory."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """Where synthesis runs; auto picks CUDA when present."""
    fp16: bool | None = None
    """Run the flow in half precision; null: on for CUDA, off for CPU."""
    first_chunk_tokens: Annotated[int, Field(ge=4, le=50)] = 10
    """Speech tokens (25 per second) in the first chunk; smaller starts sound sooner."""
    chunk_tokens: Annotated[int, Field(ge=5, le=100)] = 25
    """Speech tokens in each later chunk."""
    cache_dir: str = "~/.cache/xiangyin/voices"
    """Where processed voice prompts are kept so start-up does not repeat the work."""
    speech_pad: Literal["drop", "stepfun"] = "drop"
    """The model's speech pad (code 6561, a slot with no speech). drop: left out, so the answer is voiced;
    stepfun: passed to the flow as StepFun's code passes it, where it fails that answer's voice as it fails
    theirs (their flow has 6561 codes, 0..6560), and the TTS speaks the rest."""


class VoiceSettings(_Model):
    """How answers are spoken."""

    mode: Literal["model", "tts", "auto"] = "auto"
    """model: the model's own speech; tts: its text through the TTS; auto: speech, else TTS."""
    prompt_wav: str | None = None
    """A 16 kHz WAV of the voice to speak with (token2wav prompt); null for the default voice."""
    speed: Annotated[float, Field(ge=0.5, le=1.5)] = 1.0
    """Playback speed factor; below 1.0 is slower."""
    slower_speed: Annotated[float, Field(ge=0.5, le=1.0)] = 0.75
    """Speed factor for "say that again, slower" and "speak slower"."""
    tts: TtsSettings = TtsSettings()
    """Text-to-speech fallback."""
    token2wav: Token2WavSettings = Token2WavSettings()
    """Speech-token synthesis for the model's own voice."""


# --- integrations -------------------------------------------------------------------------------


class MqttSettings(_Model):
    """MQTT broker and Home Assistant discovery."""

    enabled: bool = False
    """Connect to the broker."""
    host: str = "127.0.0.1"
    """Broker host name or address."""
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    """Broker TCP port."""
    username: str | None = None
    """User name, if the broker wants one."""
    password: SecretStr | None = None
    """Password, from ${ENV} or password_file."""
    tls: bool = False
    """Use TLS to the broker."""
    ca_file: str | None = None
    """CA bundle for TLS; null for the system store."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant discovery prefix."""
    base_topic: str = "xiangyin"
    """Prefix of this device's own topics (levels separated by ``/``, no wildcards ``+`` or ``#``)."""
    device_id: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "xiangyin_living_room"
    """Unique id of this box (lower case, digits, underscores)."""
    device_name: str = "Xiangyin"
    """Name of the device in Home Assistant."""
    command_topics: tuple[str, ...] = ()
    """Topics the smart-home skill may publish to (MQTT wildcards allowed)."""
    discovery: Literal["entity", "device"] = "entity"
    """Home Assistant discovery style: one config topic per entity (every HA version) or one per device
    (newer HA only; 2024.3 rejects it)."""
    keepalive_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    """Seconds between MQTT keep-alive pings; the broker declares the box offline after 1.5 times this."""
    reconnect_max_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    """Longest wait, in seconds, between attempts to reach the broker."""
    queue_limit: Annotated[int, Field(ge=10, le=100_000)] = 1000
    """Most outgoing messages kept while the broker is away; the oldest are dropped beyond it."""

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _plain_topic_prefix(cls, value: str) -> str:
        # The bridge subscribes below these prefixes: a wildcard would let other topics in as commands.
        levels = value.strip("/").split("/")
        if any(not level for level in levels) or any(c in value for c in "+#\x00") or value.startswith("$"):
            raise ValueError(
                f"{value!r} is not a plain topic prefix: use non-empty levels separated by /, without the "
                "wildcards + and #, not starting with $"
            )
        return value


MediaPlayerId = Annotated[str, Field(pattern=r"^media_player\.[a-z0-9_]+$")]
"""A Home Assistant media player's entity id, e.g. ``media_player.kitchen``."""


class HomeAssistantSettings(_Model):
    """Home Assistant REST/WebSocket API."""

    enabled: bool = False
    """Use Home Assistant for the smart-home skill and notifications."""
    url: str = "http://homeassistant.local:8123"
    """Base URL of Home Assistant."""
    token: SecretStr | None = None
    """Long-lived access token, from ${ENV} or token_file."""
    verify_ssl: bool = True
    """Check the server's TLS certificate."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    """Longest wait for one action, retries included, in seconds."""

    @model_validator(mode="after")
    def _token_when_enabled(self) -> HomeAssistantSettings:
        if self.enabled and (self.token is None or not self.token.get_secret_value().strip()):
            raise ValueError("home_assistant.enabled needs a token: token: ${HA_TOKEN} or token_file: PATH")
        return self

    @model_validator(mode="after")
    def _announce_needs_both(self) -> HomeAssistantSettings:
        if bool(self.tts_entity) != bool(self.media_players):
            given, missing = ("tts_entity", "media_players") if self.tts_entity else ("media_players", "tts_entity")
            raise ValueError(
                f"home_assistant.{given} is set but home_assistant.{missing} is not: announcements on Home "
                "Assistant's speakers need both (a TTS entity such as tts.piper, and the media players)"
            )
        return self

    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Extra attempts after a request fails because Home Assistant is down or timed out."""
    tts_entity: Annotated[str, Field(pattern=r"^tts\.[a-z0-9_]+$")] | None = None
    """TTS entity (e.g. ``tts.piper``) that speaks every announcement (reminders, timers, the announce entity)
    on ``media_players`` too, through Home Assistant's ``tts.speak``."""
    media_players: tuple[MediaPlayerId, ...] = ()
    """Media player entity ids that announcements play on, besides the box itself."""
    pause_players: tuple[MediaPlayerId, ...] = ()
    """Media players in the box's room (a TV, a smart speaker) paused while the user speaks and played again
    after the answer; only those that were playing."""


class WyomingSettings(_Model):
    """Serve Home Assistant over the Wyoming protocol (conversation agent)."""

    enabled: bool = False
    """Listen for Home Assistant's Wyoming integration."""
    host: str = "127.0.0.1"
    """Address to listen on: loopback (Home Assistant on this machine) unless set; any other address
    needs ``allowed_clients``."""
    allowed_clients: tuple[IPvAnyNetwork, ...] = ()
    """Addresses or networks (CIDR, e.g. ``192.168.1.20`` or ``192.168.1.0/24``) allowed to connect;
    others are refused when they connect. Wyoming carries no password, so a non-loopback ``host`` needs
    this list; empty allows only this machine."""
    port: Annotated[int, Field(ge=1, le=65535)] = 10700
    """TCP port to listen on."""
    name: Annotated[str, Field(min_length=1)] = "Xiangyin"
    """Name Home Assistant shows for this Wyoming service."""
    answer_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 60.0
    """Longest wait, in seconds, for the answer to a question Home Assistant passed on."""
    idle_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """A connection that sends no complete message for this many seconds (while no answer is awaited) is
    closed; Home Assistant opens one per request, so only a stuck or hostile peer is ever idle that long."""
    max_connections: Annotated[int, Field(ge=1, le=1024)] = 16
    """Connections served at once; a peer that opens more has the new ones closed at once."""

    @model_validator(mode="after")
    def _exposed_only_to_known_clients(self) -> WyomingSettings:
        if self.enabled and not is_loopback(self.host) and not self.allowed_clients:
            raise ValueError(
                f"wyoming.host {self.host!r} is reachable from other machines, and Wyoming has no password: "
                "list the Home Assistant machine in wyoming.allowed_clients (e.g. [192.168.1.20]), "
                "or listen on 127.0.0.1"
            )
        return self


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; a name or a wildcard address counts as exposed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SchedulerSettings(_Model):
    """Timers, alarms and reminders."""

    database: str = "~/.local/share/xiangyin/jobs.sqlite"
    """SQLite file that keeps jobs across restarts."""
    misfire_grace_seconds: Annotated[int, Field(ge=0)] = 3600
    """How late, in seconds, a reminder missed while the box was off may still fire."""


class StateSettings(_Model):
    """What the daemon keeps across restarts besides reminders."""

    settings_path: str | None = "~/.local/share/xiangyin/settings.json"
    """JSON file keeping the volume, mute, dialect, wake word and speaking speed changed while running (from
    Home Assistant or by voice); they then win over this file's values at the next start. None keeps nothing."""


class LoggingSettings(_Model):
    """Logs to stdout (journald adds the time)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Least severe level written."""
    format: Literal["text", "json"] = "text"
    """One line of text, or one JSON object, per record."""
    events: bool = True
    """Log every bus event at INFO (a trace of what happened)."""


def _default_skills() -> dict[str, dict[str, Any]]:
    return {"clock": {}}


class Settings(_Model):
    """The whole daemon."""

    audio: AudioSettings = AudioSettings()
    """Microphone and speaker."""
    wake: WakeSettings = WakeSettings()
    """Wake words."""
    endpointing: EndpointSettings = EndpointSettings()
    """End-of-speech detection."""
    conversation: ConversationSettings = ConversationSettings()
    """Turn taking."""
    persona: PersonaSettings = PersonaSettings()
    """Name, dialect and speaking style."""
    model: ModelSettings = ModelSettings()
    """The speech model."""
    voice: VoiceSettings = VoiceSettings()
    """Speech output."""
    skills: dict[str, dict[str, Any]] = Field(default_factory=_default_skills)
    """Enabled skills by name, each with its own settings (validated by the skill)."""
    mqtt: MqttSettings = MqttSettings()
    """MQTT and Home Assistant discovery."""
    home_assistant: HomeAssistantSettings = HomeAssistantSettings()
    """Home Assistant API."""
    wyoming: WyomingSettings = WyomingSettings()
    """Wyoming server."""
    scheduler: SchedulerSettings = SchedulerSettings()
    """Timers and reminders."""
    state: StateSettings = StateSettings()
    """Settings changed while running, kept across restarts."""
    logging: LoggingSettings = LoggingSettings()
    """Logging."""

    @model_validator(mode="after")
    def _follow_up_can_hear(self) -> Settings:
        follow_up = self.conversation.follow_up_seconds
        if 0 < follow_up <= self.endpointing.start_seconds:
            raise ValueError(
                f"conversation.follow_up_seconds ({follow_up}) must be 0 (off) or longer than "
                f"endpointing.start_seconds ({self.endpointing.start_seconds})"
            )
        return self


# --- loading ------------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FILE_SUFFIX = "_file"
_MAX_DEPTH = 32
MAX_CONFIG_BYTES = 1024 * 1024
"""Largest config file read, in bytes: a real one is a few KiB."""
"""Deepest nesting of mappings and lists accepted; the settings tree itself is five levels deep."""
_MAX_NODES = 100_000
"""Most values in one file once aliases are expanded (a "billion laughs" file would expand forever)."""


class _Resolver:
    """Expands ${ENV} references and <key>_file entries, naming the dotted key on failure.

    What came from a file, or from a variable or key named like a secret, is added to ``secrets``, so no
    error message quotes it.
    """

    def __init__(self, source: Path, env: dict[str, str]) -> None:
        self._source = source
        self._env = env
        self._nodes = 0
        self.secrets: list[str] = []

    def resolve(self, node: Any, path: str, depth: int = 0) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            raise ConfigError(f"{self._source}: more than {_MAX_NODES} values (aliases expanded); is it a config file?")
        if depth > _MAX_DEPTH:
            raise ConfigError(f"{self._source}: {path}: nested more than {_MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                key = str(key)
                dotted = f"{path}.{_shown(key)}" if path else _shown(key)
                target = key.removesuffix(_FILE_SUFFIX)
                if key.endswith(_FILE_SUFFIX) and target and key != "ca_file" and isinstance(value, str):
                    if target in node:
                        raise ConfigError(f"{self._source}: {dotted}: give either {target} or {key}, not both")
                    out[target] = self._secret(self.resolve(value, dotted, depth + 1), dotted)
                    self.secrets.append(out[target])
                else:
                    out[key] = self.resolve(value, dotted, depth + 1)
            return out
        if isinstance(node, list):
            return [self.resolve(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node)]
        if isinstance(node, str):

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in self._env:
                    raise ConfigError(f"{self._source}: {path}: environment variable {name} is not set")
                if is_secret_name(name) or is_secret_name(path.rpartition(".")[2]):
                    self.secrets.append(self._env[name])
                return self._env[name]

            text = _ENV_REF.sub(substitute, node)
            self.secrets.extend(url_secrets(text))
            return text
        return node

    def _secret(self, value: str, dotted: str) -> str:
        where = f"{self._source}: {dotted}"
        if not value or "\x00" in value:
            raise ConfigError(f"{where}: {value!r} is not a file path")
        secret_path = Path(os.path.expanduser(value))
        try:
            return secret_path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"{where}: cannot read {_shown(secret_path)}: {err.strerror}") from err
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: {_shown(secret_path)} is not UTF-8 text") from None


def _describe(err: Any, source: Path) -> str:
    loc = _dotted(err["loc"])
    if err["type"] == "extra_forbidden":
        message = "unknown key"
        parent_loc, name = err["loc"][:-1], str(err["loc"][-1])
        known = _known_keys(parent_loc)
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif known:
            message += f" (expected one of: {', '.join(sorted(known))})"
    else:
        message = err["msg"]
    return f"{source}: {loc}: {message}" if loc else f"{source}: {message}"


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith("function-"):
            text += f".{_shown(part)}" if text else _shown(part)
    return text


def _shown(key: object) -> str:
    """A key as written in messages: quoted when it is empty or holds spaces or control characters."""
    text = str(key)
    return text if text.isprintable() and text and not any(c.isspace() for c in text) else repr(text)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Settings
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def parse_config(data: Any, source: Path, env: dict[str, str] | None = None) -> Settings:
    """Validate an already-parsed YAML document."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    resolver = _Resolver(source, dict(os.environ) if env is None else env)
    resolved = resolver.resolve(data, "")
    secrets = resolver.secrets
    try:
        return Settings.model_validate(resolved)
    except ValidationError as err:
        errors = err.errors()
        # A bad item also makes pydantic call its tuple too short; the item's own error is the useful one.
        deeper = {tuple(e["loc"][:-2]) for e in errors if len(e["loc"]) > 2}
        kept = [e for e in errors if not (e["type"] == "too_short" and tuple(e["loc"]) in deeper)]
        # A validator may quote the value, and a secret put in the wrong place would be printed.
        raise ConfigError(Redactor(secrets)("\n".join(_describe(e, source) for e in kept))) from None


def load_config(path: Path, env: dict[str, str] | None = None) -> Settings:
    """Read, expand and validate a config file; raise ConfigError naming file and key."""
    raw = _read_bounded(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (line {line}, byte {err.start}); save it as UTF-8") from None
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_nodes(node, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    except ValueError as err:  # an integer of more digits than Python converts
        raise ConfigError(f"{path}: a value cannot be read: {err}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return parse_config(data, path, env)


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, refusing what is not a regular file (a FIFO would hang, /dev/zero never ends) or too big."""
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer. The type is checked on the opened file,
        # so a path swapped after a stat cannot slip past.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from err
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ConfigError(f"{path}: not a regular file; give the path of a YAML config file")
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from err
    finally:
        os.close(descriptor)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB; is this the config file?")
    return raw


def _check_nodes(root: yaml.Node, source: Path) -> None:
    """Refuse what YAML allows but a config file never means: a key given twice, a value that contains itself."""
    visited: set[int] = set()

    def walk(node: yaml.Node, path: str, ancestors: tuple[int, ...]) -> None:
        if id(node) in ancestors:
            raise ConfigError(f"{source}: {path or 'the top level'}: an alias refers to the value that contains it")
        if len(ancestors) > _MAX_DEPTH:
            raise ConfigError(f"{source}: {path}: nested more than {_MAX_DEPTH} levels deep")
        if id(node) in visited:
            return
        visited.add(id(node))
        inside = (*ancestors, id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    walk(value_node, path, inside)
                    continue
                key = str(key_node.value)
                dotted = f"{path}.{_shown(key)}" if path else _shown(key)
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise ConfigError(f"{source}: {dotted}: given twice, on lines {lines[key]} and {line}")
                lines[key] = line
                walk(value_node, dotted, inside)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]", inside)

    walk(root, "", ())
