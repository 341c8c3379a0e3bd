"""Command line: ``xiangyin run | check | devices | doctor | wake …``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .audio import AudioFormatError
from .config import Settings, load_config
from .errors import ConfigError
from .instance import AlreadyRunning, single_instance

_LOGGER = logging.getLogger(__name__)

EXIT_CONFIG = 2
"""Exit status for a missing or invalid configuration (systemd does not restart on it)."""


def default_config_path() -> Path:
    """$XIANGYIN_CONFIG, else ./config.yaml, else /etc/xiangyin/config.yaml."""
    if env := os.environ.get("XIANGYIN_CONFIG"):
        return Path(env)
    local = Path("config.yaml")
    return local if local.exists() else Path("/etc/xiangyin/config.yaml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xiangyin", description="乡音 Xiangyin home voice assistant")
    parser.add_argument("--version", action="version", version=f"xiangyin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--config", type=Path, default=None, help="config file (default: %(default)s)")
        return sub

    run = with_config(commands.add_parser("run", help="run the assistant"))
    run.add_argument("--input", type=Path, help="read the microphone from this WAV file instead")
    run.add_argument("--output", type=Path, help="write what the speaker plays to this WAV file instead")
    with_config(commands.add_parser("check", help="validate the config file and exit"))
    commands.add_parser("devices", help="list audio input and output devices")
    doctor = with_config(commands.add_parser("doctor", help="check this install: GPU, weights, a self-test, the room"))
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument("--hashes", action="store_true", help="also hash the downloaded weights (slow)")
    doctor.add_argument("--mic-seconds", type=float, default=5.0, help="seconds to listen to the room (0: skip)")
    doctor.add_argument("--mic-wav", type=Path, help="analyse this recording (any rate) instead of the microphone")
    doctor.add_argument("--question", type=Path, help="a question WAV instead of the shipped one")
    from .wake_cli import add_parsers

    add_parsers(commands, None)
    return parser


def data_directory(settings: Settings) -> Path:
    """The directory of the reminder store: what two daemons must never share."""
    return Path(settings.scheduler.database).expanduser().parent


def _load(path: Path | None) -> Settings:
    return load_config(path or default_config_path())


def _check(args: argparse.Namespace) -> int:
    from .preflight import check_resources
    from .skills import check_skills

    path = args.config or default_config_path()
    settings = load_config(path)
    problems = check_skills(settings.skills) + check_resources(settings)
    if problems:
        raise ConfigError("\n".join(f"{path}: {problem}" for problem in problems))
    words = ", ".join(w.name for w in settings.wake.words)
    print(
        f"{path}: OK — wake words: {words}; model: {settings.model.backend}; voice: {settings.voice.mode}; "
        f"dialect: {settings.persona.dialect}; skills: {', '.join(settings.skills) or 'none'}"
    )
    return 0


class _BadArgument(Exception):
    """A command-line argument that cannot work; said in one line, exit 2."""


def _check_output(path: Path) -> None:
    """Refuse an output path that could never be written, before anything starts."""
    if path.is_dir():
        raise _BadArgument(f"--output {path}: is a directory; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise _BadArgument(f"--output {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise _BadArgument(f"--output {path}: not writable")


def _run(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if args.output is not None:
        _check_output(args.output)
    from .app import App, build_adapters
    from .logs import configure_logging, secret_values
    from .tasks import DaemonThreadExecutor, quiet_closed_socket_callbacks

    configure_logging(settings.logging, secret_values(settings))
    app = App(
        settings,
        lambda s, bus, clock, stack: build_adapters(s, bus, clock, stack, input_wav=args.input, output_wav=args.output),
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(DaemonThreadExecutor())
        quiet_closed_socket_callbacks(loop)
        await app.run()

    with single_instance(data_directory(settings)):
        asyncio.run(serve())
    return 0


def _devices(_: argparse.Namespace) -> int:
    from hardware.devices import list_devices

    devices = list_devices()
    if not devices:
        print("no audio devices found (is PulseAudio or PipeWire running, and is this user in the audio group?)")
        return 1
    for d in devices:
        roles = [r for r, on in (("default input", d.is_default_input), ("default output", d.is_default_output)) if on]
        print(
            f"{d.index:3d}  {d.name}  [{d.host_api}]  in: {d.max_input_channels}  out: {d.max_output_channels}  "
            f"{d.default_rate_hz} Hz{'  (' + ', '.join(roles) + ')' if roles else ''}"
        )
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor.cli import run_doctor

    return run_doctor(args, _load(args.config))


def _wake(args: argparse.Namespace) -> int:
    from .wake_cli import run

    return run(args, _load(args.config))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xiangyin`` console script."""
    args = _parser().parse_args(argv)
    handlers = {"run": _run, "check": _check, "devices": _devices, "doctor": _doctor, "wake": _wake}
    try:
        return handlers[args.command](args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (AlreadyRunning, _BadArgument) as err:
        print(f"xiangyin: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except AudioFormatError as err:  # --input, or an enrolment take
        print(f"xiangyin: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
