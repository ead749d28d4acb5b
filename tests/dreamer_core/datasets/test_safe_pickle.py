"""The arrays-only unpickler: every array a label file holds comes back equal, and a pickle that
forges numpy state (the dtype ``__setstate__`` route to memory corruption) is refused."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dreamer_core.datasets.safe_pickle import load_label_pickle
from dreamer_core.errors import PipelineInputError

ARRAYS = {
    "f8": np.arange(6.0).reshape(2, 3),
    "fortran_i4": np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3)),
    "big_endian": np.arange(4, dtype=">f4"),
    "bytes": np.array([b"ab", b"c"]),
    "unicode": np.array(["xy", "z"]),
    "bool": np.array([True, False]),
    "complex": np.array([1 + 2j]),
    "empty": np.zeros((0, 3)),
    "zero_dim": np.array(5.0),
    "permuted_axes": np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2),  # protocol 5: order "K"
}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_scalars_and_containers_round_trip(tmp_path, protocol):
    shared = [np.ones(2), (1, np.int64(3))]
    data = {**ARRAYS, "scalar": np.float32(2.5), "nested": shared, "again": [shared]}
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = load_label_pickle(path)
    for name, want in ARRAYS.items():
        got = out[name]
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), name
        assert got.flags.writeable
    assert out["fortran_i4"].flags.f_contiguous
    assert type(out["scalar"]) is np.float32 and out["scalar"] == 2.5
    assert out["nested"][1] == (1, 3) and out["again"][0] is out["nested"]


class _Forged:
    """Pickles as the given callable, arguments and BUILD state, unchecked (what an attacker writes)."""

    def __init__(self, func, args, state):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return self.func, self.args, self.state


def _forged_dtype(state) -> _Forged:
    return _Forged(np.dtype, ("f8", False, True), state)


def _forged_array(dtype, shape=(1,), data=b"A" * 8) -> _Forged:
    return _Forged(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def test_python2_files_with_latin1_strings_load(tmp_path):
    """Python 2 wrote an array's bytes as a str; read with latin1 they come back as its byte values."""
    want = np.array([1.5, -2.0])
    path = tmp_path / "py2.pkl"
    path.write_bytes(pickle.dumps(_forged_array(want.dtype, (2,), want.tobytes().decode("latin1")), protocol=2))
    np.testing.assert_array_equal(load_label_pickle(path), want)


@pytest.mark.parametrize(
    "payload, reason",
    [
        # the memory-corruption route: an object field at offset 0 while the flags say "no objects"
        (_forged_array(_forged_dtype((3, "|", None, ("x",), {"x": (np.dtype("O"), 0)}, 8, 1, 0))), "O8"),
        (_forged_array(_forged_dtype((3, "|", None, ("x",), {"x": (np.dtype("f8"), 0)}, 8, 1, 0))), "fields"),
        (_forged_array(_forged_dtype((3, "<", (np.dtype("f8"), (2,)), None, None, 16, 8, 0))), "sub-arrays"),
        (_forged_array(_forged_dtype((3, "<", None, None, None, -1, -1, 63))), "flags"),
        (_forged_array(np.dtype("f8"), (4,)), "needs 32 bytes"),
        (_forged_array(np.dtype("f8"), (-1,)), "shape"),
        (np.array([object()], dtype=object), "not a plain"),
        (np.zeros(2, dtype=[("x", "f8"), ("o", "O")]), "not a plain"),
        (np.zeros(2, "M8[s]"), "not a plain"),
        (_Forged(np._core.multiarray._reconstruct, (np.dtype, (0,), b"b"), None), "other than numpy.ndarray"),
        (np.dtype("f8"), "bare dtype"),
    ],
)
def test_forged_numpy_state_is_refused(tmp_path, payload, reason):
    path = tmp_path / "forged.pkl"
    path.write_bytes(pickle.dumps({"poses": payload}, protocol=2))
    with pytest.raises(PipelineInputError, match=reason):
        load_label_pickle(path)


def test_forged_dtype_cannot_crash_the_reader(tmp_path):
    """What ``datasets/real.py`` does with a loaded array (``np.asarray(x, float)``), in a child
    process: it must end with the clear error, never a signal (the old unpickler segfaulted)."""
    path = tmp_path / "forged.pkl"
    forged = _forged_array(_forged_dtype((3, "|", None, ("x",), {"x": (np.dtype("O"), 0)}, 8, 1, 0)))
    path.write_bytes(pickle.dumps({"poses": [forged]}, protocol=2))
    code = textwrap.dedent(f"""
        import numpy as np
        from dreamer_core.datasets.safe_pickle import load_label_pickle
        from dreamer_core.errors import PipelineInputError
        try:
            np.asarray(load_label_pickle({str(path)!r})["poses"][0], float)
        except PipelineInputError as exc:
            print("refused", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("refused"), (out.returncode, out.stderr[-500:])


def test_a_pickle_cannot_change_the_unpickler_for_later_files(tmp_path):
    """BUILD on a stand-in (``numpy.dtype`` with state {"name": "bytes"}) is refused, and the next
    legitimate file still loads: no file's content outlives its own load."""
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x02cnumpy\ndtype\nN}X\x04\x00\x00\x00nameX\x05\x00\x00\x00bytess\x86b.")
    with pytest.raises(PipelineInputError, match="state for a numpy callable"):
        load_label_pickle(bad)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"poses": np.ones((2, 72))}, protocol=2))
    assert load_label_pickle(good)["poses"].shape == (2, 72)


def test_self_containing_tuples_and_odd_dict_keys_are_refused(tmp_path):
    loop: list = []
    loop.append((loop, np.ones(2)))
    for payload, why in (([loop[0]], "contains itself"), ({np.dtype("f8"): 1}, "dict key")):
        path = tmp_path / "odd.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(PipelineInputError, match=why):
            load_label_pickle(path)
