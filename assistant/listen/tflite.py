"""A minimal ctypes binding of the TensorFlow Lite C API: one model, one thread, XNNPACK.

pyopen-wakeword bundles ``libtensorflowlite_c.so`` but creates its interpreters with default options: no
XNNPACK delegate (its reference kernels are about 3× slower on the embedding model) and a thread pool
whose idle spinning costs more CPU than the work. This runs the same library and model files with one
thread and, where the library exports it, the XNNPACK delegate.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

_p = ctypes.c_void_p
_i32 = ctypes.c_int32
_size = ctypes.c_size_t
_FLOAT32 = 1
"""``kTfLiteFloat32`` in TFLite's ``TfLiteType`` enum."""


class TfLiteError(RuntimeError):
    """The TFLite library or a model could not be loaded or run."""


class _XnnpackOptions(ctypes.Structure):
    """``TfLiteXNNPackDelegateOptions``: only the first field is used; the tail reserves room for the rest.

    The real struct is larger than 16 bytes on every 64-bit ABI, so it is returned through a hidden
    pointer to the caller's buffer; a buffer larger than the struct is therefore safe across versions.
    """

    _fields_ = (("num_threads", ctypes.c_int32), ("_rest", ctypes.c_byte * 252))


_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "TfLiteVersion": ([], ctypes.c_char_p),
    "TfLiteModelCreateFromFile": ([ctypes.c_char_p], _p),
    "TfLiteModelDelete": ([_p], None),
    "TfLiteInterpreterOptionsCreate": ([], _p),
    "TfLiteInterpreterOptionsSetNumThreads": ([_p, _i32], None),
    "TfLiteInterpreterOptionsAddDelegate": ([_p, _p], None),
    "TfLiteInterpreterOptionsDelete": ([_p], None),
    "TfLiteInterpreterCreate": ([_p, _p], _p),
    "TfLiteInterpreterDelete": ([_p], None),
    "TfLiteInterpreterResizeInputTensor": ([_p, _i32, ctypes.POINTER(_i32), _i32], ctypes.c_int),
    "TfLiteInterpreterAllocateTensors": ([_p], ctypes.c_int),
    "TfLiteInterpreterInvoke": ([_p], ctypes.c_int),
    "TfLiteInterpreterGetInputTensor": ([_p, _i32], _p),
    "TfLiteInterpreterGetOutputTensor": ([_p, _i32], _p),
    "TfLiteTensorType": ([_p], ctypes.c_int),
    "TfLiteTensorNumDims": ([_p], _i32),
    "TfLiteTensorDim": ([_p, _i32], _i32),
    "TfLiteTensorByteSize": ([_p], _size),
    "TfLiteTensorCopyFromBuffer": ([_p, _p, _size], ctypes.c_int),
    "TfLiteTensorCopyToBuffer": ([_p, _p, _size], ctypes.c_int),
}
_XNNPACK_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "TfLiteXNNPackDelegateOptionsDefault": ([], _XnnpackOptions),
    "TfLiteXNNPackDelegateCreate": ([ctypes.POINTER(_XnnpackOptions)], _p),
    "TfLiteXNNPackDelegateDelete": ([_p], None),
}

_loaded: dict[Path, TfLiteLibrary] = {}
_loading = threading.Lock()


class TfLiteLibrary:
    """A loaded ``libtensorflowlite_c`` with its functions typed; one per library file (see :func:`load_library`)."""

    def __init__(self, path: Path) -> None:
        try:
            # RTLD_GLOBAL, as pyopen-wakeword loads it: both then share one copy of the library's globals.
            self._lib: Any = ctypes.CDLL(str(path), mode=os.RTLD_GLOBAL)
        except OSError as err:
            raise TfLiteError(f"cannot load {path}: {err}") from err
        for name, (argtypes, restype) in _SIGNATURES.items():
            function = getattr(self._lib, name)
            function.argtypes, function.restype = argtypes, restype
        self.xnnpack = all(hasattr(self._lib, name) for name in _XNNPACK_SIGNATURES)
        """True when the library exports the XNNPACK delegate."""
        if self.xnnpack:
            for name, (argtypes, restype) in _XNNPACK_SIGNATURES.items():
                function = getattr(self._lib, name)
                function.argtypes, function.restype = argtypes, restype
        self.version = str(self._lib.TfLiteVersion().decode())
        """The library's TensorFlow Lite version, e.g. ``2.17.1``."""

    @property
    def c(self) -> Any:
        """The raw typed functions."""
        return self._lib


def load_library(path: Path) -> TfLiteLibrary:
    """Load (once per process) and type the TFLite C library at ``path``."""
    resolved = path.resolve()
    with _loading:
        if resolved not in _loaded:
            _loaded[resolved] = TfLiteLibrary(resolved)
        return _loaded[resolved]


class TfLiteModel:
    """One float32 model with one input and one output, run on the calling thread only.

    Not thread-safe: the caller runs every :meth:`run` of one model on one thread at a time.
    """

    def __init__(
        self, library: TfLiteLibrary, path: Path, *, input_shape: tuple[int, ...] | None = None, xnnpack: bool = True
    ) -> None:
        c = library.c
        self._c = c
        self._model = self._interpreter = self._delegate = None
        self._model = c.TfLiteModelCreateFromFile(str(path).encode())
        if not self._model:
            raise TfLiteError(f"{path}: not a TFLite model (or unreadable)")
        options = c.TfLiteInterpreterOptionsCreate()
        try:
            # One thread: these models take about a millisecond, far less than waking a pool costs.
            c.TfLiteInterpreterOptionsSetNumThreads(options, 1)
            if xnnpack and library.xnnpack:
                settings = c.TfLiteXNNPackDelegateOptionsDefault()
                settings.num_threads = 1
                self._delegate = c.TfLiteXNNPackDelegateCreate(ctypes.byref(settings))
                if self._delegate:
                    c.TfLiteInterpreterOptionsAddDelegate(options, self._delegate)
            self._interpreter = c.TfLiteInterpreterCreate(self._model, options)
        finally:
            c.TfLiteInterpreterOptionsDelete(options)
        if not self._interpreter:
            self.close()
            raise TfLiteError(f"{path}: TFLite cannot build an interpreter for it")
        if input_shape is not None:
            dims = (_i32 * len(input_shape))(*input_shape)
            if c.TfLiteInterpreterResizeInputTensor(self._interpreter, 0, dims, len(input_shape)) != 0:
                self.close()
                raise TfLiteError(f"{path}: cannot take input of shape {input_shape}")
        if c.TfLiteInterpreterAllocateTensors(self._interpreter) != 0:
            self.close()
            raise TfLiteError(f"{path}: TFLite cannot allocate its tensors")
        self._input = c.TfLiteInterpreterGetInputTensor(self._interpreter, 0)
        self._output = c.TfLiteInterpreterGetOutputTensor(self._interpreter, 0)
        if (
            not self._input
            or not self._output
            or {c.TfLiteTensorType(self._input), c.TfLiteTensorType(self._output)} != {_FLOAT32}
        ):
            self.close()
            raise TfLiteError(f"{path}: expected a model with one float32 input and one output")
        self.input_shape = tuple(
            int(c.TfLiteTensorDim(self._input, i)) for i in range(c.TfLiteTensorNumDims(self._input))
        )
        """The input tensor's shape, batch first."""
        self._input_bytes = int(c.TfLiteTensorByteSize(self._input))
        self._out = np.empty(int(c.TfLiteTensorByteSize(self._output)) // 4, dtype=np.float32)

    def run(self, data: np.ndarray) -> np.ndarray:
        """Run the model on ``data`` (float32, the input's size); return the output, flat (a reused buffer)."""
        if data.dtype != np.float32 or not data.flags.c_contiguous or data.nbytes != self._input_bytes:
            raise ValueError(f"input must be {self._input_bytes} bytes of contiguous float32, got {data.nbytes}")
        c = self._c
        if c.TfLiteTensorCopyFromBuffer(self._input, data.ctypes.data, data.nbytes) != 0:
            raise TfLiteError("TFLite refused the input")
        if c.TfLiteInterpreterInvoke(self._interpreter) != 0:
            raise TfLiteError("TFLite failed to run the model")
        c.TfLiteTensorCopyToBuffer(self._output, self._out.ctypes.data, self._out.nbytes)
        return self._out

    def close(self) -> None:
        """Free the interpreter, its delegate and the model (in that order: each uses the next)."""
        c = self._c
        interpreter, delegate, model = self._interpreter, self._delegate, self._model
        self._interpreter = self._delegate = self._model = None
        if interpreter:
            c.TfLiteInterpreterDelete(interpreter)
        if delegate:
            c.TfLiteXNNPackDelegateDelete(delegate)
        if model:
            c.TfLiteModelDelete(model)

    def __del__(self) -> None:
        self.close()
