"""Group ``mining``: round-1 shards (random poses), the hardness model fitted on them,
and round-2 shards (the poses predicted hardest). Shards are Dagster dynamic partitions, so a
backfill fans out and a schedule can add shards with fresh seeds."""

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from dreamer_core.config import RoundGenerationsSettings
from dreamer_core.datasets.build import write_manifest
from dreamer_core.datasets.shards import index_file, publish_shard, read_index
from dreamer_core.dpo.lora import load_generator_with_lora
from dreamer_core.fingerprint import file_sha256
from dreamer_core.generate.prompts import prompts_for
from dreamer_core.io import load_npz, write_json_atomic
from dreamer_core.keypoints.detectors import load_detector
from dreamer_core.mining.hardness import (
    PREDICTIONS_FILE,
    HardnessModel,
    bin_names,
    difficulty,
    pose_features,
    read_draw_scores,
)
from dreamer_core.mining.rounds import draw_hard, draw_random, generate_shard
from dreamer_core.poses.bank import PoseBank, read_pose_bank
from dreamer_core.threads import fixed_threads
from dreamer_core.viz import figure_png, sample_grid_png
from orchestration.assets.common import (
    asset_step,
    dvc_meta,
    file_hash,
    log_progress,
    publish_png,
    write_parquet,
)
from orchestration.assets.shard_checks import shard_partition_check
from orchestration.assets.tracked import AssetRun
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import HardnessConfig, RoundGenerationsConfig

ROUND1_SHARDS = dg.DynamicPartitionsDefinition(name="round1_shards")
ROUND2_SHARDS = dg.DynamicPartitionsDefinition(name="round2_shards")
ROUND_PARTITIONS = {1: ROUND1_SHARDS, 2: ROUND2_SHARDS}

# A round shard depends on the whole of reference_renders (what its detector and generator learned
# from), not on a partition of that name: the partition sets differ, so the default identity
# mapping is invalid (`dagster definitions validate` rejects the code location without this).
ALL_REFERENCE_RENDERS = dg.AssetDep("reference_renders", partition_mapping=dg.AllPartitionMapping())


def round_asset_name(round_index: int) -> str:
    return f"round{round_index}_generations"


def training_pool(bank: PoseBank) -> np.ndarray:
    """Bank rows of training poses: generated training data never holds a validation or test pose
    (the benchmarks report on test poses, defaults are tuned on validation poses)."""
    pool = bank.rows("train")
    if len(pool) == 0:
        raise dg.Failure("the pose bank has no training pose; grow pose_bank")
    return pool


def committed_shards(storage: StorageResource, asset: str, partitions: list[str]) -> list[str]:
    """Shards of ``asset`` that finished (their index file is written last) and whose partition
    still exists; a shard killed half-way has no index and is not read."""
    folder = storage.asset_dir(asset)
    if not any(folder.glob("*.index.json")):  # nothing finished yet; a malformed index raises
        return []
    index = read_index(folder)
    return [name.removesuffix(".tar") for name in index if name.removesuffix(".tar") in set(partitions)]


def round_manifest(storage: StorageResource, asset: str, shards: list[str]) -> pd.DataFrame:
    """The manifest rows of finished ``shards``, each part read once and checked against the hash its
    shard's index records (a part of a rewrite that has not finished, whose index is gone or does
    not match, is refused, never mixed in)."""
    folder = storage.asset_dir(asset)
    index = read_index(folder) if shards else {}
    parts = []
    for s in shards:
        path = folder / f"manifest-{s}.parquet"
        data = path.read_bytes()
        want = index.get(f"{s}.tar", {}).get("manifest_sha256", "none")
        if hashlib.sha256(data).hexdigest() != want:
            raise dg.Failure(f"{path} is not the manifest its shard's index records ({want[:12]}; a run of "
                             f"{asset}[{s}] is rewriting it or did not finish): re-materialize that "
                             "partition")  # fmt: skip
        parts.append(pd.read_parquet(io.BytesIO(data)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _publish_round_shard(out: Path, shard: str, rows: list[dict[str, Any]], samples: list[Any]) -> None:
    """Old index out, then manifest, then shard, then index (with the manifest's hash): the index
    is the commit mark readers go by, so a run killed at any point leaves nothing a reader accepts
    (never an old shard vouched for beside a new manifest); a rerun rewrites it all."""
    (out / index_file(f"{shard}.tar")).unlink(missing_ok=True)
    write_manifest(out / f"manifest-{shard}.parquet", rows)
    publish_shard(out, f"{shard}.tar", samples, {"manifest_sha256": file_sha256(out / f"manifest-{shard}.parquet")})


@fixed_threads()  # loading (the LoRA merge, the body model) and generating: bytes independent of the process's threads
def _generate(context: dg.AssetExecutionContext, config: Any, round_index: int, body_model: BodyModelResource,
              storage: StorageResource, mlflow: MLflowResource, dvc: DVCResource) -> dg.MaterializeResult:  # fmt: skip
    settings = config.settings()
    rs, rg = settings["render"], settings["round_generations"]
    shard, asset = context.partition_key, round_asset_name(round_index)
    out = storage.asset_dir(asset)
    body, renderer = body_model.load_with_renderer(config.torch_device())
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    rows, extra, inputs = _draw(context, storage, bank, rg, config.seed, shard, round_index)
    params = {**settings, "seed": config.seed, "round": round_index}
    with AssetRun(context, mlflow, dvc, params, inputs) as tracked:
        t0 = time.perf_counter()
        device = config.torch_device()
        generator = load_generator_with_lora(storage.asset_dir("generator"), storage.asset_dir("dpo_generator"), device)
        detector = load_detector(storage.asset_dir("pose_detector"), device)
        context.log.info(f"{shard}: generating {len(rows)} samples (round {round_index})")
        result = generate_shard(body, renderer, bank, rows, rs, generator, detector, config.seed, round_index, shard,
                                rg.batch_size, lambda keys: prompts_for(config.seed, keys),
                                log_progress(context, f"{shard} generated"), extra)  # fmt: skip
        seconds = time.perf_counter() - t0
        for row in result.rows:
            row["family"] = str(bank.table.family.iloc[row["bank_row"]])
        picks = result.samples[:: max(1, len(result.samples) // 6)][:6]
        png = sample_grid_png(
            [[s.control, s.image] for s in picks], [np.asarray(s.labels["keypoints_2d"]) for s in picks]
        )
        (out / index_file(f"{shard}.tar")).unlink(missing_ok=True)  # the old shard is no longer vouched for
        publish_png(out, f"preview-{shard}.png", png, tracked.run)  # before the index: no new shard, old preview
        _publish_round_shard(out, shard, result.rows, result.samples)
        metrics = {"num_samples": len(result.samples), "mean_oks": float(np.nanmean(result.oks)),
                   "images_per_second": len(result.samples) / max(seconds, 1e-9)}  # fmt: skip
        if extra:
            metrics["mean_predicted_oks"] = float(extra["predicted_oks_at_draw"].mean())
        tracked.run.log_metrics(metrics)
        context.log.info(
            f"{shard}: {len(result.samples)} samples in {seconds:.1f} s, mean OKS {metrics['mean_oks']:.3f}"
        )
        return tracked.result(out / f"{shard}.tar", (png, "control | generated (label keypoints)"), round=round_index,
                              **metrics, unique_poses=len(set(rows.tolist())), seconds=round(seconds, 1))  # fmt: skip


def _draw(context: dg.AssetExecutionContext, storage: StorageResource, bank: PoseBank,
          rg: RoundGenerationsSettings, seed: int, shard: str,
          round_index: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:  # fmt: skip
    """The shard's bank rows (round 1 at random, round 2 the predicted hardest), the per-sample
    columns the draw adds to the manifest, and the hashes of the inputs the draw read."""
    pool = training_pool(bank)
    inputs = {"dpo_generator": file_hash(storage, "dpo_generator", "lora.json"),
              "pose_detector": file_hash(storage, "pose_detector", "config.json")}  # fmt: skip
    if round_index == 1:
        return draw_random(pool, rg.samples_per_shard, seed, shard), {}, inputs
    # Out-of-sample scores only: out-of-fold for poses round 1 saw, the full model for the rest.
    predicted, oof = read_draw_scores(storage.asset_dir("hardness_model"), bank.arrays["pose_id"])
    rows = draw_hard(pool, predicted, rg.hard_pool_fraction, rg.samples_per_shard, seed, shard)
    inputs["hardness_model"] = file_hash(storage, "hardness_model", "metrics.json")
    context.log.info(f"{shard}: drawing from the {rg.hard_pool_fraction:.0%} of {len(pool)} training poses "
                     f"predicted hardest (mean predicted OKS {predicted[rows].mean():.3f} vs "
                     f"{predicted[pool].mean():.3f} over all; {oof[rows].mean():.0%} of the draws seen in "
                     "round 1, scored out of fold)")  # fmt: skip
    return rows, {"predicted_oks_at_draw": predicted[rows], "predicted_out_of_fold": oof[rows]}, inputs


@dg.asset(
    group_name="mining",
    deps=["pose_bank", ALL_REFERENCE_RENDERS, "dpo_generator", "pose_detector"],
    partitions_def=ROUND1_SHARDS,
    kinds={"pytorch", "warp"},
    pool="gpu",
    metadata=dvc_meta(params=["seed", "render", "round_generations"]),
    description="Round 1, one shard per partition: training poses drawn at random, their control renders, "
    "DPO-generator samples with per-sample seeds, and OKS of the pose detector against the labels.",
)
@asset_step
def round1_generations(
    context: dg.AssetExecutionContext,
    config: RoundGenerationsConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    return _generate(context, config, 1, body_model, storage, mlflow, dvc)


@dg.asset(
    group_name="mining",
    deps=["round1_generations", "pose_bank"],
    kinds={"scikitlearn"},
    metadata=dvc_meta(params=["seed", "hardness_model"]),  # fmt: skip
    description="Gradient-boosted regressor from pose features (parameters, world skeleton, view-averaged "
    "self-occlusion / foreshortening / limb crossings, joint-limit margins) to the OKS round-1 samples reached, "
    "cross-fitted by pose: out-of-fold predictions for every round-1 pose (what round 2 ranks by), held-out "
    "MAE / R^2 / Spearman against the mean of the training folds, difficulty bins over the pose bank.",
)
@asset_step
def hardness_model(
    context: dg.AssetExecutionContext,
    config: HardnessConfig,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    hs = config.settings()["hardness_model"]
    out = storage.asset_dir("hardness_model")
    shards = committed_shards(storage, "round1_generations",
                              context.instance.get_dynamic_partitions(ROUND1_SHARDS.name))  # fmt: skip
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    rows, sample_rows = _round1_samples(storage, bank, shards)
    features = pose_features(bank.arrays)
    params = {"hardness_model": hs, "seed": config.seed, "shards": shards}
    with AssetRun(context, mlflow, dvc, params) as tracked:
        model = HardnessModel(hs, config.seed)
        metrics = model.fit(features[sample_rows], rows.oks.to_numpy(dtype=np.float64), rows.pose_id.to_numpy())
        model.save(out)
        table, counts = _prediction_table(model, features, bank, hs.bins)
        write_parquet(out / PREDICTIONS_FILE, table)
        measured = rows.groupby("family").oks.mean()
        metrics["num_out_of_fold_poses"] = int(table.out_of_fold.sum())
        write_json_atomic(out / "metrics.json", {**metrics, "difficulty_counts": counts, "num_shards": len(shards)})
        png = _hardness_png(model.targets, model.oof, measured, table.groupby("family").predicted_oks.mean())
        publish_png(out, "preview.png", png, tracked.run)
        tracked.run.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, float | int)})
        context.log.info(f"hardness model, {hs.folds}-fold cross-fitted on {metrics['num_samples']} samples of "
                         f"{metrics['num_poses']} poses: held-out MAE {metrics['heldout_mae']:.4f} vs mean "
                         f"{metrics['baseline_mae']:.4f}, R^2 {metrics['heldout_r2']:.3f}, Spearman "
                         f"{metrics['heldout_spearman']:.3f} (per pose {metrics['heldout_pose_spearman']:.3f}); "
                         f"bins {counts}")  # fmt: skip
        by_family = dg.MetadataValue.json({k: round(float(v), 4) for k, v in measured.items()})
        return tracked.result(out, (png, "out-of-fold predicted vs measured OKS per round-1 pose | OKS by family"),
                              **metrics, difficulty_counts=dg.MetadataValue.json(counts),
                              mean_oks_by_family=by_family)  # fmt: skip


def _round1_samples(storage: StorageResource, bank: PoseBank, shards: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Round 1's manifest rows of finished shards and their bank rows; fails on poses the bank
    no longer holds or that are not training poses."""
    rows = round_manifest(storage, "round1_generations", shards)
    if rows.empty:
        raise dg.Failure("round1_generations has no finished shards; materialize (backfill) its partitions first")
    index = {p: i for i, p in enumerate(bank.arrays["pose_id"])}
    missing = sorted(set(rows.pose_id) - set(index))
    if missing:
        raise dg.Failure(f"{len(missing)} round-1 poses (e.g. {missing[0]}) are not in the pose bank: the bank "
                         "changed since round 1; re-materialize round1_generations")  # fmt: skip
    if leaked := bank.not_in_split(rows.pose_id):
        raise dg.Failure(f"{len(leaked)} round-1 poses (e.g. {leaked[0]}) are validation or test poses (shards of an "
                         "older split): re-materialize round1_generations")  # fmt: skip
    return rows, np.array([index[p] for p in rows.pose_id])


def _prediction_table(model: HardnessModel, features: np.ndarray, bank: PoseBank,
                      bins: tuple[float, ...]) -> tuple[pd.DataFrame, dict[str, int]]:  # fmt: skip
    """Per bank pose: the score round 2 draws by, whether it is out of fold, the full model's
    prediction, its difficulty bin and what round 1 measured; and the poses per bin."""
    scores, oof = model.draw_scores(features, bank.arrays["pose_id"])
    difficulty_bins = difficulty(scores, bins)
    counts = {name: int((difficulty_bins == name).sum()) for name in bin_names(bins)}
    seen = pd.DataFrame({"pose_id": model.pose_ids, "round1_samples": model.weights.astype(int),
                         "measured_oks": model.targets})  # fmt: skip
    table = pd.DataFrame({"pose_id": bank.arrays["pose_id"].astype(str), "family": bank.table.family.to_numpy(),
                          "predicted_oks": scores, "out_of_fold": oof, "predicted_oks_full": model.predict(features),
                          "difficulty": difficulty_bins}).merge(seen, on="pose_id", how="left")  # fmt: skip
    table["round1_samples"] = table.round1_samples.fillna(0).astype(int)
    return table, counts


def _hardness_png(true: np.ndarray, pred: np.ndarray, measured: pd.Series, predicted: pd.Series) -> bytes:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=100)
    a.scatter(true, pred, s=8, alpha=0.6)
    a.plot([0, 1], [0, 1], "k--", lw=0.8)
    a.set_xlabel("measured mean OKS (round-1 pose)")
    a.set_ylabel("out-of-fold predicted OKS")
    frame = pd.DataFrame({"measured (round 1)": measured, "predicted (bank)": predicted})
    frame.plot.bar(ax=b, rot=30)
    b.set_ylabel("mean OKS")
    fig.tight_layout()
    return figure_png(fig)


@dg.asset(
    group_name="mining",
    deps=["hardness_model", "pose_bank", ALL_REFERENCE_RENDERS, "dpo_generator", "pose_detector"],
    partitions_def=ROUND2_SHARDS,
    kinds={"pytorch", "warp"},
    pool="gpu",
    metadata=dvc_meta(params=["seed", "render", "round_generations"]),
    description="Round 2, one shard per partition: training poses drawn from those the current hardness model "
    "predicts hardest out of sample (out-of-fold for poses round 1 saw; a curriculum), generated and scored like "
    "round 1.",
)
@asset_step
def round2_generations(
    context: dg.AssetExecutionContext,
    config: RoundGenerationsConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    return _generate(context, config, 2, body_model, storage, mlflow, dvc)


@dg.asset_check(asset=round1_generations, partitions_def=ROUND1_SHARDS, description="This shard reads back "
                "with its hash and holds exactly the keys of its index entry and manifest part; every pose is a "
                "training pose. Reads this partition's files only.")  # fmt: skip
def round1_shards_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    return shard_partition_check(storage, round_asset_name(1), context.partition_key)


@dg.asset_check(asset=round2_generations, partitions_def=ROUND2_SHARDS, description="This shard reads back "
                "with its hash and holds exactly the keys of its index entry and manifest part; every pose is a "
                "training pose. Reads this partition's files only.")  # fmt: skip
def round2_shards_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    return shard_partition_check(storage, round_asset_name(2), context.partition_key)


HELDOUT_KEYS = ("heldout_mae", "baseline_mae", "heldout_r2", "baseline_r2", "heldout_spearman",
                "heldout_pose_spearman")  # fmt: skip


@dg.asset_check(asset=hardness_model, description="Data contract: predictions.parquet scores every pose-bank pose "
                "once with a finite predicted OKS in [0, 1]; exactly the poses round 1 scored carry out-of-fold "
                "scores (round 2 never ranks a pose by a model that saw it); held-out MAE, R^2 finite.")  # fmt: skip
def hardness_predictions_valid(storage: StorageResource) -> dg.AssetCheckResult:
    folder = storage.asset_dir("hardness_model")
    table = pd.read_parquet(folder / PREDICTIONS_FILE)
    bank_ids = set(read_pose_bank(storage.asset_dir("pose_bank")).arrays["pose_id"].astype(str))
    trained = set(load_npz(folder / "training.npz")["pose_ids"].astype(str))
    metrics = json.loads((folder / "metrics.json").read_text())
    ids, score = table.pose_id.astype(str), table.predicted_oks.to_numpy(dtype=np.float64)
    facts = {
        "every_pose_once": bool(ids.is_unique and set(ids) == bank_ids),
        "finite_in_unit_interval": bool(np.isfinite(score).all() and ((score >= 0) & (score <= 1)).all()),
        "round1_poses_out_of_fold": set(ids[table.out_of_fold.to_numpy(dtype=bool)]) == trained,
        "finite_heldout_metrics": all(np.isfinite(metrics[k]) for k in HELDOUT_KEYS[:4]),
    }
    return dg.AssetCheckResult(passed=all(facts.values()), metadata={**facts, "poses": len(table),
                                                                     "out_of_fold_poses": len(trained)})  # fmt: skip


@dg.asset_check(asset=hardness_model, description="Learning target: on held-out poses (out-of-fold, grouped by pose) "
                "the model's MAE is below the mean predictor's (the training folds' mean OKS). A miss is a warning, "
                "not a failure: the data are valid, but round 2 then ranks poses by a model that does not know more "
                "than the mean; MAE and R^2 of both and the model's Spearman are in the metadata.")  # fmt: skip
def hardness_beats_mean(storage: StorageResource) -> dg.AssetCheckResult:
    metrics = json.loads((storage.asset_dir("hardness_model") / "metrics.json").read_text())
    meta = {k: float(metrics[k]) for k in HELDOUT_KEYS}
    return dg.AssetCheckResult(passed=bool(metrics["heldout_mae"] < metrics["baseline_mae"]),
                               severity=dg.AssetCheckSeverity.WARN, metadata=meta)  # fmt: skip


CHECKS = [round1_shards_valid, round2_shards_valid, hardness_predictions_valid, hardness_beats_mean]
