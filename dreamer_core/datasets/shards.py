"""WebDataset-style shards: ``shard-000000.tar`` holding per sample ``<key>.png`` (image),
``<key>.control.png``, ``<key>.mask.png``, optional ``<key>.depth.png`` (uint16 millimetres) and
``<key>.json`` (labels), plus one ``<shard>.index.json`` per shard with its SHA-256, sample count
and sample keys (so that dataset-level checks and statistics read indexes, never images).

Writes are atomic (temp name, then rename) and byte-reproducible (fixed tar headers, sorted
members). Reading validates: a truncated, tampered or malformed shard, a member with an absolute
path or ``..``, a member that is not a regular file (GNU sparse members claim sizes the file does
not hold) or is larger than any sample member, a duplicate or missing member, an image whose
header is not the size and mode its labels say (checked before decompressing), labels off the
schema or with a NaN: each is a ``ShardError`` naming the shard, never a raw exception or a
silent read.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tarfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dreamer_core.errors import PipelineInputError
from dreamer_core.io import atomic_path, write_json_atomic

REQUIRED = ("png", "control.png", "mask.png", "json")
OPTIONAL = ("depth.png",)


class ShardError(PipelineInputError):
    """A shard is unreadable, tampered with, or holds an invalid sample. The message ends with the
    fix: a shard folder is always an asset's output, so rewriting it is re-materializing that asset."""

    FIX = "re-materialize the asset (or shard partition) that wrote it"

    def __init__(self, message: str, fix: str = FIX) -> None:
        super().__init__(f"{message}; {fix}" if fix else message)


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


@dataclass
class Sample:
    key: str
    image: np.ndarray | None  # [H, W, 3] uint8 (None for control-only samples)
    control: np.ndarray | None  # [H, W, 3] uint8 (None where a reader did not decode it)
    mask: np.ndarray | None  # [H, W] uint8 (likewise)
    labels: dict[str, Any]
    depth: np.ndarray | None = None  # [H, W] float32 metres


def _encode(sample: Sample) -> dict[str, bytes]:
    if "/" in sample.key or sample.key.startswith(".") or "." in sample.key:
        raise ValueError(f"sample key {sample.key!r} must not contain '/' or '.'")
    members = {
        "control.png": png_bytes(sample.control),
        "mask.png": png_bytes(sample.mask),
        "json": json.dumps(sample.labels, sort_keys=True, allow_nan=False).encode(),
    }
    # Control-only samples store the control image as the image too, so every sample has <key>.png.
    members["png"] = png_bytes(sample.image if sample.image is not None else sample.control)
    if sample.depth is not None:
        mm = np.clip(np.rint(sample.depth * 1000.0), 0, 65535).astype(np.uint16)
        members["depth.png"] = png_bytes(mm)
    return members


def write_shard(path: str | Path, samples: list[Sample]) -> str:
    """Write one shard atomically; return its SHA-256."""
    path = Path(path)
    with atomic_path(path, durable=True) as tmp:  # on the disk before its index vouches for it
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in samples:
                for ext, data in sorted(_encode(sample).items()):
                    info = tarfile.TarInfo(f"{sample.key}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, io.BytesIO(data))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return digest


def index_file(shard: str) -> str:
    return f"{shard}.index.json"


def update_index(folder: str | Path, entries: dict[str, dict[str, Any]]) -> None:
    """Record ``{shard file: {"sha256", "num_samples", "keys"}}``: one small file per shard, so
    that partitions writing different shards in parallel never race on a shared index."""
    for name, entry in entries.items():
        write_json_atomic(Path(folder) / index_file(name), {name: entry}, durable=True)


def publish_shard(folder: str | Path, name: str, samples: list[Sample], extra: dict[str, Any] | None = None) -> str:
    """Write one shard, then its index entry (SHA-256, sample count, keys, and ``extra``: e.g. the
    hash of a manifest part written before it); return the SHA-256. The index is written last:
    it is the commit mark readers go by, so a run killed in between leaves a shard nobody reads."""
    folder = Path(folder)
    entry: dict[str, Any] = {**(extra or {}), "sha256": "0" * 64, "num_samples": len(samples),
                             "keys": [s.key for s in samples]}  # fmt: skip
    _check_entry(folder / name, entry)  # a key twice would make an index every later read refuses
    folder.mkdir(parents=True, exist_ok=True)
    entry["sha256"] = write_shard(folder / name, samples)
    entry["bytes"] = (folder / name).stat().st_size
    update_index(folder, {name: entry})
    return entry["sha256"]


def index_keys(folder: str | Path, index: dict[str, dict[str, Any]] | None = None) -> dict[str, list[str]]:
    """Each indexed shard's sample keys in shard order, from the index, after checking that every
    shard file exists with the size its index records (a deleted or truncated shard is an error;
    one rewritten in place to the same size is caught by the SHA-256 of whoever opens it). An index
    written before keys were recorded falls back to the shard's label members (hash-checked, no
    image decoded)."""
    folder = Path(folder)
    index = read_index(folder) if index is None else index
    keys = {}
    for name, entry in index.items():
        if "keys" not in entry:
            keys[name] = [k for k, _ in read_labels(folder / name, entry["sha256"])]
            continue
        try:
            size = (folder / name).stat().st_size
        except OSError as exc:
            raise ShardError(f"{folder / name}: listed in its index but unreadable ({exc.strerror})") from exc
        if entry.get("bytes") is not None and size != entry["bytes"]:
            raise ShardError(f"{folder / name}: {size} bytes, its index says {entry['bytes']}: truncated or replaced")
        keys[name] = list(entry["keys"])
    return keys


def remove_shards(folder: str | Path, keep: set[str] | None = None) -> None:
    """Delete shards (with their index and manifest parts) whose stem is not in ``keep``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.glob("shard-*.tar"):
        stem = path.name.removesuffix(".tar")
        if keep is None or stem not in keep:
            for p in (path, folder / index_file(path.name), folder / f"manifest-{stem}.parquet"):
                p.unlink(missing_ok=True)


def read_index(folder: str | Path) -> dict[str, dict[str, Any]]:
    folder = Path(folder)
    files = sorted(folder.glob("*.index.json"))
    if not files:
        raise ShardError(f"{folder}: no shard index (*.index.json)")
    index: dict[str, dict[str, Any]] = {}
    for f in files:
        index.update(_load_index_file(folder, f))
    return dict(sorted(index.items()))


def read_entry(folder: str | Path, name: str) -> dict[str, Any]:
    """One shard's index entry, from its own file: what a check of one partition reads, however
    many shards the folder holds."""
    folder = Path(folder)
    f = folder / index_file(name)
    if not f.is_file():
        raise ShardError(f"{folder / name}: not committed (no {f.name}); its run did not finish")
    entries = _load_index_file(folder, f)
    if name not in entries:
        raise ShardError(f"{f}: does not describe {name}")
    return entries[name]


def _load_index_file(folder: Path, f: Path) -> dict[str, dict[str, Any]]:
    try:
        entries = json.loads(f.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ShardError(f"{f}: corrupt shard index ({str(exc)[:200]})") from exc
    if not isinstance(entries, dict):
        raise ShardError(f"{f}: corrupt shard index (not a JSON object)")
    for name, entry in entries.items():
        _safe_member(folder / name, name)
        _check_entry(folder / name, entry)
    return entries


def _check_entry(shard: Path, entry: Any) -> None:
    """An index entry holds a hex SHA-256, a sample count and (when recorded) the file's size and
    that many unique string keys: whatever reads the index alone (fingerprints, checks,
    statistics) can trust it."""
    ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
    ok = ok and isinstance(entry.get("num_samples"), int) and entry["num_samples"] >= 0
    ok = ok and (entry.get("bytes") is None or (isinstance(entry["bytes"], int) and entry["bytes"] > 0))
    keys = entry.get("keys") if isinstance(entry, dict) else None
    if ok and keys is not None:
        ok = (isinstance(keys, list) and len(keys) == entry["num_samples"] == len(set(keys))
              and all(isinstance(k, str) for k in keys))  # fmt: skip
    if not ok:
        raise ShardError(f"{shard}: its index entry is malformed (want sha256, num_samples and as many unique keys)")


def _safe_member(shard: Path, name: str) -> None:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or name.startswith("/") or "\\" in name:
        raise ShardError(
            f"{shard}: member {name!r} has an absolute path or '..'; refusing to read this shard",
            "it was not written by this pipeline: delete it, or re-materialize the asset whose folder holds it",
        )


MAX_SIDE = 8192  # the largest image side a label may declare (full renders are 512 px)
MAX_MEMBER_BYTES = 3 * MAX_SIDE * MAX_SIDE + (1 << 20)  # an uncompressed PNG of that size, plus headers
_MODES = {"png": "RGB", "control.png": "RGB", "mask.png": "L", "depth.png": "I;16"}  # what _encode writes


def _decode_png(shard: Path, key: str, ext: str, data: bytes, size: tuple[int, int],
                load: bool = True) -> np.ndarray | None:  # fmt: skip
    """A member's pixels, once its header says it is a PNG of the labels' size and the mode this
    pipeline writes: nothing is decompressed before that (a decompression bomb is refused by its
    header, whatever Pillow's own limit is). With ``load`` False only that header is checked."""
    name = f"{key}.{ext}"
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.size != size or im.mode != _MODES[ext]:
                raise ShardError(f"{shard}: {name} is a {im.size[0]}x{im.size[1]} {im.mode} image, its labels say "
                                 f"{size[0]}x{size[1]} {_MODES[ext]}")  # fmt: skip
            if not load:
                return None
            im.load()
            return np.asarray(im)
    except ShardError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ShardError(f"{shard}: member {name!r} is not a valid PNG ({exc})") from exc


# Label fields and their shapes (None: any length); every sample has the first three.
_LABEL_SHAPES: dict[str, tuple[int | None, ...]] = {
    "image_size": (2,), "keypoints_2d": (None, 3), "K": (3, 3), "R": (3, 3), "t": (3,), "bbox": (4,),
    "joints_3d": (None, 3), "global_orient_cam": (3,), "transl_cam": (3,),
}  # fmt: skip
_LABEL_REQUIRED = ("image_size", "keypoints_2d", "K")


def _shape_of(value: Any, shape: tuple[int | None, ...]) -> bool:
    """Whether ``value`` is nested lists of finite numbers of ``shape`` (bools are not numbers).
    The innermost lists are checked in one pass, not a call per number: every training step
    decodes a batch of labels, and a per-number walk cost as much as a fifth of a detector step."""
    if not shape:
        return type(value) in (int, float) and -1e300 < value < 1e300
    n, rest = shape[0], shape[1:]
    if not (isinstance(value, list) and (n is None or len(value) == n)):
        return False
    if not rest:
        return all(type(v) in (int, float) and -1e300 < v < 1e300 for v in value)
    return all(_shape_of(v, rest) for v in value)


# What a JSON number or constant must contain to parse to a non-finite float: NaN / Infinity, an
# exponent of three or more digits, or 200 digits in a row (with an exponent under 100, fewer stay
# below 1e299; a float overflows beyond 1.8e308).
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|[eE]\+?0*[1-9][0-9]{2}|[0-9]{200}")


def _finite_everywhere(shard: Path, key: str, labels: dict[str, Any], raw: bytes) -> None:
    """No NaN or infinity anywhere in the labels parsed from ``raw``. Only labels whose text could
    hold one are walked (without recursion: JSON may nest deeply), to name where it is."""
    if _MAYBE_NOT_FINITE.search(raw) is None:
        return
    stack: list[tuple[Any, str]] = [(labels, "labels")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise ShardError(f"{shard}: {key}.json has a non-finite value at {where}")
        if isinstance(v, dict):
            stack.extend((x, f"{where}.{k}") for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{where}[{i}]") for i, x in enumerate(v))


def _parse_labels(shard: Path, key: str, data: bytes) -> dict[str, Any]:
    """A sample's labels: JSON of the schema above (the fields every reader indexes are there, with
    their shapes, and the image size is sane), or a ShardError naming what is wrong."""
    try:
        labels = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # ValueError: JSON's, or a 5000-digit int
        raise ShardError(f"{shard}: {key}.json is not valid JSON ({str(exc)[:200]})") from exc
    if not isinstance(labels, dict):
        raise ShardError(f"{shard}: {key}.json is not a JSON object")
    _finite_everywhere(shard, key, labels, data)
    for field in _LABEL_REQUIRED:
        if field not in labels:
            raise ShardError(f"{shard}: {key}.json lacks {field!r}")
    for field, shape in _LABEL_SHAPES.items():
        if field in labels and not _shape_of(labels[field], shape):
            want = "x".join("n" if n is None else str(n) for n in shape)
            raise ShardError(f"{shard}: {key}.json field {field!r} is not a {want} array of numbers")
    w, h = labels["image_size"]
    if not all(isinstance(v, int) and 1 <= v <= MAX_SIDE for v in (w, h)):
        raise ShardError(f"{shard}: {key}.json image_size {labels['image_size']} is not two sides in 1..{MAX_SIDE}")
    return labels


def _shard_bytes(path: Path, sha256: str | None) -> bytes:
    """The shard's bytes, checked against the index's SHA-256 when given."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ShardError(f"{path}: unreadable shard ({exc.strerror})") from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ShardError(f"{path}: SHA-256 differs from the shard index: the shard was modified or truncated")
    return data


def _members(path: Path, data: bytes, wanted: Callable[[str], bool] = lambda ext: True) -> dict[str, dict[str, bytes]]:
    """``{key: {ext: bytes}}`` of a shard's members (those whose extension ``wanted`` accepts), in
    shard order. Only regular files (not GNU sparse members, whose stated size is not in the file)
    under ``MAX_MEMBER_BYTES``, each name once."""
    groups: dict[str, dict[str, bytes]] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                _safe_member(path, member.name)
                if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.sparse is not None:
                    raise ShardError(f"{path}: member {member.name!r} is not a regular file")
                if member.size > MAX_MEMBER_BYTES:
                    raise ShardError(f"{path}: member {member.name!r} says it holds {member.size} bytes, more than "
                                     f"any sample member ({MAX_MEMBER_BYTES})")  # fmt: skip
                if member.name in seen:
                    raise ShardError(f"{path}: member {member.name!r} appears twice")
                seen.add(member.name)
                key, _, ext = member.name.partition(".")
                group = groups.setdefault(key, {})
                if wanted(ext):
                    f = tar.extractfile(member)
                    group[ext] = f.read() if f else b""
    except ShardError:
        raise
    except (tarfile.TarError, EOFError, ValueError, OverflowError) as exc:  # ValueError: malformed pax headers
        raise ShardError(f"{path}: not a valid tar shard ({str(exc)[:200]}); it may be truncated") from exc
    return groups


IMAGE_MEMBERS = ("png", "control.png", "mask.png", "depth.png")


def read_shard(path: str | Path, sha256: str | None = None, keys: list[str] | None = None,
               images: Collection[str] = IMAGE_MEMBERS) -> Iterator[Sample]:  # fmt: skip
    """Yield the samples of one shard, validating everything; ``sha256`` (from the index) detects
    tampering, ``keys`` (from the index) that the index describes this shard. Only the image
    members named in ``images`` are decompressed (the others are None, their PNG headers checked):
    a training loop that reads two of four images a sample decodes half the pixels."""
    path = Path(path)
    groups = _members(path, _shard_bytes(path, sha256))
    if not groups:
        raise ShardError(f"{path}: holds no samples")
    if keys is not None and list(groups) != list(keys):
        raise ShardError(f"{path}: its samples are not the {len(keys)} keys its index lists")
    for key, members in groups.items():
        missing = [e for e in REQUIRED if e not in members]
        if missing:
            raise ShardError(f"{path}: sample {key!r} lacks members {[f'{key}.{e}' for e in missing]}")
        unknown = set(members) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise ShardError(f"{path}: sample {key!r} has unexpected members {sorted(unknown)}")
        labels = _parse_labels(path, key, members["json"])
        size = tuple(labels["image_size"])
        image, control, mask = (_decode_png(path, key, e, members[e], size, e in images)
                                for e in ("png", "control.png", "mask.png"))  # fmt: skip
        depth = None
        if "depth.png" in members:
            depth = _decode_png(path, key, "depth.png", members["depth.png"], size, "depth.png" in images)
            depth = None if depth is None else depth.astype(np.float32) / 1000.0
        yield Sample(key=key, image=image, control=control, mask=mask, labels=labels, depth=depth)


def read_labels(path: str | Path, sha256: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, labels)`` of every sample of one shard, in shard order, without decoding an image:
    statistics over a training set (mean parameters, counts) read only the JSON members."""
    path = Path(path)
    for key, members in _members(path, _shard_bytes(path, sha256), lambda ext: ext == "json").items():
        if "json" not in members:
            raise ShardError(f"{path}: sample {key!r} lacks members ['{key}.json']")
        yield key, _parse_labels(path, key, members["json"])


def iter_folder(folder: str | Path, verify: bool = True) -> Iterator[Sample]:
    """Every sample of every shard listed in the folder's index, in shard order."""
    folder = Path(folder)
    index = read_index(folder)
    for name, entry in index.items():
        yield from read_shard(folder / name, entry["sha256"] if verify else None, entry.get("keys") if verify else None)
