"""The pose bank end to end on the real body models: counts, determinism, diversity, sources."""

import hashlib

import numpy as np
import pytest

from dreamer_core.bodies import load_body_model
from dreamer_core.config import BodyModelSettings, load_settings
from dreamer_core.errors import PipelineInputError
from dreamer_core.poses.bank import build_pose_bank, read_pose_bank, split_counts, write_pose_bank
from dreamer_core.poses.splits import assign_splits


@pytest.fixture()
def settings():
    return load_settings(profile="tiny").pose_bank.replace(num_poses=40, candidate_factor=3)


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_build_write_read_round_trip(tmp_path, settings, anny_body):
    bank = build_pose_bank(settings, anny_body, seed=11)
    write_pose_bank(bank, tmp_path / "a")
    again = read_pose_bank(tmp_path / "a")
    assert len(again) == 40 and again.table.pose_id.is_unique
    assert list(again.table.columns) == ["pose_id", "source", "family", "source_ref", "body_model", "split",
                                         "global_orient", "body_pose", "shape"]  # fmt: skip
    assert np.array_equal(again.table.split.to_numpy(), again.arrays["split"])
    # The split the bank stores is the seeded split of its pose ids (the one every asset reads).
    expected = assign_splits(again.arrays["pose_id"], settings.val_fraction, settings.test_fraction, seed=11)
    assert np.array_equal(again.arrays["split"], expected)
    assert all(np.array_equal(again.rows(s), np.flatnonzero(expected == s)) for s in ("train", "val", "test"))
    assert np.allclose(np.stack(again.table.body_pose.to_numpy()).reshape(40, 21, 3), again.arrays["body_pose"])
    assert again.arrays["shape"].shape == (40, 6) and (again.arrays["shape"] >= 0).all()
    assert bank.stats["nn_dist_mm"] >= bank.stats["nn_dist_random_mm"]
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "a").iterdir())


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, settings, anny_body):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_pose_bank(build_pose_bank(settings, anny_body, seed=seed), tmp_path / name)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["poses.parquet"] != digest(tmp_path / "c")["poses.parquet"]


def test_amass_and_anatomical_mix(tmp_path, settings, anny_body):
    folder = tmp_path / "amass"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "walk.npz", poses=rng.uniform(-0.4, 0.4, (300, 156)))
    np.savez(folder / "broken.npz", poses=np.full((10, 156), np.nan))
    settings = settings.replace(
        amass_path=str(folder), amass_stride=2, source_weights={"anatomical": 1.0, "amass": 1.0}
    )
    bank = build_pose_bank(settings, anny_body, seed=1)
    assert bank.stats["counts_per_source"] == {"anatomical": 20, "amass": 20}
    assert len(bank.errors) == 1 and "broken.npz" in bank.errors[0]
    assert all(r.startswith("walk.npz:") for r in bank.table.source_ref[bank.table.source == "amass"])


def test_smpl_backend_bank_has_betas(settings, smpl_dir):
    body = load_body_model(BodyModelSettings(name="smpl", model_dir=str(smpl_dir)))
    bank = build_pose_bank(settings, body, seed=2)
    assert bank.arrays["shape"].shape == (40, 10)
    assert np.abs(bank.arrays["shape"]).max() <= settings.betas_range
    assert set(bank.table.body_model) == {"smpl"}


def test_split_counts_sums_exactly():
    assert split_counts(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert split_counts(7, {"a": 1.0, "b": 0.0}) == {"a": 7}


def test_read_missing_bank(tmp_path):
    with pytest.raises(PipelineInputError, match="materialize the pose_bank"):
        read_pose_bank(tmp_path)


def test_a_bank_swapped_in_while_it_is_read_is_read_again_whole(tmp_path, settings, anny_body, monkeypatch):
    """A reader that took the table of the old bank when ``publish_folder`` put a new one in place
    must not pair it with the new bank's arrays: the read starts again on the new version."""
    import dreamer_core.poses.bank as bank_module
    from dreamer_core.io import publish_folder, staging_folder

    folder = tmp_path / "pose_bank"
    write_pose_bank(build_pose_bank(settings, anny_body, seed=1), folder)
    stage = staging_folder(folder)
    write_pose_bank(build_pose_bank(settings.replace(num_poses=30), anny_body, seed=2), stage)
    read_table, swaps = bank_module.pq.read_table, []

    def read_then_swap(*args, **kwargs):  # the new version lands between the table and the arrays
        table = read_table(*args, **kwargs)
        if not swaps:
            swaps.append(publish_folder(stage, folder))
        return table

    monkeypatch.setattr(bank_module.pq, "read_table", read_then_swap)
    bank = read_pose_bank(folder)
    assert swaps and len(bank) == 30 and np.array_equal(bank.table.pose_id.to_numpy(), bank.arrays["pose_id"])
