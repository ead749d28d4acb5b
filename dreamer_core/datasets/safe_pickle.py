"""Reading the ``.pkl`` label files that 3DPW and EMDB ship, without trusting them.

A plain ``pickle.load`` runs whatever a file names. Allowing numpy's own globals is not enough
either: a pickle may hand ``numpy.dtype.__setstate__`` forged fields (an object field at offset 0
while the flags say "no objects"), and an array built on that dtype reads raw bytes as pointers
(a segfault, or worse). So no numpy global ever reaches the pickle machine. The names an array
pickle uses (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``, ``_codecs.encode``) resolve to
stand-ins that only record what the file says; after loading, each recorded array is rebuilt
with ``np.frombuffer`` from a dtype made from a plain type string of kind b / i / u / f / c / S / U
(no fields, sub-arrays, objects or metadata) and a byte length checked against its shape.
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from dreamer_core.errors import PipelineInputError

_TYPESTR = re.compile(r"[biufcSU][0-9]{1,3}")  # 'f8', 'i4', 'b1', 'S5', 'U3': no fields, no objects
_BYTEORDER = {"<", ">", "|", "="}


class _Refused(ValueError):
    """The file holds something an arrays-only label file never holds."""


class _DtypeSpec:
    """What ``numpy.dtype(typestr, align, copy)`` and its ``__setstate__`` said, as a checked dtype."""

    def __init__(self, typestr: Any) -> None:
        if not isinstance(typestr, str) or not _TYPESTR.fullmatch(typestr):
            raise _Refused(f"dtype {typestr!r} is not a plain numeric or string type")
        self.dtype = np.dtype(typestr)
        self._built = False

    def __setstate__(self, state: Any) -> None:
        if self._built or not isinstance(state, tuple) or len(state) not in (8, 9):
            raise _Refused("malformed dtype state")
        version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
        metadata = state[8] if len(state) == 9 else None
        if version not in (3, 4) or order not in _BYTEORDER:
            raise _Refused(f"dtype state version {version!r} / byte order {order!r}")
        if subarray is not None or names is not None or fields is not None or metadata is not None:
            raise _Refused("dtype with fields, sub-arrays or metadata")
        dtype = self.dtype.newbyteorder(order) if order in "<>" and self.dtype.itemsize > 1 else self.dtype
        if elsize not in (-1, dtype.itemsize) or alignment not in (-1, dtype.alignment) or flags != dtype.flags:
            raise _Refused(f"dtype state (size {elsize!r}, alignment {alignment!r}, flags {flags!r}) "
                           f"does not describe {dtype.str}")  # fmt: skip
        self.dtype, self._built = dtype, True


def _raw(data: Any) -> bytes:
    """An array's raw bytes: bytes, or (Python 2 files read as latin1) a str of byte values."""
    if isinstance(data, str):
        return data.encode("latin1")
    if isinstance(data, bytes | bytearray | pickle.PickleBuffer):
        return bytes(data)
    raise _Refused(f"array data of type {type(data).__name__} (object arrays are not read)")


class _ArraySpec:
    """What ``_reconstruct(ndarray, ...)`` and the array's ``__setstate__`` said; ``value`` is the
    array rebuilt from it."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.value is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("malformed array state")
        shape, spec, fortran, data = state[-4:]
        if not isinstance(spec, _DtypeSpec) or not isinstance(fortran, bool):
            raise _Refused("malformed array state")
        self.value = _array(spec, shape, fortran, data)


def _array(spec: _DtypeSpec, shape: Any, fortran: bool, data: Any) -> np.ndarray:
    """An array of ``spec``'s dtype and ``shape`` from exactly as many bytes as it needs."""
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                               for n in shape):  # fmt: skip
        raise _Refused(f"array shape {shape!r}")
    raw = _raw(data)
    want = math.prod(shape) * spec.dtype.itemsize
    if len(raw) != want:
        raise _Refused(f"array of shape {shape} and dtype {spec.dtype.str} needs {want} bytes, the file holds "
                       f"{len(raw)}")  # fmt: skip
    return np.frombuffer(raw, dtype=spec.dtype).copy().reshape(shape, order="F" if fortran else "C")


class _Standin:
    """A callable that the pickle may call but not otherwise touch (no ``__dict__`` to build into)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        return _CALLS[self.name](*args)

    def __setstate__(self, state: Any) -> None:  # a BUILD on a stand-in would change it for every later load
        raise _Refused("state for a numpy callable")

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "name"):
            raise _Refused("state for a numpy callable")
        object.__setattr__(self, name, value)


_NDARRAY = _Standin("ndarray")


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArraySpec:
    if cls is not _NDARRAY:
        raise _Refused("_reconstruct of something other than numpy.ndarray")
    return _ArraySpec()


def _dtype(typestr: Any, align: Any = False, copy: Any = True) -> _DtypeSpec:
    if align not in (0, 1) or copy not in (0, 1):  # Python 2 numpy wrote 0 / 1
        raise _Refused("malformed dtype arguments")
    return _DtypeSpec(typestr)


def _scalar(spec: Any, data: Any = None) -> Any:
    if not isinstance(spec, _DtypeSpec) or data is None:
        raise _Refused("a numpy scalar without a plain dtype and its bytes")
    raw = _raw(data)
    if len(raw) != spec.dtype.itemsize:
        raise _Refused(f"a {spec.dtype.str} scalar of {len(raw)} bytes")
    return np.frombuffer(raw, dtype=spec.dtype)[0].copy()


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode other than a latin1 string")
    return text.encode("latin1")


def _frombuffer(data: Any, spec: Any, shape: Any, order: Any, axis_order: Any = None) -> _ArraySpec:
    """Protocol 5's form of an array (its bytes in band); numpy >= 2.3 writes an array with permuted
    axes as order "K" with the permutation. Returned as a finished spec: BUILD on it is refused."""
    if not isinstance(spec, _DtypeSpec) or order not in ("C", "F", "K"):
        raise _Refused("malformed protocol-5 array")
    out = _ArraySpec()
    if order == "K":
        if not isinstance(shape, tuple) or not isinstance(axis_order, tuple | list) or \
                sorted(axis_order) != list(range(len(shape))):  # fmt: skip
            raise _Refused("malformed protocol-5 axis order")
        out.value = _array(spec, shape, False, data).transpose(tuple(axis_order))  # numpy's own reading
    else:
        out.value = _array(spec, shape, order == "F", data)
    return out


def _bytes(*args: Any) -> bytes:
    if args:  # protocol 2 writes b"" as bytes(); anything longer comes through _codecs.encode
        raise _Refused("bytes() with arguments")
    return b""


def _ndarray_call(*args: Any) -> Any:
    raise _Refused("numpy.ndarray called directly")


_CALLS = {"reconstruct": _reconstruct, "dtype": _dtype, "scalar": _scalar, "encode": _encode,
          "bytes": _bytes, "frombuffer": _frombuffer, "ndarray": _ndarray_call}  # fmt: skip
_GLOBALS = {
    **{(m, "_reconstruct"): _Standin("reconstruct") for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _Standin("scalar") for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _Standin("frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Standin("dtype"),
    ("_codecs", "encode"): _Standin("encode"),  # how protocol-2 pickles written by Python 3 carry raw bytes
    **{(m, "bytes"): _Standin("bytes") for m in ("builtins", "__builtin__")},
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only numpy arrays are)")
        return _GLOBALS[(module, name)]


_IN_PROGRESS = object()  # a tuple being rebuilt: meeting it again means the tuple contains itself


def _resolve(obj: Any, seen: dict[int, Any]) -> Any:
    """``obj`` with every recorded array replaced by the array (dicts and lists in place, so shared
    and self-referencing containers stay so)."""
    if isinstance(obj, _ArraySpec):
        if obj.value is None:
            raise _Refused("an array without its state")
        return obj.value
    if isinstance(obj, _DtypeSpec | _Standin):
        raise _Refused("a bare dtype or numpy callable as a value")
    if isinstance(obj, list | dict | tuple):
        if id(obj) in seen:
            if seen[id(obj)] is _IN_PROGRESS:
                raise _Refused("a tuple that contains itself")
            return seen[id(obj)]
        if isinstance(obj, list):
            seen[id(obj)] = obj
            obj[:] = [_resolve(x, seen) for x in obj]
        elif isinstance(obj, dict):
            seen[id(obj)] = obj
            for k in list(obj):
                if not (k is None or isinstance(k, bool | int | float | str | bytes)):
                    raise _Refused(f"a dict key of type {type(k).__name__}")
                obj[k] = _resolve(obj[k], seen)
        else:
            seen[id(obj)] = _IN_PROGRESS
            seen[id(obj)] = tuple(_resolve(x, seen) for x in obj)
        return seen[id(obj)]
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes | bytearray | np.generic):
        return obj
    raise _Refused(f"a value of type {type(obj).__name__}")


def load_label_pickle(path: str | Path) -> Any:
    """The content of a dataset's ``.pkl`` label file (Python 2 files included: latin1 strings):
    dicts, lists, tuples, strings, numbers and numeric / string numpy arrays, nothing else."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return _resolve(_ArraysOnly(fh, encoding="latin1").load(), {})
    except FileNotFoundError as exc:
        raise PipelineInputError(f"{path}: no such label file") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError, MemoryError, OverflowError) as exc:  # fmt: skip
        raise PipelineInputError(
            f"{path}: not a label file this pipeline reads ({exc}); it must hold only dicts, lists and numpy "
            "arrays (re-download it from the dataset's site if it is truncated)"
        ) from exc
