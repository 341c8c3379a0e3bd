"""Wake-word engines, Silero VAD and the echo guard on real clips (positives, English and Chinese negatives, noise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.audio import AudioChunk, read_wav, split
from assistant.config import EndpointSettings, WakeSettings, WakeWordModel
from assistant.endpointing import Decision
from assistant.errors import ConfigError
from assistant.listen import (
    EchoGuard,
    OutputMonitor,
    build_prosody,
    build_stop_detector,
    build_vad,
    build_wake_detector,
)
from assistant.listen.wakeword import WakeWordDetector, WordRule, build_engine, rules_for
from assistant.listening import UtteranceListener
from assistant.ports import WakeDetector, WakeHit

pytestmark = pytest.mark.models

DATA = Path(__file__).parent / "data" / "listen"
NEGATIVES = [
    "neg_en_pink10dB_10s.wav",
    "neg_zh_cmn_10s.wav",
    "neg_zh_yue_10s.wav",
    "neg_noise_pink_10s.wav",
    "vad_05_cmn-latn-pinyin_silence.wav",
    "vad_07_yue_silence.wav",
]
WORDS = ("alexa", "hey_jarvis", "okay_nabu")


def hits(detector: WakeDetector, name: str) -> list[tuple[float, WakeHit]]:
    found = []
    for i, chunk in enumerate(split(read_wav(DATA / name), 0.08)):
        hit = detector.process(chunk)
        if hit is not None:
            found.append((round((i + 1) * 0.08, 2), hit))
            detector.reset()
    return found


@pytest.fixture(scope="module")
def oww() -> WakeWordDetector:
    engine = build_engine("openwakeword", WORDS)
    return WakeWordDetector(engine, rules_for(engine, [WakeWordModel(model=w) for w in WORDS]))


@pytest.fixture(scope="module")
def micro() -> WakeWordDetector:
    engine = build_engine("microwakeword", WORDS)
    return WakeWordDetector(engine, rules_for(engine, [WakeWordModel(model=w) for w in WORDS]))


@pytest.mark.parametrize(
    ("clip", "word"),
    [
        ("alexa__en-gb__s165__clean.wav", "alexa"),
        ("hey_jarvis__en-us__s165__clean.wav", "hey_jarvis"),
        ("okay_nabu__en-us_m3__s165__clean.wav", "okay_nabu"),
    ],
)
def test_openwakeword_hears_each_word_once_and_only_that_word(oww: WakeWordDetector, clip: str, word: str) -> None:
    found = hits(oww, clip)
    assert [hit.name for _, hit in found] == [word]
    at, hit = found[0]
    assert hit.score >= 0.5
    assert 1.2 < at < 3.0  # the phrase starts 1.0 s into the clip


def fresh_oww(runner: str) -> WakeWordDetector:
    engine = build_engine("openwakeword", WORDS, runner=runner)
    return WakeWordDetector(engine, rules_for(engine, [WakeWordModel(model=w) for w in WORDS]))


ALL_CLIPS = sorted(path.name for path in DATA.glob("*.wav"))


def test_the_lean_runner_scores_every_chunk_as_pyopen_wakeword_does() -> None:
    """Same models, same cut of the stream: one thread and XNNPACK change the scores by float rounding only."""
    lean = build_engine("openwakeword", WORDS)
    reference = build_engine("openwakeword", WORDS, runner="pyopen")
    for clip in ALL_CLIPS:  # one stream, clip after clip
        for chunk in split(read_wav(DATA / clip), 0.08):
            assert lean.scores(chunk.pcm) == pytest.approx(reference.scores(chunk.pcm), abs=1e-4), clip


def test_the_lean_runner_detects_exactly_what_pyopen_wakeword_detects() -> None:
    lean, reference = fresh_oww("lean"), fresh_oww("pyopen")
    fired = 0
    for clip in ALL_CLIPS:
        ours, theirs = hits(lean, clip), hits(reference, clip)
        assert [(at, hit.name) for at, hit in ours] == [(at, hit.name) for at, hit in theirs], clip
        assert [hit.score for _, hit in ours] == pytest.approx([hit.score for _, hit in theirs], abs=1e-4)
        fired += len(ours)
    assert fired >= 3


def test_the_lean_runner_is_the_default_and_runs_one_thread_with_xnnpack() -> None:
    from assistant.listen.tflite import load_library
    from assistant.listen.wakeword import pyopen_wakeword_dir

    library = load_library(next((pyopen_wakeword_dir() / "lib").glob("*tensorflowlite_c.*")))
    assert library.xnnpack, "the bundled TFLite library no longer exports the XNNPACK delegate"
    assert WakeSettings().openwakeword_runner == "lean"


@pytest.mark.parametrize(
    ("clip", "word"),
    [
        ("alexa__en-gb__s165__clean.wav", "alexa"),
        ("alexa__en-gb__s165__pink5.wav", "alexa"),
        ("okay_nabu__en-us_m3__s165__clean.wav", "okay_nabu"),
    ],
)
def test_microwakeword_hears_each_word_at_its_own_cutoff(micro: WakeWordDetector, clip: str, word: str) -> None:
    assert [hit.name for _, hit in hits(micro, clip)] == [word]


def test_microwakeword_uses_the_cutoffs_shipped_with_its_models(micro: WakeWordDetector) -> None:
    assert {rule.name: rule.threshold for rule in micro.rules} == {"alexa": 0.9, "hey_jarvis": 0.97, "okay_nabu": 0.85}


@pytest.mark.parametrize("clip", NEGATIVES)
def test_no_engine_fires_on_speech_in_other_words_languages_or_noise(
    oww: WakeWordDetector, micro: WakeWordDetector, clip: str
) -> None:
    assert hits(oww, clip) == []
    assert hits(micro, clip) == []


def test_a_raised_threshold_rejects_what_the_default_accepts() -> None:
    engine = build_engine("openwakeword", ["okay_nabu"])
    strict = WakeWordDetector(engine, [WordRule("okay_nabu", 0.95, 2.0)])
    assert hits(strict, "okay_nabu__en-us_m3__s165__clean.wav") == []  # it scores about 0.87


def test_refractory_period_suppresses_repeats_until_it_has_passed() -> None:
    class Always:
        names = ("w",)
        default_thresholds = (0.5,)

        def scores(self, pcm: bytes) -> list[float]:
            return [0.9]

        def reset(self) -> None:
            pass

    detector = WakeWordDetector(Always(), [WordRule("w", 0.5, 1.0)])
    chunk = AudioChunk(bytes(2560))
    fired = [detector.process(chunk) is not None for _ in range(30)]  # 2.4 s of audio
    assert [i for i, f in enumerate(fired) if f] == [0, 13, 26]


def test_bundled_models_come_from_the_wheels_not_a_download() -> None:
    detector = build_wake_detector(
        WakeSettings(words=(WakeWordModel(model="hey_rhasspy"), WakeWordModel(model="hey_mycroft", threshold=0.7)))
    )
    assert isinstance(detector, WakeWordDetector)
    assert [(r.name, r.threshold) for r in detector.rules] == [("hey_rhasspy", 0.5), ("hey_mycroft", 0.7)]


def test_a_custom_tflite_model_loads_by_path(tmp_path: Path) -> None:
    import pyopen_wakeword

    source = Path(pyopen_wakeword.__file__).parent / "models" / "alexa.tflite"
    custom = tmp_path / "my_word.tflite"
    custom.write_bytes(source.read_bytes())
    engine = build_engine("openwakeword", [str(custom)])
    detector = WakeWordDetector(engine, rules_for(engine, [WakeWordModel(model=str(custom))]))
    assert [hit.name for _, hit in hits(detector, "alexa__en-gb__s165__clean.wav")] == ["my_word"]


@pytest.mark.parametrize("content", [b"not a model", b""])
def test_a_corrupt_tflite_model_is_a_config_error_that_names_it(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match="broken.tflite"):
        build_engine("openwakeword", [str(bad)])


def test_a_tflite_model_that_is_not_a_word_classifier_is_a_config_error() -> None:
    from assistant.listen.wakeword import pyopen_wakeword_dir

    embedding = pyopen_wakeword_dir() / "models" / "embedding_model.tflite"
    with pytest.raises(ConfigError, match="expected an input of"):
        build_engine("openwakeword", [str(embedding)])


@pytest.mark.parametrize("given", ["my_word.json", "my_word.tflite"])
def test_a_custom_microwakeword_model_loads_by_its_manifest_or_model_path(tmp_path: Path, given: str) -> None:
    import pymicro_wakeword

    models = Path(pymicro_wakeword.__file__).parent / "models"
    manifest = (models / "alexa.json").read_text().replace('"alexa.tflite"', '"my_word.tflite"')
    (tmp_path / "my_word.json").write_text(manifest)
    (tmp_path / "my_word.tflite").write_bytes((models / "alexa.tflite").read_bytes())
    engine = build_engine("microwakeword", [str(tmp_path / given)])
    detector = WakeWordDetector(engine, rules_for(engine, [WakeWordModel(model=str(tmp_path / given))]))
    assert [(r.name, r.threshold) for r in detector.rules] == [("my_word", 0.9)]
    assert [hit.name for _, hit in hits(detector, "alexa__en-gb__s165__clean.wav")] == ["my_word"]


def test_a_custom_onnx_model_runs_on_the_shared_embeddings() -> None:
    """The ONNX path windows 16 embeddings like openWakeWord's TFLite classifiers (checked against numpy)."""
    pytest.importorskip("onnxruntime")
    import numpy as np
    from pyopen_wakeword import OpenWakeWordFeatures

    model = DATA / "tiny_classifier.onnx"
    engine = build_engine("openwakeword", [str(model)])
    assert engine.names == ("tiny_classifier",)
    rng = np.random.default_rng(0)  # the weights make_tiny_classifier.py wrote
    weights = (rng.standard_normal((16 * 96, 1)) * 0.05).astype(np.float32)
    features = OpenWakeWordFeatures.from_builtin()
    window: list[np.ndarray] = []
    for chunk in split(read_wav(DATA / "alexa__en-gb__s165__clean.wav"), 0.08):
        expected = 0.0
        for embedding in features.process_streaming(chunk.pcm):
            for row in embedding[0, 0]:
                window = [*window, row][-16:]
                if len(window) == 16:
                    logit = float(np.concatenate(window) @ weights[:, 0]) - 1.0
                    expected = max(expected, 1 / (1 + np.exp(-logit)))
        assert engine.scores(chunk.pcm) == pytest.approx([expected], abs=1e-5)


@pytest.mark.parametrize(
    ("engine", "model", "message"),
    [
        ("openwakeword", "hey_computer", "not a bundled openWakeWord model"),
        ("openwakeword", "/nowhere/word.tflite", "does not exist"),
        ("microwakeword", "hey_rhasspy", "not a bundled microWakeWord model"),
    ],
)
def test_unknown_models_are_config_errors_that_say_why(engine: str, model: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_engine(engine, [model])


def test_stop_detector_exists_only_when_stop_words_are_configured() -> None:
    assert build_stop_detector(WakeSettings()) is None
    stop = build_stop_detector(WakeSettings(engine="microwakeword", stop_words=(WakeWordModel(model="alexa"),)))
    assert stop is not None
    assert [hit.name for _, hit in hits(stop, "alexa__en-gb__s165__clean.wav")] == ["alexa"]


# --- echo ---------------------------------------------------------------------------------------


class Scripted:
    def __init__(self, score: float) -> None:
        self.score = score

    def process(self, chunk: AudioChunk) -> WakeHit | None:
        return WakeHit("w", self.score)

    def reset(self) -> None:
        pass


def test_echo_guard_rejects_weak_hits_while_the_speaker_is_audible_and_for_its_tail() -> None:
    now = [0.0]
    monitor = OutputMonitor(lambda: now[0])
    guard = EchoGuard(Scripted(0.7), monitor, threshold=0.9, tail_seconds=0.5)
    chunk = AudioChunk(bytes(2560))
    assert guard.process(chunk) is not None  # silent speaker: normal threshold
    monitor.note(0.2, 0.02)
    assert guard.process(chunk) is None
    now[0] = 0.4
    assert guard.process(chunk) is None
    now[0] = 0.6
    assert guard.process(chunk) is not None
    assert guard.rejected == 2


def test_echo_guard_lets_strong_hits_through_for_barge_in() -> None:
    monitor = OutputMonitor()
    monitor.note(0.2, 1.0)
    assert EchoGuard(Scripted(0.95), monitor, threshold=0.9, tail_seconds=0.5).process(AudioChunk(bytes(2560)))


def test_silent_output_does_not_arm_the_echo_guard() -> None:
    monitor = OutputMonitor()
    monitor.note(0.0, 1.0)
    assert not monitor.audible_within(10.0)


def test_the_assistant_does_not_wake_itself_on_its_own_voice_saying_the_wake_word() -> None:
    """A reply that contains "alexa", heard back through the mic while it plays, does not start a turn."""
    monitor = OutputMonitor()
    guarded = build_wake_detector(
        WakeSettings(words=(WakeWordModel(model="alexa"),), echo_threshold=1.0), monitor=monitor
    )
    plain = build_wake_detector(WakeSettings(words=(WakeWordModel(model="alexa"),), echo_threshold=0.0))
    monitor.note(0.3, 60.0)  # the speaker is playing the clip
    assert hits(guarded, "alexa__en-gb__s165__clean.wav") == []
    assert [h.name for _, h in hits(plain, "alexa__en-gb__s165__clean.wav")] == ["alexa"]


# --- VAD and endpointing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clip", "end"),
    [
        ("vad_00_en-us_silence.wav", 2.18),
        ("vad_00_en-us_pink_snr10.wav", 2.18),
        ("vad_05_cmn-latn-pinyin_silence.wav", 2.59),
        ("vad_07_yue_silence.wav", 1.93),
    ],
)
def test_silero_and_the_endpointer_end_the_utterance_soon_after_it_ends(clip: str, end: float) -> None:
    settings = EndpointSettings()
    listener = UtteranceListener(settings, build_vad(), prosody=build_prosody())
    decisions = [(i, listener.hear(c)) for i, c in enumerate(split(read_wav(DATA / clip), 0.08))]
    started = next(i for i, d in decisions if d is Decision.STARTED)
    ended = next(i for i, d in decisions if d is Decision.ENDED)
    assert 0.4 <= started * 0.08 <= 0.8
    # The short wait after a phrase that sounds finished, the longer one after one that does not, plus
    # Silero's tail and the chunking.
    wait = settings.end_silence_seconds if listener.endpointer.sounded_finished else settings.hold_silence_seconds
    assert wait <= (ended + 1) * 0.08 - end <= wait + 0.25


def test_silero_gives_silence_and_noise_low_probability_and_speech_high() -> None:
    vad = build_vad()
    noise = [vad.probability(c) for c in split(read_wav(DATA / "neg_noise_pink_10s.wav"), 0.08)]
    vad.reset()
    speech = [vad.probability(c) for c in split(read_wav(DATA / "vad_05_cmn-latn-pinyin_silence.wav"), 0.08)]
    assert max(noise) < 0.5
    assert sum(p >= 0.5 for p in speech) >= 15


def test_silero_accepts_chunks_that_are_not_multiples_of_its_frame() -> None:
    vad = build_vad()
    audio = read_wav(DATA / "vad_00_en-us_silence.wav")
    probabilities = [vad.probability(c) for c in split(audio, 0.01)]  # 160 samples, a third of a frame
    assert max(probabilities) > 0.9
    assert probabilities[0] == 0.0


# --- echo cancellation --------------------------------------------------------------------------


def level_db(pcm: bytes, start: float, end: float) -> float:
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)[int(start * 16_000) : int(end * 16_000)]
    return float(10 * np.log10(np.mean(samples**2) + 1e-9))


def test_webrtc_echo_canceller_removes_the_reply_and_keeps_the_user() -> None:
    """The mic hears the reply through a 40 ms echo path, then the user says "stop, stop the music" from 2.5 s."""
    from hardware.aec import EchoCanceller

    far, mic = read_wav(DATA / "aec_far.wav"), read_wav(DATA / "aec_mic.wav")
    canceller = EchoCanceller()
    out = []
    for played, heard in zip(split(far, 0.08), split(mic, 0.08), strict=True):
        canceller.reference(played.pcm, played.rate_hz)
        cleaned = canceller.process(heard)
        assert len(cleaned.pcm) == len(heard.pcm)
        out.append(cleaned.pcm)
    cleaned_pcm = b"".join(out)
    erle = level_db(mic.pcm, 0.5, 2.4) - level_db(cleaned_pcm, 0.5, 2.4)
    assert erle > 20, f"echo only {erle:.1f} dB quieter"
    assert level_db(cleaned_pcm, 2.5, 4.0) - level_db(cleaned_pcm, 0.5, 2.4) > 20, "the user's words were lost"


def test_echo_canceller_takes_reference_at_the_speaker_rate() -> None:
    from hardware.aec import EchoCanceller

    canceller = EchoCanceller()
    canceller.reference(bytes(24_000 * 2 // 10), 24_000)  # 100 ms at 24 kHz
    assert len(canceller.process(AudioChunk(bytes(2560))).pcm) == 2560


class _RisingScores:
    """A wake-word engine whose scores follow a script, as openWakeWord's rise over a spoken word."""

    names = ("hey_jarvis",)
    default_thresholds = (0.5,)

    def __init__(self, scores: list[float]) -> None:
        self._scores = scores

    def scores(self, pcm: bytes) -> list[float]:
        return [self._scores.pop(0)]

    def reset(self) -> None:
        pass


def test_a_wake_word_said_over_the_reply_still_interrupts_after_a_weak_echo_like_start() -> None:
    from assistant.listen.echo import EchoGuard, OutputMonitor
    from assistant.listen.wakeword import WakeWordDetector, WordRule

    now = [100.0]
    monitor = OutputMonitor(now=lambda: now[0])
    monitor.note(0.3, 10.0)  # the assistant speaks for the next 10 s
    detector = WakeWordDetector(
        _RisingScores([0.6, 0.95, 0.97]),  # type: ignore[arg-type]
        [WordRule("hey_jarvis", 0.5, 2.0)],
        now=lambda: now[0],
    )
    guard = EchoGuard(detector, monitor, threshold=0.9, tail_seconds=0.5)
    hits = []
    for _ in range(3):
        hits.append(guard.process(AudioChunk(bytes(2560))))
        now[0] += 0.08
    assert hits[0] is None, "the weak start is treated as echo"
    assert hits[1] is not None and hits[1].score == 0.95, "the strong hit a chunk later wakes the assistant"
