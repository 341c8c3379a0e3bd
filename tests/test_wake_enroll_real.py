"""Enrolling 小乡小乡 from real takes through the CLI, then hearing it (and not its near misses) in clips."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.audio import AudioChunk, read_wav, split
from assistant.cli import EXIT_CONFIG, main
from assistant.config import WakeSettings, WakeWordModel, load_config
from assistant.listen import build_wake_detector, embed_recording, load_enrolled
from assistant.wake_cli import EXIT_REFUSED

DATA = Path(__file__).parent / "data" / "enroll"
WORD = "小乡小乡"
TAKES = [str(DATA / f"enroll_{i}.wav") for i in range(1, 6)]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose enrolled words live in a temporary folder, with 小乡小乡 enrolled from five takes."""
    folder = tmp_path_factory.mktemp("wake")
    path = folder / "config.yaml"
    path.write_text(f"wake:\n  enrolled_dir: {folder / 'words'}\n", encoding="utf-8")
    assert main(["wake", "--config", str(path), "enroll", WORD, *TAKES]) == 0
    return path


def _scores(config: Path, clip: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["wake", "--config", str(config), "test", WORD, "--input", str(DATA / clip)]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.mark.parametrize("clip", ["test_quiet_1.wav", "test_quiet_3.wav"])
def test_the_word_is_heard_in_longer_clips(config: Path, clip: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The enrolled speaker's word, alone or before a request, is detected once."""
    assert f"{WORD}: 1 detections" in _scores(config, clip, capsys)


@pytest.mark.parametrize("clip", ["near_zhang.wav", "near_half.wav", "near_xiangyin.wav"])
def test_near_misses_are_not_heard(config: Path, clip: str, capsys: pytest.CaptureFixture[str]) -> None:
    """小张小张, 小乡 alone and 乡音 stay under the calibrated threshold."""
    assert f"{WORD}: 0 detections" in _scores(config, clip, capsys)


def test_a_tone_change_is_not_heard_though_the_template_match_takes_it(config: Path) -> None:
    """晓翔晓翔 (xiǎo xiáng: the same syllables, the second one rising) passes the template match, which
    barely hears pitch; the word's contour check, made from the takes, rejects it, while the word still fires."""
    from assistant.listen.enrolled import make_matcher, peak_score

    settings = load_config(config)
    word = load_enrolled(settings.wake, WORD)
    assert word.check is not None
    embeddings = embed_recording(read_wav(DATA / "near_tone.wav").pcm)
    matcher = make_matcher(word.matcher, word.templates, center=word.center)
    assert peak_score(matcher, embeddings) >= word.threshold

    def detections(clip: str) -> int:
        detector = build_wake_detector(settings.wake, now=lambda: 0.0, words=[WakeWordModel(enrolled=WORD)])
        return sum(
            detector.process(AudioChunk(chunk.pcm, chunk.rate_hz)) is not None
            for chunk in split(read_wav(DATA / clip), 0.08)
        )

    assert detections("near_tone.wav") == 0
    assert detections("test_quiet_1.wav") == 1


def test_wake_test_says_when_the_contour_check_rejects_a_crossing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`wake test` on 晓翔晓翔 says that the word was not woken for its tune or sound, with the distances."""
    capsys.readouterr()
    assert main(["wake", "--config", str(config), "test", WORD, "--input", str(DATA / "near_tone.wav")]) == 0
    out = capsys.readouterr().out
    assert f"{WORD}: not woken, its tune or sound differs from the takes' (pitch " in out
    assert out.strip().splitlines()[-1].startswith(f"{WORD}: 0 detections")


def test_chinese_speech_is_not_heard(config: Path) -> None:
    """The shipped Mandarin and Cantonese reading never fires the word (daemon's detector, from the config)."""
    settings = load_config(config)
    wake = WakeSettings.model_validate(
        {**settings.wake.model_dump(), "words": [{"enrolled": WORD}, {"model": "hey_jarvis"}]}
    )
    detector = build_wake_detector(wake, now=lambda: 0.0)
    negatives = Path(__file__).parents[1] / "assistant" / "listen" / "data" / "negatives"
    for name in ("speech_zh_00.wav", "speech_zh_01.wav"):
        for chunk in split(read_wav(negatives / name), 0.08):
            assert detector.process(AudioChunk(chunk.pcm, chunk.rate_hz)) is None


def test_an_enrolled_word_works_beside_a_bundled_one(config: Path) -> None:
    """One engine carries hey_jarvis and the enrolled word; the enrolled one fires on its clip."""
    settings = load_config(config)
    wake = WakeSettings.model_validate(
        {**settings.wake.model_dump(), "words": [{"model": "hey_jarvis"}, {"enrolled": WORD}]}
    )
    detector = build_wake_detector(wake, now=lambda: 0.0)
    heard = [
        hit.name
        for chunk in split(read_wav(DATA / "test_quiet_3.wav"), 0.08)
        if (hit := detector.process(AudioChunk(chunk.pcm, chunk.rate_hz))) is not None
    ]
    assert heard == [WORD]


def test_list_shows_the_word(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """wake list names each word with its takes and threshold."""
    capsys.readouterr()
    assert main(["wake", "--config", str(config), "list"]) == 0
    assert f"{WORD}  takes: 5  threshold:" in capsys.readouterr().out


def test_an_unknown_enrolled_word_is_a_config_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """wake.words naming a word never enrolled stops start-up with a ConfigError that says how to enrol it."""
    folder = config.parent / "unknown"
    folder.mkdir(exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(f"wake:\n  enrolled_dir: {folder}\n  words:\n    - enrolled: 小张\n", encoding="utf-8")
    assert main(["wake", "--config", str(path), "test", "小张", "--input", str(DATA / "near_half.wav")]) == EXIT_CONFIG
    assert "xiangyin wake enroll 小张" in capsys.readouterr().err


def test_a_word_needs_exactly_one_source() -> None:
    """model and enrolled together, or neither, are refused."""
    with pytest.raises(ValueError, match="exactly one"):
        WakeWordModel(model="alexa", enrolled="x")
    with pytest.raises(ValueError, match="exactly one"):
        WakeWordModel()


def test_enrol_refuses_a_single_take_and_a_bundled_name(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Refusals exit 1 with the reason and change nothing."""
    capsys.readouterr()
    assert main(["wake", "--config", str(config), "enroll", "other", TAKES[0]]) == EXIT_REFUSED
    assert "at least 3 takes" in capsys.readouterr().out
    assert main(["wake", "--config", str(config), "enroll", "alexa", *TAKES[:3]]) == EXIT_REFUSED
    assert "bundled" in capsys.readouterr().out
    assert main(["wake", "--config", str(config), "enroll", "hey_jarvis"]) == EXIT_REFUSED
    assert "bundled" in capsys.readouterr().out


def test_enrol_without_files_records_from_the_microphone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without files, the takes come from the recorder (here a stand-in for the microphone)."""
    from assistant import wake_cli

    async def recorded(_: object) -> list[tuple[str, AudioChunk]]:
        return [(f"take {i}", read_wav(Path(take))) for i, take in enumerate(TAKES[:3], 1)]

    monkeypatch.setattr(wake_cli, "_record", recorded)
    path = tmp_path / "config.yaml"
    path.write_text(f"wake:\n  enrolled_dir: {tmp_path / 'words'}\n", encoding="utf-8")
    assert main(["wake", "--config", str(path), "enroll", "mic"]) == 0
    assert "3 takes added" in capsys.readouterr().out


def test_remove_deletes_the_word(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """wake remove takes a word away; list then shows none."""
    path = tmp_path / "config.yaml"
    path.write_text(f"wake:\n  enrolled_dir: {tmp_path / 'words'}\n", encoding="utf-8")
    assert main(["wake", "--config", str(path), "enroll", "w", *TAKES[:3]]) == 0
    assert main(["wake", "--config", str(path), "remove", "w"]) == 0
    capsys.readouterr()
    assert main(["wake", "--config", str(path), "list"]) == 0
    assert "no enrolled wake words" in capsys.readouterr().out


def test_a_stop_word_may_be_enrolled(config: Path) -> None:
    """wake.stop_words takes an enrolled word too, with the same detector rules."""
    from assistant.listen import build_stop_detector

    settings = load_config(config)
    wake = WakeSettings.model_validate({**settings.wake.model_dump(), "stop_words": [{"enrolled": WORD}]})
    detector = build_stop_detector(wake)
    assert detector is not None
    heard = [
        hit.name
        for chunk in split(read_wav(DATA / "test_quiet_3.wav"), 0.08)
        if (hit := detector.process(AudioChunk(chunk.pcm, chunk.rate_hz))) is not None
    ]
    assert heard == [WORD]


def test_takes_recorded_on_a_phone_enrol_a_word_that_is_heard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """48 kHz stereo 24-bit takes (a phone's recorder) are converted; the word they make is heard at 16 kHz."""
    import numpy as np
    import soundfile
    import soxr

    phone_takes = []
    for take in TAKES[:4]:
        samples = np.frombuffer(read_wav(Path(take)).pcm, dtype="<i2").astype(np.float32) / 32768
        at_48k = soxr.resample(samples, 16_000, 48_000)
        phone_takes.append(str(tmp_path / Path(take).name))
        soundfile.write(phone_takes[-1], np.stack([at_48k, at_48k], axis=1), 48_000, subtype="PCM_24")
    path = tmp_path / "config.yaml"
    path.write_text(f"wake:\n  enrolled_dir: {tmp_path / 'words'}\n", encoding="utf-8")
    assert main(["wake", "--config", str(path), "enroll", "phone", *phone_takes]) == 0
    assert "4 takes added" in capsys.readouterr().out
    assert main(["wake", "--config", str(path), "test", "phone", "--input", str(DATA / "test_quiet_1.wav")]) == 0
    assert "phone: 1 detections" in capsys.readouterr().out.strip().splitlines()[-1]
