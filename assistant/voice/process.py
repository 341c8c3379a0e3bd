"""Run an audio tool (espeak-ng, sox) as a filter: bytes in on stdin, bytes out on stdout."""

from __future__ import annotations

import asyncio

from .errors import SpeechError


async def pipe_through(args: list[str], data: bytes, *, what: str) -> bytes:
    """Feed ``data`` to the command and return its output; the process is killed if we are cancelled.

    Raises :class:`SpeechError` naming ``what`` with the tool's own message when it exits non-zero.
    """
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await process.communicate(data)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise SpeechError(f"{what} failed ({process.returncode}): {stderr.decode(errors='replace').strip()}")
    return stdout
