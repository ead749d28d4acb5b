"""Reading the ``.pkl`` label files that 3DPW and EMDB ship, without trusting them.

A plain ``pickle.load`` runs whatever a file names; these files only ever need dicts, lists,
strings, numbers and numpy arrays, so the unpickler below resolves exactly the numpy globals an
array needs and refuses every other global with an error naming it.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

from dreamer_core.errors import PipelineInputError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 carry an array's raw bytes
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only numpy arrays are)")
        try:  # numpy 2 moved numpy.core to numpy._core; old files name the old module
            mod = importlib.import_module(module.replace("numpy.core", "numpy._core"))
        except ImportError:
            mod = importlib.import_module(module)
        return getattr(mod, name)


def load_label_pickle(path: str | Path) -> Any:
    """The content of a dataset's ``.pkl`` label file (Python 2 files included: latin1 strings)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return _ArraysOnly(fh, encoding="latin1").load()
    except FileNotFoundError as exc:
        raise PipelineInputError(f"{path}: no such label file") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise PipelineInputError(
            f"{path}: not a label file this pipeline reads ({exc}); it must hold only dicts, lists and numpy "
            "arrays (re-download it from the dataset's site if it is truncated)"
        ) from exc
