import zipfile

import numpy as np
import pytest

from dreamer_core.io import atomic_path, load_npz, npz_bytes, write_npz_atomic


def test_npz_is_byte_reproducible_and_loads_without_pickle(tmp_path):
    arrays = {"b": np.arange(5, dtype=np.float32), "a": np.array(["x", "yy"])}
    assert npz_bytes(arrays) == npz_bytes(dict(reversed(list(arrays.items()))))
    write_npz_atomic(tmp_path / "x.npz", arrays)
    back = load_npz(tmp_path / "x.npz")
    assert np.array_equal(back["b"], arrays["b"]) and list(back["a"]) == ["x", "yy"]
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="pickled"):
        npz_bytes({"o": np.array([{"a": 1}], dtype=object)})


def test_failed_write_leaves_previous_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_files_get_the_permissions_of_a_plain_open(tmp_path):
    """Readable by the other users of a shared volume (``mkstemp`` alone gives 0600); durable
    writes land the same bytes."""
    import os
    import stat

    from dreamer_core.io import write_bytes_atomic

    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "a.bin", b"x")
        write_bytes_atomic(tmp_path / "b.bin", b"y", durable=True)
        (tmp_path / "plain.bin").write_bytes(b"z")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.bin": 0o644, "b.bin": 0o644, "plain.bin": 0o644}
    assert (tmp_path / "b.bin").read_bytes() == b"y" and not list(tmp_path.glob(".*.tmp"))


def test_a_folder_is_published_as_one_unit(tmp_path, monkeypatch):
    """The next version is built beside the published one and swapped in: a reader sees the old
    files or the new ones, never both; carried caches are links, so building leaves the old
    version as it was; a killed build's leftovers are cleared by the next."""
    from dreamer_core import io as pio

    target = tmp_path / "asset"
    (target / "cache").mkdir(parents=True)
    (target / "old-shard.tar").write_bytes(b"old")
    (target / "cache" / "c.parquet").write_bytes(b"cached")
    for exchange in (True, False):  # the atomic exchange, and the two-rename fallback (NFS)
        if not exchange:
            monkeypatch.setattr(pio, "_exchange", lambda a, b: False)
        (tmp_path / ".asset.staging").mkdir(exist_ok=True)
        (tmp_path / ".asset.staging" / "left-by-a-killed-run").write_bytes(b"x")
        stage = pio.staging_folder(target, carry=("cache",))
        assert sorted(p.name for p in stage.iterdir()) == ["cache"]
        (stage / f"new-{exchange}.tar").write_bytes(b"new")
        assert (target / "old-shard.tar").exists()  # published version untouched while building
        pio.publish_folder(stage, target)
        assert sorted(p.name for p in target.iterdir()) == ["cache", f"new-{exchange}.tar"]
        assert (target / "cache" / "c.parquet").read_bytes() == b"cached"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["asset"]  # no staging or old folder left
        (target / "old-shard.tar").write_bytes(b"old")


def test_a_settled_read_sees_one_version_and_fails_fast_on_a_folder_nobody_swaps(tmp_path):
    import dreamer_core.io as pio

    target = tmp_path / "asset"
    target.mkdir()
    (target / "a").write_text("1")
    (target / "b").write_text("1")

    def publish(value: str) -> None:
        stage = pio.staging_folder(target)
        for name in ("a", "b"):
            (stage / name).write_text(value)
        pio.publish_folder(stage, target)

    reads = []

    def read() -> tuple[str, str]:  # a second version is published between the two files, once
        first = (target / "a").read_text()
        if not reads:
            publish("2")
        reads.append(1)
        return first, (target / "b").read_text()

    assert pio.read_settled(target, read) == ("2", "2") and len(reads) == 2
    with pytest.raises(FileNotFoundError):
        pio.read_settled(target, lambda: (target / "missing").read_text())
    with pytest.raises(OSError, match="replaced by a new version 3 times"):
        pio.read_settled(target, lambda: publish("3"), attempts=3)
