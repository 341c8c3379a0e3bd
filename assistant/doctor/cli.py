"""``xiangyin doctor [--json]``: run the checks, print the table or JSON, exit 1 on a failure."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from ..config import Settings
from . import DoctorOptions, examine
from .report import exit_code, render_table, to_json


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of the subcommand."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = DoctorOptions(
        hashes=args.hashes, mic_seconds=args.mic_seconds, mic_wav=args.mic_wav, question_wav=args.question
    )
    report = asyncio.run(examine(settings, options))
    if args.json:
        print(json.dumps(to_json(report), ensure_ascii=False, indent=2))
    else:
        print(render_table(report))
    return exit_code(report)
