"""Writing small state files so that a crash or a power cut leaves the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Have ``write`` fill a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    The rename is atomic within one file system, and the flush before it keeps a power cut from leaving an
    empty file under the new name. OSError when the folder or the disk refuses; the old file then stays.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return  # a folder that cannot be opened cannot be synced either; the rename itself went through
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)
