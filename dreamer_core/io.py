"""Atomic, deterministic file writes.

A killed run must never leave a half-written file that a reader would accept, and the same
inputs must produce the same bytes (DVC hashes outputs; a reproducible asset hashes the same).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

# Fixed timestamp for zip members so that .npz bytes depend only on their content.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
T = TypeVar("T")


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it while reading, a race
    with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file (or a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], durable: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    The file gets the permissions a plain ``open`` would give (``mkstemp``'s 0600 would hide it
    from the other users of a shared volume). A rename survives SIGKILL; with ``durable`` the file
    and its folder are also fsynced, so that it survives a node crash (checkpoints, indexes)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, target)
        if durable:
            fsync_path(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def lock_within(fh: Any, seconds: float, poll: float = 0.2) -> bool:
    """Take an exclusive ``flock`` on the open file ``fh``, waiting at most ``seconds``; False if
    another process still holds it then (a lock with a deadline: a stuck holder is reported, not
    waited on forever)."""
    import fcntl
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
        time.sleep(poll)


_RENAME_EXCHANGE = 2  # linux/fs.h: swap two paths in one step


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically (Linux renameat2 RENAME_EXCHANGE); False where the kernel,
    libc or file system cannot (NFS, macOS)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def staging_folder(target: str | os.PathLike[str], carry: tuple[str, ...] = ()) -> Path:
    """A fresh, empty folder beside ``target`` to build the asset's next version in (what a killed
    run left there is removed first), holding hard-linked copies of ``target``'s subfolders
    ``carry`` (caches the next version reuses; their files are only ever replaced, never
    rewritten in place, so the links leave the published version as it is)."""
    target = Path(target)
    stage = target.parent / f".{target.name}.staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in carry:
        if (target / name).is_dir():
            shutil.copytree(target / name, stage / name, copy_function=_link_or_copy)
    return stage


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def publish_folder(stage: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put the folder built in ``stage`` in ``target``'s place as one unit: an atomic exchange where
    the file system has one, else two renames (a reader then finds no folder for a moment, never
    a mix of two versions); the old version is removed after."""
    stage, target = Path(stage), Path(target)
    fsync_path(stage)
    if target.exists() and _exchange(stage, target):
        shutil.rmtree(stage)
    else:
        old = target.parent / f".{target.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(stage, target)
        shutil.rmtree(old, ignore_errors=True)
    fsync_path(target.parent)


def _folder_version(folder: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


def read_settled(folder: str | os.PathLike[str], read: Callable[[], T], attempts: int = 5) -> T:
    """``read()`` (which opens several files of ``folder``) with every file from one version:
    ``publish_folder`` puts a new directory in the folder's place, so the same directory before and
    after the read means no swap happened in between; otherwise (or when the read failed while a
    swap happened: a file gone with the old version) it is read again. A read that fails on a
    folder nobody swapped raises at once."""
    folder = Path(folder)
    for _ in range(attempts):
        before = _folder_version(folder)
        try:
            value = read()
        except (OSError, ValueError):
            if _folder_version(folder) == before:
                raise
            continue
        if _folder_version(folder) == before:
            return value
    raise OSError(f"{folder}: replaced by a new version {attempts} times while being read; read it again later")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, durable: bool = False) -> None:
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str, durable: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, durable: bool = False) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", durable)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays as an uncompressed .npz with fixed member timestamps (byte-reproducible).

    ``numpy.savez`` stamps each member with the current time; this writer does not. Object arrays
    are refused so that readers can always use ``allow_pickle=False``.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            arr = np.ascontiguousarray(arrays[name])
            if arr.dtype.hasobject:
                raise TypeError(f"array {name!r} has dtype object; refusing to write a pickled array")
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    write_bytes_atomic(path, npz_bytes(arrays))


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load every array of an .npz without ever unpickling."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
