"""Shards round-trip exactly; every kind of damage is reported with the shard's name."""

import io
import json
import tarfile

import numpy as np
import pytest
from torch.utils.data import DataLoader

from dreamer_core.datasets import shards
from dreamer_core.datasets.shards import (
    Sample,
    ShardError,
    index_file,
    index_keys,
    iter_folder,
    png_bytes,
    publish_shard,
    read_entry,
    read_index,
    read_labels,
    read_shard,
    update_index,
    write_shard,
)
from dreamer_core.datasets.torch_dataset import ShardDataset, ShardIterableDataset, collate


def make_sample(i: int, size: int = 16, depth: bool = True) -> Sample:
    rng = np.random.default_rng(i)
    labels = {
        "image_size": [size, size], "K": np.eye(3).tolist(), "R": np.eye(3).tolist(), "t": [0.0, 0.0, 3.0],
        "keypoints_2d": rng.uniform(0, size, (23, 3)).tolist(), "joints_3d": rng.normal(size=(23, 3)).tolist(),
        "bbox": [1.0, 2.0, 10.0, 12.0], "pose_id": f"pose_{i:06d}", "seed": i, "body_model": "anny",
        "params": {"body_pose": rng.normal(size=(21, 3)).tolist(), "shape": [0.5] * 6},
    }  # fmt: skip
    return Sample(
        key=f"s{i:06d}",
        image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        control=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        mask=rng.integers(0, 256, (size, size), dtype=np.uint8),
        labels=labels,
        depth=rng.uniform(1, 5, (size, size)).astype(np.float32) if depth else None,
    )


def write(folder, samples, name="shard-000000.tar"):
    publish_shard(folder, name, samples)
    return folder / name


def test_round_trip_is_exact_and_bytes_reproducible(tmp_path):
    samples = [make_sample(i) for i in range(5)]
    path = write(tmp_path, samples)
    back = list(iter_folder(tmp_path))
    assert [s.key for s in back] == [s.key for s in samples]
    for a, b in zip(samples, back, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.control, b.control)
        assert np.array_equal(a.mask, b.mask) and a.labels == b.labels
        assert np.allclose(a.depth, b.depth, atol=5e-4)  # millimetre quantisation
    first = path.read_bytes()
    write_shard(tmp_path / "again.tar", samples)
    assert (tmp_path / "again.tar").read_bytes() == first
    assert read_index(tmp_path)["shard-000000.tar"]["num_samples"] == 5


def test_truncated_shard(tmp_path):
    path = write(tmp_path, [make_sample(i) for i in range(3)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ShardError, match="shard-000000.tar.*(modified or truncated)"):
        list(iter_folder(tmp_path))
    with pytest.raises(ShardError, match="shard-000000.tar"):
        list(read_shard(path))  # without the index: still refused as a broken tar or PNG


def test_tampered_shard_is_caught_by_its_hash(tmp_path):
    path = write(tmp_path, [make_sample(0)])
    data = bytearray(path.read_bytes())
    data[1500] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="SHA-256"):
        list(iter_folder(tmp_path))


def raw_tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def members_of(sample: Sample) -> dict[str, bytes]:
    from dreamer_core.datasets.shards import _encode

    return {f"{sample.key}.{ext}": data for ext, data in _encode(sample).items()}


@pytest.mark.parametrize("bad_name", ["/etc/passwd", "../escape.json", "a/../../b.png"])
def test_unsafe_member_paths_are_refused(tmp_path, bad_name):
    members = members_of(make_sample(0))
    members[bad_name] = b"x"
    raw_tar(tmp_path / "bad.tar", members)
    with pytest.raises(ShardError, match="absolute path or '..'"):
        list(read_shard(tmp_path / "bad.tar"))


def test_missing_member(tmp_path):
    members = members_of(make_sample(0))
    del members["s000000.mask.png"]
    raw_tar(tmp_path / "m.tar", members)
    with pytest.raises(ShardError, match=r"lacks members \['s000000.mask.png'\]"):
        list(read_shard(tmp_path / "m.tar"))


def test_wrong_image_size(tmp_path):
    s = make_sample(0)
    s.labels["image_size"] = [32, 32]
    raw_tar(tmp_path / "w.tar", members_of(s))
    with pytest.raises(ShardError, match="labels say"):
        list(read_shard(tmp_path / "w.tar"))


def test_nan_label_and_corrupt_png(tmp_path):
    members = members_of(make_sample(0))
    lab = json.loads(members["s000000.json"])
    members["s000000.json"] = json.dumps(lab).replace('"seed": 0', '"seed": NaN').encode()
    raw_tar(tmp_path / "n.tar", members)
    with pytest.raises(ShardError, match="non-finite"):
        list(read_shard(tmp_path / "n.tar"))
    members = members_of(make_sample(0))
    members["s000000.control.png"] = b"\x89PNG\r\n\x1a\n garbage"
    raw_tar(tmp_path / "p.tar", members)
    with pytest.raises(ShardError, match="not a valid PNG"):
        list(read_shard(tmp_path / "p.tar"))


def _sparse_tar(path, members: dict[str, bytes], sparse_name: str, claimed: int) -> None:
    """A GNU tar whose ``sparse_name`` member claims ``claimed`` bytes while the file holds none of
    them (the trick that made ``read()`` return 50 MB from a 1.5 kB file)."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(sparse_name)
        info.type = tarfile.GNUTYPE_SPARSE
        info.size = 0
        header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
        # a sparse map of one 0-byte region and realsize = claimed (header offsets 386 and 483)
        header[386:398], header[398:410] = b"%011o\0" % 0, b"%011o\0" % 0
        header[483:495] = b"%011o\0" % claimed
        header[148:156] = b"        "
        header[148:155] = b"%06o\0" % (sum(header[:512]) & 0o777777)
        tar.fileobj.write(bytes(header[:512]))
        tar.offset += 512


def test_sparse_oversized_and_duplicate_members_are_refused(tmp_path, monkeypatch):
    members = members_of(make_sample(0))
    _sparse_tar(tmp_path / "sparse.tar", members, "s000000.depth.png", 50_000_000)
    assert tarfile.open(tmp_path / "sparse.tar").getmember("s000000.depth.png").isfile()  # tarfile's view
    with pytest.raises(ShardError, match="not a regular file"):
        list(read_shard(tmp_path / "sparse.tar"))
    with pytest.raises(ShardError, match="not a regular file"):
        list(read_labels(tmp_path / "sparse.tar"))
    raw_tar(tmp_path / "big.tar", members)
    monkeypatch.setattr(shards, "MAX_MEMBER_BYTES", 100)  # the cap, scaled down to this sample's members
    with pytest.raises(ShardError, match="more than any sample member"):
        list(read_shard(tmp_path / "big.tar"))
    monkeypatch.undo()
    with tarfile.open(tmp_path / "dup.tar", "w") as tar:
        for name, data in [*members.items(), ("s000000.json", members["s000000.json"])]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ShardError, match="appears twice"):
        list(read_shard(tmp_path / "dup.tar"))


def test_image_size_and_mode_are_checked_before_decoding(tmp_path):
    from PIL import Image

    members = members_of(make_sample(0))
    bomb = io.BytesIO()  # 81 megapixels (under Pillow's own limit) in 80 kB: never decompressed
    Image.new("L", (9000, 9000)).save(bomb, format="PNG")
    cases = [("mask.png", bomb.getvalue(), "9000x9000 L image"),
             ("control.png", members["s000000.mask.png"], "16x16 L image, its labels say 16x16 RGB")]  # fmt: skip
    for ext, data, why in cases:
        bad = {**members, f"s000000.{ext}": data}
        raw_tar(tmp_path / "i.tar", bad)
        with pytest.raises(ShardError, match=why):
            list(read_shard(tmp_path / "i.tar"))


@pytest.mark.parametrize(
    "edit, why",
    [
        (lambda lab: lab.update(image_size=5), "'image_size' is not a 2 array"),
        (lambda lab: lab.update(image_size=[0, 16]), "not two sides"),
        (lambda lab: lab.update(image_size=[16.5, 16]), "not two sides"),
        (lambda lab: lab.update(keypoints_2d=[[1.0, 2.0]] * 23), "'keypoints_2d' is not a nx3 array"),
        (lambda lab: lab.update(K="eye"), "'K' is not a 3x3 array"),
        (lambda lab: lab.pop("K"), "lacks 'K'"),
        (lambda lab: lab.update(joints_3d=[[True, 0.0, 0.0]]), "'joints_3d'"),
    ],
)
def test_labels_off_the_schema_are_a_shard_error(tmp_path, edit, why):
    members = members_of(make_sample(0))
    lab = json.loads(members["s000000.json"])
    edit(lab)
    members["s000000.json"] = json.dumps(lab).encode()
    raw_tar(tmp_path / "l.tar", members)
    with pytest.raises(ShardError, match=why):
        list(read_shard(tmp_path / "l.tar"))
    with pytest.raises(ShardError, match=why):
        list(read_labels(tmp_path / "l.tar"))


def test_deeply_nested_label_json_is_a_shard_error(tmp_path):
    members = members_of(make_sample(0))
    lab = members["s000000.json"].decode()
    members["s000000.json"] = (lab[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    raw_tar(tmp_path / "d.tar", members)
    with pytest.raises(ShardError, match="not valid JSON"):
        list(read_shard(tmp_path / "d.tar"))
    members["s000000.json"] = (lab[:-1] + ', "x": ' + "[" * 500 + "1e999" + "]" * 500 + "}").encode()
    raw_tar(tmp_path / "d.tar", members)
    with pytest.raises(ShardError, match="non-finite"):
        list(read_shard(tmp_path / "d.tar"))


@pytest.mark.parametrize("number", ["1e309", "-1E+0400", "Infinity", "1" + "0" * 250 + "e99", "9" * 320 + ".5"])
def test_every_overflowing_number_is_non_finite(tmp_path, number):
    """The reader skips the label walk when the text cannot hold a non-finite number: each way a
    JSON number overflows to infinity must still be caught, and named where it is."""
    members = members_of(make_sample(0))
    lab = members["s000000.json"].decode()
    members["s000000.json"] = (lab[:-1] + ', "x": {"y": [0.5, ' + number + "]}}").encode()
    raw_tar(tmp_path / "o.tar", members)
    with pytest.raises(ShardError, match=r"non-finite value at labels\.x\.y\[1\]"):
        list(read_shard(tmp_path / "o.tar"))


def test_writer_refuses_nan_labels(tmp_path):
    s = make_sample(0)
    s.labels["t"] = [float("nan"), 0.0, 0.0]
    with pytest.raises(ValueError):
        write_shard(tmp_path / "x.tar", [s])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_missing_index(tmp_path):
    with pytest.raises(ShardError, match="no shard index"):
        list(iter_folder(tmp_path))


def test_torch_datasets_and_collate(tmp_path):
    write(tmp_path, [make_sample(i) for i in range(4)], "shard-000000.tar")
    write(tmp_path, [make_sample(i) for i in range(4, 7)], "shard-000001.tar")
    ds = ShardDataset(tmp_path)
    assert len(ds) == 7
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["mask"].shape == (4, 1, 16, 16)
    assert batch["keypoints_2d"].shape == (4, 23, 3) and batch["param_body_pose"].shape == (4, 21, 3)
    assert batch["pose_id"] == [f"pose_{i:06d}" for i in range(4)]
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    streamed = list(DataLoader(ShardIterableDataset(tmp_path), batch_size=None, num_workers=2))
    assert sorted(s["key"] for s in streamed) == sorted(f"s{i:06d}" for i in range(7))


def test_remove_shards_keeps_the_named_ones(tmp_path):
    from dreamer_core.datasets.shards import remove_shards

    write(tmp_path, [make_sample(0)], "shard-000000.tar")
    write(tmp_path, [make_sample(1)], "shard-000007.tar")
    (tmp_path / "manifest-shard-000007.parquet").write_bytes(b"x")
    remove_shards(tmp_path, keep={"shard-000000"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar", "shard-000000.tar.index.json"]
    remove_shards(tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_index_lists_each_shards_keys_and_readers_hold_the_shard_to_them(tmp_path):
    write(tmp_path, [make_sample(i) for i in range(3)], "shard-000000.tar")
    write(tmp_path, [make_sample(i) for i in range(3, 5)], "shard-000001.tar")
    assert index_keys(tmp_path) == {"shard-000000.tar": ["s000000", "s000001", "s000002"],
                                    "shard-000001.tar": ["s000003", "s000004"]}  # fmt: skip
    entry = read_entry(tmp_path, "shard-000001.tar")
    assert entry["num_samples"] == 2 and entry == read_index(tmp_path)["shard-000001.tar"]
    # An index that lists other keys than the shard holds (same hash: the index was edited) is refused.
    f = tmp_path / index_file("shard-000000.tar")
    forged = json.loads(f.read_text())
    forged["shard-000000.tar"]["keys"] = ["s000002", "s000001", "s000000"]
    f.write_text(json.dumps(forged))
    with pytest.raises(ShardError, match="not the 3 keys its index lists"):
        list(iter_folder(tmp_path))


@pytest.mark.parametrize("edit", [
    lambda e: e.update(keys=["s000000", "s000000"]),  # a key twice
    lambda e: e.update(keys=["s000000"]),  # fewer keys than samples
    lambda e: e.update(num_samples="2"),
    lambda e: e.update(sha256="abc"),
    lambda e: e.update(keys=[0, 1]),
])  # fmt: skip
def test_a_malformed_index_entry_is_refused(tmp_path, edit):
    write(tmp_path, [make_sample(0), make_sample(1)])
    f = tmp_path / index_file("shard-000000.tar")
    entries = json.loads(f.read_text())
    edit(entries["shard-000000.tar"])
    f.write_text(json.dumps(entries))
    for read in (read_index, lambda d: read_entry(d, "shard-000000.tar")):
        with pytest.raises(ShardError, match="index entry is malformed"):
            read(tmp_path)


def test_an_uncommitted_shard_has_no_entry_and_old_indexes_fall_back_to_labels(tmp_path):
    write_shard(tmp_path / "shard-000000.tar", [make_sample(0)])  # killed before its index was written
    with pytest.raises(ShardError, match="not committed"):
        read_entry(tmp_path, "shard-000000.tar")
    # An index written before keys were recorded: the keys come from the shard's label members.
    digest = write_shard(tmp_path / "shard-000001.tar", [make_sample(1), make_sample(2)])
    update_index(tmp_path, {"shard-000001.tar": {"sha256": digest, "num_samples": 2}})
    assert index_keys(tmp_path) == {"shard-000001.tar": ["s000001", "s000002"]}


def test_index_keys_refuse_a_missing_or_truncated_shard_and_writers_refuse_a_key_twice(tmp_path):
    path = write(tmp_path, [make_sample(0), make_sample(1)])
    assert index_keys(tmp_path) == {"shard-000000.tar": ["s000000", "s000001"]}
    assert read_entry(tmp_path, "shard-000000.tar")["bytes"] == path.stat().st_size
    path.write_bytes(path.read_bytes()[:-512])
    with pytest.raises(ShardError, match="its index says"):
        index_keys(tmp_path)
    path.unlink()
    with pytest.raises(ShardError, match="listed in its index but unreadable"):
        index_keys(tmp_path)
    with pytest.raises(ShardError, match="index entry is malformed"):
        publish_shard(tmp_path, "shard-000001.tar", [make_sample(2), make_sample(2)])
    assert not (tmp_path / "shard-000001.tar").exists()


@pytest.mark.parametrize("pax", [{"GNU.sparse.size": "abc"}, {"GNU.sparse.map": "1,x"},
                                 {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}])  # fmt: skip
def test_malformed_pax_headers_are_a_shard_error(tmp_path, pax):
    members = members_of(make_sample(0))
    with tarfile.open(tmp_path / "p.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = pax if name.endswith(".json") else {}
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ShardError, match="not a valid tar shard"):
        list(read_shard(tmp_path / "p.tar"))


def test_huge_numbers_in_labels_and_deep_indexes_are_a_shard_error(tmp_path):
    members = members_of(make_sample(0))
    text = members["s000000.json"].decode()
    for big, why in (("1" * 5000, "not valid JSON"), (str(10**400), "'K' is not a 3x3")):
        members["s000000.json"] = text.replace('"K": [[', f'"K": [[{big}, ', 1).encode()
        raw_tar(tmp_path / "b.tar", members)
        with pytest.raises(ShardError, match=why):
            list(read_shard(tmp_path / "b.tar"))
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "shard-000000.tar.index.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ShardError, match="corrupt shard index"):
        read_index(tmp_path / "idx")


def test_a_refused_member_keeps_its_own_message(tmp_path):
    """A member refused while the tar is walked says why (and the fix), not "not a valid tar"."""
    members = members_of(make_sample(0))
    members["../escape.json"] = b"x"
    raw_tar(tmp_path / "bad.tar", members)
    with pytest.raises(ShardError) as info:
        list(read_shard(tmp_path / "bad.tar"))
    assert "not a valid tar" not in str(info.value) and "delete it" in str(info.value)


def test_a_reader_decodes_only_the_images_it_asks_for_and_still_checks_the_others(tmp_path):
    s = make_sample(0)
    raw_tar(tmp_path / "a.tar", members_of(s))
    (got,) = read_shard(tmp_path / "a.tar", images=("png", "mask.png"))
    assert got.control is None and np.array_equal(got.image, s.image) and np.array_equal(got.mask, s.mask)
    members = members_of(s)
    members["s000000.control.png"] = png_bytes(np.zeros((8, 8, 3), np.uint8))  # a skipped member of the wrong size
    raw_tar(tmp_path / "b.tar", members)
    with pytest.raises(ShardError, match="labels say"):
        list(read_shard(tmp_path / "b.tar", images=("png",)))
