"""Step-Audio 2 mini: model code, audio front end, prompts, token parsing, local engine, vLLM client.

The pure parts (:mod:`.tokens`, :mod:`.parser`, :mod:`.prompt`, :mod:`.history`, :mod:`.frontend`) import
no torch, so the vLLM backend can reuse them; torch and transformers load only in :func:`build_local_model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import ModelError

if TYPE_CHECKING:
    from ...config import LocalModelSettings, PersonaSettings
    from .engine import StepAudio2Engine


def build_local_model(settings: LocalModelSettings, persona: PersonaSettings) -> StepAudio2Engine:
    """Load Step-Audio 2 in this process as the settings say; ``ModelError`` when it cannot.

    The engine is a ``SpeechModel``; it also has ``warm_up()`` (await once at start-up) and ``close()``.
    Loading takes seconds to minutes and blocks: call it through ``tasks.in_daemon_thread`` (app.py does),
    which a stopping daemon does not wait for.
    """
    try:
        from . import cpu_decode
        from .engine import GenerationOptions, StepAudio2Engine
        from .loading import load
    except ImportError as err:
        raise ModelError(
            f"the local Step-Audio 2 engine needs torch and transformers ({err.name} is missing): "
            "pip install 'xiangyin[model]'"
        ) from err
    model, tokenizer = load(settings)
    row_products = cpu_decode.swapped(model.model.layers)
    options = GenerationOptions.from_settings(settings, model.device.type, row_products=row_products)
    return StepAudio2Engine(model, tokenizer, persona, options)
