"""Wake-word detection with openWakeWord (pyopen-wakeword) or microWakeWord (pymicro-wakeword).

Both packages bundle their TFLite runtime and models, so nothing is downloaded. One engine runs the shared
feature front end once per chunk and every configured word on top of it; :class:`WakeWordDetector` applies
each word's threshold and refractory period and reports the best word that fired.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..audio import MIC_RATE_HZ, AudioChunk, AudioFormatError
from ..config import WakeWordModel
from ..errors import ConfigError
from ..ports import WakeHit

if TYPE_CHECKING:
    from .enrolment import EnrolledWord

_LOGGER = logging.getLogger(__name__)

OPENWAKEWORD_BUILTIN = ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "okay_nabu")
"""Models shipped inside the pyopen-wakeword wheel."""
MICROWAKEWORD_BUILTIN = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")
"""Models shipped inside the pymicro-wakeword wheel."""
OPENWAKEWORD_DEFAULT_THRESHOLD = 0.5
"""openWakeWord's own default score threshold."""


class WakeEngine(Protocol):
    """A feature front end plus one classifier per word, scoring raw 16 kHz PCM."""

    names: tuple[str, ...]
    """One name per word, in configuration order."""
    default_thresholds: tuple[float, ...]
    """The model's own threshold for each word."""

    def scores(self, pcm: bytes) -> list[float]:
        """Feed audio; return each word's highest score (0.0 to 1.0) over it."""
        ...

    def reset(self) -> None:
        """Forget what the word classifiers heard (the cheap part; the front end keeps streaming)."""
        ...


@dataclass(frozen=True, slots=True)
class WordRule:
    """When one word counts as heard."""

    name: str
    """Model name reported in the hit."""
    threshold: float
    """Score (0.0 to 1.0) at or above which the word fires."""
    refractory_seconds: float
    """Seconds after a hit during which this word is ignored."""


class WakeWordDetector:
    """The :class:`~assistant.ports.WakeDetector` over an engine: thresholds, refractory periods, best hit.

    ``now`` measures the refractory periods; by default the seconds of audio fed, which keeps results
    reproducible for files and benchmarks. The daemon passes ``time.monotonic`` so that the periods
    stay true while turns take the microphone away.
    """

    def __init__(
        self, engine: WakeEngine, rules: Sequence[WordRule], *, now: Callable[[], float] | None = None
    ) -> None:
        if len(rules) != len(engine.names):
            raise ValueError("one rule per engine word is needed")
        self._engine = engine
        self._rules = tuple(rules)
        self._audio_seconds = 0.0
        self._now = now or (lambda: self._audio_seconds)
        self._blocked_until = [float("-inf")] * len(self._rules)
        self.last_scores: tuple[float, ...] = (0.0,) * len(self._rules)
        """Each word's score on the last chunk, for diagnostics and benchmarks."""

    @property
    def rules(self) -> tuple[WordRule, ...]:
        """The words listened for."""
        return self._rules

    def process(self, chunk: AudioChunk) -> WakeHit | None:
        """Feed one chunk; return the highest-scoring word that fired in it, if any."""
        if chunk.rate_hz != MIC_RATE_HZ:
            raise AudioFormatError(f"wake-word models need {MIC_RATE_HZ} Hz audio, got {chunk.rate_hz} Hz")
        scores = self._engine.scores(chunk.pcm)
        self._audio_seconds += chunk.seconds
        self.last_scores = tuple(scores)
        now = self._now()
        best: int | None = None
        for i, (rule, score) in enumerate(zip(self._rules, scores, strict=True)):
            if score >= rule.threshold and now >= self._blocked_until[i] and (best is None or score > scores[best]):
                best = i
        if best is None:
            return None
        rule = self._rules[best]
        self._blocked_until[best] = now + rule.refractory_seconds
        return WakeHit(rule.name, min(1.0, float(scores[best])))

    def release(self, name: str) -> None:
        """Lift the refractory block of a word whose hit was discarded (e.g. judged to be echo)."""
        for i, rule in enumerate(self._rules):
            if rule.name == name:
                self._blocked_until[i] = float("-inf")

    def reset(self) -> None:
        """Forget the audio the classifiers heard (after a hit, or when re-armed)."""
        self._engine.reset()


def rules_for(engine: WakeEngine, words: Sequence[WakeWordModel]) -> list[WordRule]:
    """Combine configured words with the engine's default thresholds."""
    return [
        WordRule(name, word.threshold if word.threshold is not None else default, word.refractory_seconds)
        for name, default, word in zip(engine.names, engine.default_thresholds, words, strict=True)
    ]


def _model_file(spec: str, suffixes: tuple[str, ...], builtin: tuple[str, ...], engine: str) -> Path:
    path = Path(spec).expanduser()
    if path.suffix.lower() not in suffixes:
        raise ConfigError(
            f"wake word {spec!r}: not a bundled {engine} model ({', '.join(builtin)}) "
            f"nor a {' or '.join(suffixes)} file"
        )
    if not path.is_file():
        raise ConfigError(f"wake word model file {path} does not exist")
    return path


# --- openWakeWord -------------------------------------------------------------------------------


class _Classifier(Protocol):
    """One word's classifier over openWakeWord embeddings (96 values each)."""

    def process(self, embedding: Any) -> float | None:
        """Add one embedding; return a probability once the classifier has a full window."""
        ...

    def reset(self) -> None:
        """Forget the embeddings heard."""
        ...


class _OnnxClassifier:
    """An openWakeWord classifier exported to ONNX, run on the shared embeddings with onnxruntime."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError as err:
            raise ConfigError(
                f"wake word model {path}: .onnx models need onnxruntime (pip install onnxruntime)"
            ) from err
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session: Any = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors for bad files
            raise ConfigError(f"wake word model {path}: cannot load ({err})") from err
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        windows = model_input.shape[1]
        self._windows = windows if isinstance(windows, int) else 16
        self._embeddings: collections.deque[Any] = collections.deque(maxlen=self._windows)

    def process(self, embedding: Any) -> float | None:
        import numpy as np

        self._embeddings.append(embedding)
        if len(self._embeddings) < self._windows:
            return None
        window = np.stack(self._embeddings)[np.newaxis].astype(np.float32)
        output = self._session.run(None, {self._input_name: window})[0]
        return float(np.asarray(output).reshape(-1)[0])

    def reset(self) -> None:
        self._embeddings.clear()


class _PyopenFeatures:
    """pyopen-wakeword's own front end (default TFLite options: multi-threaded, no XNNPACK)."""

    def __init__(self) -> None:
        from pyopen_wakeword import OpenWakeWordFeatures

        self._features: Any = OpenWakeWordFeatures.from_builtin()

    def process(self, pcm: bytes) -> list[Any]:
        return [row for block in self._features.process_streaming(pcm) for row in block.reshape(-1, 96)]


class _PyopenClassifier:
    """pyopen-wakeword's own classifier for one word."""

    def __init__(self, path: Path) -> None:
        from pyopen_wakeword import OpenWakeWord

        self._word: Any = OpenWakeWord.from_model(path)

    def process(self, embedding: Any) -> float | None:
        probabilities = list(self._word.process_streaming(embedding.reshape(1, 1, 1, -1)))
        return float(probabilities[-1]) if probabilities else None

    def reset(self) -> None:
        self._word.reset()


class _EnrolledClassifier:
    """An enrolled word: template matching on the shared embeddings (see :mod:`.enrolled`), and its check.

    Where the word has a contour check (:mod:`.contours`), it hears each chunk before the chunk's embeddings
    are scored.
    """

    def __init__(self, word: EnrolledWord) -> None:
        from .contours import CheckGate
        from .enrolled import make_matcher

        self._matcher = make_matcher(word.matcher, word.templates, center=word.center)
        self._name = word.name
        self._gate = None if word.check is None else CheckGate(word.check, word.threshold, self._rejected)

    def _rejected(self, distances: tuple[float | None, float | None]) -> None:
        pitch, tilt = (f"{d:.2f}" if d is not None else "not judged" for d in distances)
        message = "%s: not woken, its tune or sound differs from the takes' (pitch %s, tilt %s)"
        _LOGGER.info(message, self._name, pitch, tilt)

    def hear(self, pcm: bytes) -> None:
        if self._gate is not None:
            self._gate.hear(pcm)

    def process(self, embedding: Any) -> float | None:
        score = self._matcher.push(embedding)
        return score if self._gate is None else self._gate.judge(score)

    def reset(self) -> None:
        self._matcher.reset()
        if self._gate is not None:
            self._gate.reset()


def _load_classifier(path: Path, library: Any) -> _Classifier:
    """A word's classifier: ONNX by onnxruntime, else TFLite by the lean runner's library or pyopen-wakeword."""
    if path.suffix.lower() == ".onnx":
        return _OnnxClassifier(path)
    if library is None:
        return _PyopenClassifier(path)
    from .oww import WordClassifier
    from .tflite import TfLiteError

    try:
        return WordClassifier(library, path)
    except (TfLiteError, ValueError) as err:
        raise ConfigError(f"wake word model {path}: {err}") from err


def open_front_end() -> Any:
    """The lean mel + embedding front end on pyopen-wakeword's bundled models (a :class:`.oww.MelEmbeddingFrontEnd`)."""
    from .oww import MelEmbeddingFrontEnd
    from .tflite import TfLiteError, load_library

    package = pyopen_wakeword_dir()
    found = next((package / "lib").glob("*tensorflowlite_c.*"), None)
    try:
        if found is None:
            raise TfLiteError(f"no libtensorflowlite_c in {package / 'lib'}")
        return MelEmbeddingFrontEnd(load_library(found), package / "models")
    except TfLiteError as err:
        raise ConfigError(f"openWakeWord front end: {err}") from err


def pyopen_wakeword_dir() -> Path:
    """The installed pyopen-wakeword package, whose library and models both runners use."""
    import pyopen_wakeword

    return Path(pyopen_wakeword.__file__).parent


class OpenWakeWordEngine:
    """openWakeWord: a mel + embedding front end and a tiny classifier per word, on the bundled models.

    ``runner="lean"`` runs them through :mod:`.oww` (one thread, XNNPACK: about 50 CPU s per audio hour);
    ``"pyopen"`` through pyopen-wakeword's own interpreters (multi-threaded: 5-6 times that), kept for
    comparison. Both cut the stream alike and score the same to within 1e-5.
    """

    def __init__(self, models: Sequence[str | EnrolledWord], *, runner: str = "lean") -> None:
        package = pyopen_wakeword_dir()
        paths: list[Path | EnrolledWord] = []
        names: list[str] = []
        thresholds: list[float] = []
        for spec in models:
            if not isinstance(spec, str):
                paths.append(spec)
                names.append(spec.name)
                thresholds.append(spec.threshold)
                continue
            if spec in OPENWAKEWORD_BUILTIN:
                paths.append(package / "models" / f"{spec}.tflite")
                names.append(spec)
            else:
                path = _model_file(spec, (".tflite", ".onnx"), OPENWAKEWORD_BUILTIN, "openWakeWord")
                paths.append(path)
                names.append(path.stem)
            thresholds.append(OPENWAKEWORD_DEFAULT_THRESHOLD)
        if runner not in ("lean", "pyopen"):
            raise ConfigError(f"unknown openWakeWord runner {runner!r}")
        library: Any = None
        if runner == "lean":
            from .oww import MelEmbeddingFrontEnd
            from .tflite import TfLiteError, load_library

            found = next((package / "lib").glob("*tensorflowlite_c.*"), None)
            try:
                if found is None:
                    raise TfLiteError(f"no libtensorflowlite_c in {package / 'lib'}")
                library = load_library(found)
                self._features: Any = MelEmbeddingFrontEnd(library, package / "models")
            except TfLiteError as err:
                raise ConfigError(f"openWakeWord (lean runner): {err}; runner: pyopen may still work") from err
        else:
            self._features = _PyopenFeatures()
        self._words = [
            _load_classifier(path, library) if isinstance(path, Path) else _EnrolledClassifier(path) for path in paths
        ]
        self._enrolled = [word for word in self._words if isinstance(word, _EnrolledClassifier)]
        self.names = tuple(names)
        self.default_thresholds = tuple(thresholds)

    def scores(self, pcm: bytes) -> list[float]:
        """Return each word's highest probability over the chunk."""
        best = [0.0] * len(self._words)
        for enrolled in self._enrolled:
            enrolled.hear(pcm)
        for embedding in self._features.process(pcm):
            for i, word in enumerate(self._words):
                probability = word.process(embedding)
                if probability is not None and probability > best[i]:
                    best[i] = probability
        return best

    def reset(self) -> None:
        """Reset the classifiers only: the front end keeps streaming (its context is the room's)."""
        for word in self._words:
            word.reset()


# --- microWakeWord ------------------------------------------------------------------------------


class MicroWakeWordEngine:
    """microWakeWord: streaming models on a 10 ms micro front end (well under 1 % of a core)."""

    def __init__(self, models: Sequence[str]) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self._features: Any = MicroWakeWordFeatures()
        self._words: list[Any] = []
        for spec in models:
            if spec in MICROWAKEWORD_BUILTIN:
                self._words.append(MicroWakeWord.from_builtin(Model(spec)))
                continue
            path = _model_file(spec, (".json", ".tflite"), MICROWAKEWORD_BUILTIN, "microWakeWord")
            if path.suffix.lower() == ".tflite":
                path = path.with_suffix(".json")
                if not path.is_file():
                    raise ConfigError(f"microWakeWord model {spec}: its manifest {path} is missing")
            try:
                self._words.append(MicroWakeWord.from_config(path))
            except (KeyError, ValueError) as err:
                raise ConfigError(f"microWakeWord manifest {path} is not valid: {err}") from err
        self.names = tuple(str(word.id) for word in self._words)
        self.default_thresholds = tuple(float(word.probability_cutoff) for word in self._words)

    def scores(self, pcm: bytes) -> list[float]:
        """Return each word's highest sliding-window mean probability over the chunk."""
        best = [0.0] * len(self._words)
        for features in self._features.process_streaming(pcm):
            for i, word in enumerate(self._words):
                probability = word.process_streaming_prob(features)
                if probability is not None:
                    best[i] = max(best[i], float(probability))
        return best

    def reset(self) -> None:
        """Reload each streaming model (that is how microWakeWord clears its internal state)."""
        for word in self._words:
            word.reset()


def build_engine(
    engine: str,
    models: Sequence[str | EnrolledWord],
    *,
    runner: str = "lean",
    options: Mapping[str, Any] | None = None,
) -> WakeEngine:
    """Load ``models`` into the named engine: openwakeword (run by ``runner``), microwakeword, or a plugin.

    A plugin is an installed ``xiangyin.wake_engines`` entry point, given ``options``. Enrolled words match
    openWakeWord's embeddings, so they need that engine.
    """
    started = time.perf_counter()
    if engine == "openwakeword":
        loaded: WakeEngine = OpenWakeWordEngine(models, runner=runner)
    elif engine == "microwakeword":
        enrolled = [spec.name for spec in models if not isinstance(spec, str)]
        if enrolled:
            raise ConfigError(f"enrolled wake word {enrolled[0]!r} needs wake.engine: openwakeword")
        loaded = MicroWakeWordEngine([spec for spec in models if isinstance(spec, str)])
    else:
        from ..plugins import WAKE_ENGINES, build

        enrolled = [spec.name for spec in models if not isinstance(spec, str)]
        if enrolled:
            raise ConfigError(f"enrolled wake word {enrolled[0]!r} needs wake.engine: openwakeword")
        words = [spec for spec in models if isinstance(spec, str)]
        loaded = build(WAKE_ENGINES, engine, words, key="wake.engine", options=options or {})
    _LOGGER.info("loaded %s %s in %.2f s", engine, ", ".join(loaded.names), time.perf_counter() - started)
    return loaded
