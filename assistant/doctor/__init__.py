"""``xiangyin doctor``: check a real install, after the download and whenever asked.

Rows, in order: the GPU; the checkpoint's files against the release (complete, not truncated, the released
layout and size, SHA-256 on request); the precision it would load with and whether it fits; token2wav's
files; both loaded; the self-test conversation (:mod:`.selftest`); the microphone and the room (:mod:`.room`).
On weights that are not the release (the tests' tiny checkpoint) everything still runs, but the verdicts of
the self-test are not held against the install, and the report says its figures mean nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..audio import AudioChunk
from ..config import Settings
from ..recordings import read_recording
from .machine import FLOW_PARAMETERS, HIFT_PARAMETERS, gpu_check, model_files_check, precision_check
from .report import Check, Report, Status
from .room import record, room_check
from .selftest import self_test

if TYPE_CHECKING:
    from ..voice.speech import TokenSpeaker


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    """What a run of the doctor does beyond the defaults."""

    hashes: bool = False
    """Hash every weight file of a Hugging Face download against its blob name (a minute per 10 GB)."""
    mic_seconds: float = 5.0
    """Seconds of microphone to listen to; 0 skips the microphone."""
    mic_wav: Path | None = None
    """A 16 kHz WAV to analyse instead of the microphone."""
    question_wav: Path | None = None
    """A question WAV instead of the shipped one."""


async def examine(settings: Settings, options: DoctorOptions) -> Report:
    """Run every check; nothing here raises for a broken install, it becomes a ``fail`` row."""
    checks = [gpu_check()]
    release = True
    if settings.model.backend != "local":
        # The model is on the vLLM server; token2wav runs here, from voice.token2wav.path.
        token2wav, speaker, release = await _token2wav(settings, None)
        if speaker is not None:
            speaker.close()
        checks += [token2wav, Check("model", "skip", "model.backend is vllm: the doctor checks a local model")]
    else:
        model_checks, release = await _model_checks(settings, options)
        checks += model_checks
    checks.append(await _microphone(settings, options))
    return Report(tuple(checks), release)


async def _model_checks(settings: Settings, options: DoctorOptions) -> tuple[list[Check], bool]:
    local = settings.model.local
    directory = _downloaded(local.path, local.revision)
    if directory is None:
        return [Check("model files", "fail", f"{local.path} is not downloaded; `xiangyin run` fetches it")], False
    files, parameters, release = await asyncio.to_thread(model_files_check, directory, hashes=options.hashes)
    checks = [files, precision_check(local, parameters)]
    if files.status == "fail":
        return checks, False

    token2wav, speaker, t2w_release = await _token2wav(settings, directory)
    checks.append(token2wav)
    release = release and t2w_release

    with contextlib.ExitStack() as stack:
        if speaker is not None:
            stack.callback(speaker.close)
        from ..errors import ModelError
        from ..model.stepaudio2 import build_local_model

        started = time.perf_counter()
        try:
            engine = await asyncio.to_thread(
                build_local_model, local.model_copy(update={"path": str(directory)}), settings.persona
            )
        except ModelError as err:
            checks.append(Check("model", "fail", str(err)))
            return checks, release
        stack.callback(engine.close)
        seconds = time.perf_counter() - started
        checks.append(Check("model", "ok", f"loaded on {engine.device} in {seconds:.1f} s", {"load_seconds": seconds}))

        def decode_rate() -> float | None:
            stats = engine.last_round
            return stats.decode_steps / stats.decode_seconds if stats.decode_seconds > 0 else None

        question = read_recording(options.question_wav) if options.question_wav else None
        rows = await self_test(engine, speaker, settings.persona.dialect, decode_rate=decode_rate, question=question)
    if not release:
        # A random checkpoint says random things: report what it did, never hold it against the install.
        rows = [replace(r, status="warn", detail=f"(not judged) {r.detail}") if r.status == "fail" else r for r in rows]
    return [*checks, *rows], release


async def _token2wav(settings: Settings, directory: Path | None) -> tuple[Check, TokenSpeaker | None, bool]:
    """Load token2wav and prepare the voice: the row, the speaker (close it), and whether it is the release."""
    from ..voice import SpeechError, VoiceUnavailable, build_token_speaker

    started = time.perf_counter()
    try:
        speaker = await asyncio.to_thread(build_token_speaker, settings.voice, directory)
    except VoiceUnavailable as err:
        status: Status = "warn" if settings.voice.mode == "tts" else "fail"
        return Check("token2wav", status, str(err)), None, True
    try:
        await speaker.prepare_async()
    except SpeechError as err:
        speaker.close()
        return Check("token2wav", "warn" if settings.voice.mode == "tts" else "fail", str(err)), None, True
    engine = speaker.engine
    counts = (_parameters(engine.flow), _parameters(engine.hift))
    released = counts == (FLOW_PARAMETERS, HIFT_PARAMETERS)
    seconds = time.perf_counter() - started
    detail = f"loaded on {engine.device} in {seconds:.1f} s; flow {counts[0]:,}, HiFT {counts[1]:,} parameters"
    figures: dict[str, float | int | str | None] = {
        "load_seconds": seconds,
        "flow_parameters": counts[0],
        "hift_parameters": counts[1],
    }
    row = Check(
        "token2wav", "ok" if released else "warn", detail + ("" if released else " (not the released size)"), figures
    )
    return row, speaker, released


def _downloaded(path: str, revision: str | None) -> Path | None:
    """The model directory, from disk or the Hugging Face cache, without downloading anything."""
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not here"; the row says what to do
        return None


def _parameters(module: object) -> int:
    import torch

    assert isinstance(module, torch.nn.Module)
    return sum(p.numel() for p in module.parameters())


async def _microphone(settings: Settings, options: DoctorOptions) -> Check:
    audio: AudioChunk
    if options.mic_wav is not None:
        audio = read_recording(options.mic_wav)
    elif options.mic_seconds <= 0:
        return Check("microphone", "skip", "not asked to listen (--mic-seconds 0)")
    else:
        try:
            audio = await record(settings.audio.input_device, options.mic_seconds)
        except TimeoutError:
            return Check("microphone", "skip", f"no microphone: nothing was heard in {options.mic_seconds + 10:.0f} s")
        except (OSError, ImportError) as err:
            return Check("microphone", "skip", f"no microphone: {err}")
    return room_check(audio, settings.wake, settings.endpointing)


__all__ = ["DoctorOptions", "examine"]
