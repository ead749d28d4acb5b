"""Backfill pose_bank -> reference_renders (one partition per shard of each split) with 2 worker
processes through the command line, then one control_renders partition and the models in-process
on those renders; every check reads its own partition only, and compares keypoints with masks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dreamer_core.datasets.build import read_manifest
from dreamer_core.datasets.reference_plan import reference_version
from dreamer_core.datasets.torch_dataset import ShardDataset
from dreamer_core.errors import PipelineInputError
from orchestration.definitions import ASSETS, CHECKS
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import ControlRendersConfig, DPOConfig, GeneratorConfig, PoseDetectorConfig

REPO = Path(__file__).resolve().parents[2]
SMALL_REFERENCE = {"num_train": 24, "num_val": 8, "num_test": 8, "multiview_subjects": 3, "multiview_heldout": 1,
                   "views_per_ring": 4, "samples_per_shard": 10}  # fmt: skip
PARTITIONS = ["train-000000", "train-000001", "train-000002", "val-000000", "test-000000", "multiview-000000",
              "multiview-000001"]  # fmt: skip


def _cli(root: Path, *args: str, codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PD_", "MLFLOW_", "DAGSTER_", "DVC_"))}
    env.update(PD_PARAMS=str(root / "params.yaml"), PD_DATA_DIR=str(root / "data"), DAGSTER_HOME=str(root / "cli"),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'cli.db'}", PD_DVC="off", PD_PROFILE="tiny",
               PD_MLFLOW_ARTIFACT_ROOT=(root / "cli-artifacts").as_uri())  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode in codes, f"cli {args}: {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _backfill_reference_renders(root: Path) -> None:
    """reference_renders has one partition per shard (its plan from params.yaml); a 2-worker backfill
    renders them all, each run checks its own partition, and readers see a version only when every
    partition is committed. A partition rendered again alone, in one process, has the same bytes."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = "tiny"
    raw["tiny"]["pose_bank"].update(num_poses=40, candidate_factor=2)
    raw["tiny"]["render"].update(image_size=48, supersample=2)
    raw["tiny"]["reference_renders"].update(SMALL_REFERENCE)
    raw["tiny"]["dpo"].update(heldout_controls=4)
    (root / "cli").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    _cli(root, "materialize", "pose_bank")
    out = _cli(root, "materialize", "reference_renders", "--workers", "2").stdout
    assert [f"materialized reference_renders[{p}]: ok" in out for p in PARTITIONS] == [True] * len(PARTITIONS), out
    status = _cli(root, "status", codes=(0, 1)).stdout  # 1: the downstream assets are not materialized
    assert "reference_renders: materialized" in status and ", 0 failed," in status, status
    folder = root / "data" / "reference_renders"
    version = reference_version(folder)
    before = (folder / "multiview" / "shard-000001.tar").read_bytes()
    (folder / "part-multiview-000001.json").unlink()  # as a killed run leaves it
    with pytest.raises(PipelineInputError, match=r"1 of 7 partitions are not materialized \(multiview-000001\)"):
        reference_version(folder)
    _cli(root, "materialize", "reference_renders", "--partition", "multiview-000001")
    assert (folder / "multiview" / "shard-000001.tar").read_bytes() == before and reference_version(folder) == version
    records = [json.loads((folder / f"part-{p}.json").read_text()) for p in PARTITIONS]
    assert [(r["split"], r["start"], r["stop"], r["num_samples"]) for r in records] == [
        ("train", 0, 10, 10), ("train", 10, 20, 10), ("train", 20, 24, 4), ("val", 0, 8, 8), ("test", 0, 8, 8),
        ("multiview", 0, 2, 8), ("multiview", 2, 3, 4)]  # fmt: skip
    assert all("skipped" in r for r in records)
    for p in PARTITIONS:  # every partition's preview grid is a PNG
        assert (folder / f"preview-{p}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
    _stale_records_fail_the_version_and_the_check(root / "data")


def _stale_records_fail_the_version_and_the_check(data: Path) -> None:
    """A record rendered with other settings (a changed seed, num_train or pose bank) must not pass
    as part of the dataset: the version names it stale and its partition's check fails, while a
    neighbour's check still passes; a record for another range fails the same way."""
    from orchestration.assets.renders import check_reference_partition

    storage, folder = StorageResource(root=str(data)), data / "reference_renders"
    assert all(check_reference_partition(storage, p).passed for p in PARTITIONS)
    path = folder / "part-train-000001.json"
    good = path.read_text()
    for change in ({"rendered_with": "another-seed"}, {"start": 12}):
        path.write_text(json.dumps({**json.loads(good), **change}))
        with pytest.raises(PipelineInputError, match=r"1 were rendered with other settings.*\(train-000001\)"):
            reference_version(folder)
        bad = check_reference_partition(storage, "train-000001")
        assert not bad.passed and bad.metadata["matches_plan"].value is False and bad.metadata["committed"].value
        assert check_reference_partition(storage, "train-000000").passed
    path.write_text(good)


@pytest.mark.slow
def test_render_assets(tmp_path, monkeypatch):
    _backfill_reference_renders(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    resources = {
        "storage": StorageResource(root=str(tmp_path / "data")),
        "body_model": BodyModelResource(),
        "mlflow": MLflowResource(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=(tmp_path / "artifacts").as_uri()
        ),  # fmt: skip
        "dvc": DVCResource(enabled=False),
    }
    instance = dg.DagsterInstance.get()
    small = dict(image_size=48, supersample=2)
    ctl = dg.materialize([*ASSETS, *CHECKS], selection=["control_renders"], partition_key="shard-000001",
                         instance=instance, resources=resources,
                         run_config=dg.RunConfig(ops={"control_renders": ControlRendersConfig(samples_per_shard=12,
                                                                                               **small)}))  # fmt: skip
    assert ctl.success
    meta = {k: v.value for k, v in ctl.asset_materializations_for_node("control_renders")[0].metadata.items()}
    assert meta["num_samples"] == 12
    # The partition's check ran in the partition's run, for that partition only.
    evals = [e.asset_check_evaluation_data for e in ctl.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(e.check_name, e.partition, e.passed) for e in evals] == [("control_renders_valid", "shard-000001", True)]
    _partition_check_reads_its_own_files_only(tmp_path / "data")

    data = tmp_path / "data"
    # Held out means held out: each split renders its own poses; controls (DPO pairs, generator
    # tuning) hold training poses only.
    from dreamer_core.poses.bank import read_pose_bank

    bank = read_pose_bank(data / "pose_bank")
    split_of = dict(zip(bank.arrays["pose_id"].tolist(), bank.arrays["split"].tolist(), strict=True))
    assert set(split_of.values()) == {"train", "val", "test"}
    ref = read_manifest(data / "reference_renders")
    for split in ("train", "val", "test"):
        assert {split_of[p] for p in ref.pose_id[ref.split == split]} == {split}
    assert {split_of[p] for p in read_manifest(data / "control_renders").pose_id} == {"train"}
    manifest = read_manifest(data / "reference_renders")
    assert sorted(manifest.split.unique()) == ["multiview", "test", "train", "val"]
    assert manifest.key.is_unique and len(manifest) == 24 + 8 + 8 + 12
    # Train and test poses are disjoint (held-out poses), and held-out multiview subjects exist.
    train_ids = set(manifest.pose_id[manifest.split == "train"])
    assert not train_ids & set(manifest.pose_id[manifest.split == "test"])
    assert manifest.heldout.fillna(False).astype(bool).sum() == 4
    assert (data / "control_renders" / "shard-000001.tar").is_file()
    assert len(ShardDataset(data / "control_renders")) == 12

    # The detector trains on these renders, reports held-out scores and saves a reloadable checkpoint.
    det = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["pose_detector"],
        instance=instance,
        resources=resources,
        run_config=dg.RunConfig(
            ops={"pose_detector": PoseDetectorConfig(steps=30, batch_size=8, width=16, judge_steps=10)}
        ),
    )
    assert det.success
    meta = {k: v.value for k, v in det.asset_materializations_for_node("pose_detector")[0].metadata.items()}
    assert 0.0 <= meta["heldout_oks"] <= 1.0 and 0.0 <= meta["heldout_pck"] <= 1.0
    assert (data / "pose_detector" / "model.safetensors").is_file()
    evaluated = [e for e in det.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    names = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data for e in evaluated}
    assert set(names) == {"pose_detector_reloads", "pose_detector_beats_baseline"}
    assert names["pose_detector_reloads"].passed  # a contract: holds even after 30 steps
    assert names["pose_detector_beats_baseline"].severity == dg.AssetCheckSeverity.WARN  # a target
    assert (data / "pose_detector" / "judge" / "model.safetensors").is_file()

    _generation_assets(data, instance, resources)

    # The full profile's backend: a pretrained ViTPose (here a tiny random one of the real class).
    from tests.dreamer_core.keypoints.test_vitpose import save_tiny_vitpose

    weights = save_tiny_vitpose(tmp_path / "vitpose")
    vit = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["pose_detector"],
        instance=instance,
        resources=resources,
        run_config=dg.RunConfig(ops={"pose_detector": PoseDetectorConfig(backend="vitpose", weights=str(weights))}),
    )
    assert vit.success
    from dreamer_core.keypoints.detectors import load_detector
    from dreamer_core.keypoints.vitpose import VitPoseDetector

    assert isinstance(load_detector(data / "pose_detector"), VitPoseDetector)  # the heatmap files were replaced


def _generation_assets(data, instance, resources):
    """generator -> dpo_pairs -> dpo_generator on the small renders above: the metadata later
    checks read, the files, and the checks' evaluations (a few steps cannot promise quality;
    the quality claims are measured by `make demo` and the learning tests)."""
    run_config = dg.RunConfig(ops={
        "generator": GeneratorConfig(steps=4, batch_size=4, channels=[16, 32], eval_samples=6, sample_steps=2),
        "dpo_pairs": DPOConfig(num_controls=6, num_candidates=2, min_gap=0.0, min_winner_oks=0.0),
        "dpo_generator": DPOConfig(steps=2, batch_pairs=2, heldout_controls=4, heldout_seeds=2, lora_rank=2),
    })  # fmt: skip
    gen = dg.materialize([*ASSETS, *CHECKS], selection=["generator", "dpo_pairs", "dpo_generator"],
                         instance=instance, resources=resources, run_config=run_config)  # fmt: skip
    assert gen.success
    meta = {n: {k: v.value for k, v in gen.asset_materializations_for_node(n)[0].metadata.items()}
            for n in ("generator", "dpo_pairs", "dpo_generator")}  # fmt: skip
    assert 0 <= meta["generator"]["oks_matched"] <= 1 and 0 <= meta["generator"]["oks_shuffled"] <= 1
    assert (meta["dpo_pairs"]["num_controls"], meta["dpo_pairs"]["num_candidates"]) == (6, 12)
    assert 0 < meta["dpo_pairs"]["num_pairs"] <= 6
    for key in ("heldout_oks_before", "heldout_oks_after", "heldout_oks_delta_std", "judge_oks_before",
                "judge_oks_after"):  # fmt: skip
        assert key in meta["dpo_generator"]
    for f in ("generator/model.safetensors", "dpo_pairs/pairs.parquet", "dpo_pairs/candidates/shard-000000.tar",
              "dpo_generator/lora.safetensors"):  # fmt: skip
        assert (data / f).is_file(), f
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data for e in gen.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"}  # fmt: skip
    assert set(checks) == {"generator_reloads", "generator_follows_control", "dpo_generator_reloads",
                           "dpo_improves_heldout_oks"}  # fmt: skip
    assert checks["generator_reloads"].passed and checks["dpo_generator_reloads"].passed  # contracts
    for target in ("generator_follows_control", "dpo_improves_heldout_oks"):  # a few steps promise no quality
        assert checks[target].severity == dg.AssetCheckSeverity.WARN


def _partition_check_reads_its_own_files_only(data):
    """A neighbour with a truncated shard and a malformed index does not touch the good
    partition's check (it never opens them); the neighbour's own check fails with the reason."""
    import shutil

    from orchestration.assets.shard_checks import shard_partition_check

    folder = data / "control_renders"
    good = (folder / "shard-000001.tar").read_bytes()
    (folder / "shard-000000.tar").write_bytes(good[: len(good) // 2])
    (folder / "shard-000000.tar.index.json").write_text('{"shard-000000.tar": {"sha256": "x"}}')
    shutil.copy(folder / "manifest-shard-000001.parquet", folder / "manifest-shard-000000.parquet")
    storage = StorageResource(root=str(data))
    assert shard_partition_check(storage, "control_renders", "shard-000001").passed
    bad = shard_partition_check(storage, "control_renders", "shard-000000")
    assert not bad.passed and "index entry is malformed" in bad.metadata["error"].value
    (folder / "shard-000000.tar.index.json").unlink()
    uncommitted = shard_partition_check(storage, "control_renders", "shard-000000")
    assert not uncommitted.passed and "not committed" in uncommitted.metadata["error"].value
    for name in ("shard-000000.tar", "manifest-shard-000000.parquet"):
        (folder / name).unlink()
