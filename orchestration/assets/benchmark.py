"""Group ``benchmark``: one table of MPJPE / PA-MPJPE / PVE for every HMR checkpoint on every test
set next to the one mean-pose baseline, dataset statistics, image distances, and GST's novel-view
scores (``benchmark_scores``). It reads every other group's outputs, by asset key."""

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import torch

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.bodies.skeleton import SKELETON_SLICE
from dreamer_core.config import BenchmarkSettings, FilterSettings
from dreamer_core.datasets.real import evenly, frames_3dpw, frames_emdb, frames_to_batch
from dreamer_core.datasets.shards import index_file, publish_shard, remove_shards
from dreamer_core.dpo.lora import load_generator_with_lora
from dreamer_core.filters.stages import decide, score_images
from dreamer_core.fingerprint import files_fingerprint, weights_fingerprint
from dreamer_core.generate.prompts import prompts_for
from dreamer_core.hmr.data import (
    EvalSet,
    FolderSplit,
    folder_labels,
    load_folder,
    set_labels,
    set_size,
    training_mean,
    training_stream,
)
from dreamer_core.hmr.model import load_hmr
from dreamer_core.hmr.train import evaluate_models, mean_predictor
from dreamer_core.images import stack_coco_keypoints, to_uint8
from dreamer_core.io import write_json_atomic, write_text_atomic
from dreamer_core.keypoints.detectors import load_detector
from dreamer_core.metrics.baseline import ratios_to_baseline
from dreamer_core.metrics.image_distance import inception_distances, unavailable
from dreamer_core.mining.rounds import generate_shard
from dreamer_core.poses.bank import ARRAYS_FILE, POSES_FILE, read_pose_bank
from dreamer_core.viz import sample_grid_png
from orchestration.assets.common import (
    asset_step,
    dvc_meta,
    input_version,
    log_progress,
    publish_png,
    settings_hash,
    write_parquet,
)
from orchestration.assets.gst import GST_MODELS, GST_TEST, IMAGE_METRICS, gst_checks_metadata, gst_rows
from orchestration.assets.hmr import training_sources
from orchestration.assets.tracked import AssetRun
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import SETTINGS, BenchmarkConfig

METRICS = ("mpjpe", "pa_mpjpe", "pve")


def _generated_test_stamp(storage: StorageResource, n: int, seed: int, thresholds: dict[str, Any]) -> str:
    """What the held-out generated test set is a function of, by content: the weights it is sampled
    through (base generator and DPO LoRA) and filtered with (the detector), the pose bank's files,
    and the settings. Hyper-parameter and metrics files can stay the same across a retraining;
    the weights' SHA-256s cannot."""
    weights = {"generator": weights_fingerprint(storage.asset_dir("generator")),
               "lora": weights_fingerprint(storage.asset_dir("dpo_generator"), extra=("lora.json",)),
               "detector": weights_fingerprint(storage.asset_dir("pose_detector")),
               "bank": files_fingerprint(storage.asset_dir("pose_bank"), (POSES_FILE, ARRAYS_FILE))}  # fmt: skip
    # "oks": how the filter's OKS is defined (COCO's segmentation area since the box-area version).
    return settings_hash({"n": n, "seed": seed, "render": SETTINGS.render, "filter": thresholds, "oks": "coco-mask",
                          **weights})  # fmt: skip


def _generated_test(context: dg.AssetExecutionContext, storage: StorageResource, body_model: BodyModelResource,
                    n: int, seed: int, device: Any) -> tuple[Path, pd.DataFrame]:  # fmt: skip
    """Held-out generated samples: controls of the test poses (never in any training set) through
    the DPO generator with fresh seeds, then the dataset's own filter cascade. Regenerated only
    when the generator, detector, pose bank or settings change.

    Every sample, before the filter, also goes to the sibling folder ``generated_test_unfiltered``:
    the filtered set favours models trained on data that passed the same filter (generated, mixed),
    the unfiltered one favours no training filter, so the benchmark scores both."""
    out = storage.asset_dir("benchmark_scores") / "generated_test"
    raw = out.parent / GENERATED_UNFILTERED
    thresholds = json.loads((storage.asset_dir("filtered_dataset") / "thresholds.json").read_text())
    stamp = _generated_test_stamp(storage, n, seed, thresholds)
    stamp_file = out / "stamp.json"
    raw_done = (raw / index_file("shard-000000.tar")).exists()  # absent in sets written before it existed
    if stamp_file.exists() and json.loads(stamp_file.read_text()).get("stamp") == stamp and raw_done:
        context.log.info("held-out generated test set is current; reusing it")
        return out, pd.read_parquet(out / "decisions.parquet")
    stamp_file.unlink(missing_ok=True)
    remove_shards(out)
    remove_shards(raw)
    detector = load_detector(storage.asset_dir("pose_detector"), device)
    samples = _generate_heldout(context, storage, body_model, detector, n, seed, device)
    decisions = _filter(samples, detector, FilterSettings.from_mapping(thresholds, "thresholds.json: "))
    kept = [s for s, d in zip(samples, decisions.decision, strict=True) if d == "kept"]
    if not kept:
        raise dg.Failure("no held-out generated sample passed the dataset's filter; raise generated_test_samples")
    _write_single_shard(out, kept)
    _write_single_shard(raw, samples)
    write_parquet(out / "decisions.parquet", decisions)
    write_json_atomic(stamp_file, {"stamp": stamp})
    return out, decisions


def _generate_heldout(context: dg.AssetExecutionContext, storage: StorageResource, body_model: BodyModelResource,
                      detector: Any, n: int, seed: int, device: Any) -> list[Any]:  # fmt: skip
    """``n`` samples of the test poses (cycled) through the DPO generator, as generation rounds make them
    (on ``device``)."""
    body, renderer = body_model.load_with_renderer(device)
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    rows = np.flatnonzero(np.isin(bank.arrays["pose_id"], bank.ids("test")))
    rows = rows[np.arange(n) % len(rows)]
    generator = load_generator_with_lora(storage.asset_dir("generator"), storage.asset_dir("dpo_generator"), device)
    context.log.info(f"generating the held-out test set: {n} samples of {len(set(rows))} test poses")
    result = generate_shard(body, renderer, bank, rows, SETTINGS.render, generator, detector, seed, 0, "heldout",
                            SETTINGS.round_generations.batch_size, lambda keys: prompts_for(seed, keys),
                            log_progress(context, "held-out generated"))  # fmt: skip
    return result.samples


def _filter(samples: list[Any], detector: Any, fs: FilterSettings) -> pd.DataFrame:
    """The dataset's filter cascade on held-out samples: per-sample decisions, with OKS."""
    images, masks = np.stack([s.image for s in samples]), np.stack([s.mask for s in samples])
    scores = score_images(detector, images, stack_coco_keypoints(samples), masks, fs.min_person_area)
    decisions = decide(scores, [s.key for s in samples], fs)
    decisions["oks"] = scores["oks"].to_numpy()
    return decisions


def _write_single_shard(folder: Path, samples: list[Any]) -> None:
    publish_shard(folder, "shard-000000.tar", samples)


def _pose_spread_mm(data: dict[str, torch.Tensor]) -> float:
    """Mean distance (mm) of body-frame, root-relative skeleton joints from the set's mean pose:
    how diverse the poses are, independent of the camera."""
    sk = data["joints_3d"][:, SKELETON_SLICE]
    rot = axis_angle_to_matrix(data["global_orient_cam"])
    local = (sk - sk[:, :1]) @ rot  # R^T applied to row vectors
    return float((local - local.mean(0)).norm(dim=-1).mean() * 1000.0)


def _oks_stats(oks: np.ndarray) -> dict[str, float]:
    oks = oks[np.isfinite(oks)]
    return {"oks_mean": float(oks.mean()), "oks_p10": float(np.quantile(oks, 0.1)),
            "oks_p50": float(np.quantile(oks, 0.5)), "oks_p90": float(np.quantile(oks, 0.9))}  # fmt: skip


# Each training set's own domains: the test sets drawn like its training images. The other cells
# (e.g. the generated-only model on renders) are cross-domain: reported, not held to the target.
# The unfiltered generated test set is the generated domain too, minus the training filter's bias.
GENERATED_UNFILTERED = "generated_test_unfiltered"  # folder of benchmark_scores: the held-out samples before the filter
_GENERATED = ("generated", "generated_unfiltered")
OWN_DOMAINS = {"rendered": ("rendered",), "generated": _GENERATED, "mixed": ("rendered", *_GENERATED)}
# The one mean-pose baseline of every HMR row: the mean parameters of one fixed pool, the rendered
# training set (reference_renders/train: training-split poses under the render settings' cameras, no
# generator, no filter). A baseline fitted to each row's own training set made the ratios incomparable.
BASELINE_MODEL, BASELINE_POOL = "mean_pose", "reference_renders_train"
BASELINE_NOTE = (
    f"MPJPE / mean pose = the row's MPJPE over that of the one mean-pose baseline (model {BASELINE_MODEL}, train set "
    f"{BASELINE_POOL}) on the same test set. The baseline predicts the same body for every image: the chordal mean "
    "of the camera-frame joint rotations and the mean shape of the rendered training set (reference_renders/train: "
    "training-split poses under the render settings' cameras, no generator, no filter), computed as HMR.set_mean "
    "does; one predictor for every row and test set, so the ratios compare across rows. Values in mm."
)


def own_domains(train_set: str) -> tuple[str, ...]:
    return OWN_DOMAINS.get(train_set, ("3dpw",))  # real training sets: 3DPW


def scores_markdown(scores: pd.DataFrame) -> str:
    """The table a reader wants: one row per (model, train set), MPJPE / PA-MPJPE / PVE (mm) per test
    set, and MPJPE as a fraction of the one common mean-pose baseline's on the same test set (*
    marks a cross-domain cell), followed by how that baseline is computed."""
    tests = list(scores.test_set.unique())  # the benchmark's order: rendered, generated, ..., real sets
    head = ["model", "train set"] + [f"{t} {m} (mm)" for t in tests for m in METRICS]
    head += [f"{t} MPJPE / mean pose" for t in tests]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    value = scores.set_index(["model", "train_set", "test_set", "metric"]).value
    ratio = ratios_to_baseline(scores, BASELINE_MODEL, BASELINE_POOL)
    for (model, train), _ in scores.groupby(["model", "train_set"], sort=False):
        cells = [model, train] + [f"{value[model, train, t, m]:.1f}" for t in tests for m in METRICS]
        if (model, train) == (BASELINE_MODEL, BASELINE_POOL):
            cells += ["1.000"] * len(tests)
        else:
            cells += [f"{ratio[model, train, t, 'mpjpe']:.3f}" + ("" if t in own_domains(train) else "*")
                      for t in tests]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{BASELINE_NOTE}"


@dg.asset(
    group_name="benchmark",
    deps=[
        "hmr_checkpoints",
        "reference_renders",
        "filtered_dataset",
        "dpo_generator",
        "pose_detector",
        "gst_checkpoint",
    ],
    kinds={"pytorch", "parquet"},
    pool="gpu",  # renders, samples and scores on the run's device
    metadata=dvc_meta(params=["seed", "body_model", "benchmark_scores"]),  # fmt: skip
    description="MPJPE, PA-MPJPE and PVE (mm) of every HMR checkpoint and of one common mean-pose baseline (the "
    "mean parameters of reference_renders/train) on held-out reference renders and held-out generated samples, "
    "filtered and unfiltered (scores.parquet, long format); dataset "
    "statistics; FID / KID when Inception weights are configured. GST rows: novel-view PSNR / SSIM within the "
    "person's mask (headline) and on the full image of gst_checkpoint, the untrained GST and the flat-coloured HMR "
    "mesh on held-out subjects, and body MPJPE.",
)
@asset_step
def benchmark_scores(
    context: dg.AssetExecutionContext,
    config: BenchmarkConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()["benchmark_scores"]
    out = storage.asset_dir("benchmark_scores")
    ckpt_dir = storage.asset_dir("hmr_checkpoints")
    trained = json.loads((ckpt_dir / "summary.json").read_text())
    params = {"benchmark_scores": settings, "seed": config.seed, "train_sets": sorted(trained)}
    inputs = {a: input_version(storage, a) for a in ("hmr_checkpoints", "reference_renders")}
    with AssetRun(context, mlflow, dvc, params, inputs) as tracked:
        t0 = time.perf_counter()
        gen_folder, gen_decisions = _generated_test(context, storage, body_model, settings.generated_test_samples,
                                                    config.seed, config.torch_device())  # fmt: skip
        body = body_model.load()
        size = load_hmr(ckpt_dir / next(iter(trained)))[0].cfg.image_size
        tests = {"rendered": FolderSplit(storage.asset_dir("reference_renders") / "test", size),  # a shard at a time
                 "generated": load_folder(gen_folder, size),
                 "generated_unfiltered": load_folder(gen_folder.parent / GENERATED_UNFILTERED, size),
                 **_real_tests(settings, body, size)}  # fmt: skip
        rows, pool_size = _hmr_rows(context, storage, body, list(trained), tests, size)
        avatar_rows, avatar_md = gst_rows(storage, body, config.seed)
        context.log.info(f"scored gst_checkpoint on held-out subjects\n{avatar_md}")
        scores = pd.DataFrame(rows + avatar_rows)
        write_parquet(out / "scores.parquet", scores)
        stats = _dataset_stats(storage, tests, gen_decisions)
        write_parquet(out / "dataset_stats.parquet", stats)
        distances, dist_md = _image_distances(storage, settings, size, out)
        markdown = scores_markdown(pd.DataFrame(rows))
        write_text_atomic(out / "README.md", _report(markdown, avatar_md, dist_md, tests, pool_size))
        png = sample_grid_png([[im] for im in to_uint8(tests["generated"]["image"][:6])])
        _log(tracked.run, out, png, scores, stats, distances)
        seconds = time.perf_counter() - t0
        context.log.info(f"benchmark in {seconds:.1f} s\n{markdown}")
        return tracked.result(
            out / "scores.parquet", (png, "held-out generated test samples"), scores=dg.MetadataValue.md(markdown),
            gst_scores=dg.MetadataValue.md(avatar_md), dataset_stats=dg.MetadataValue.md(_stats_markdown(stats)),
            image_distances=dist_md, num_rendered_test=set_size(tests["rendered"]),
            num_generated_test=set_size(tests["generated"]),
            num_generated_unfiltered_test=set_size(tests["generated_unfiltered"]), baseline_pool_size=pool_size,
            seconds=round(seconds, 1),
        )  # fmt: skip


def _hmr_rows(context: dg.AssetExecutionContext, storage: StorageResource, body: Any, trained: list[str],
              tests: dict[str, EvalSet], size: int) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """Long-format rows of every HMR checkpoint and the one mean-pose baseline on every test set,
    and the size of the baseline's pool."""
    ckpt_dir = storage.asset_dir("hmr_checkpoints")
    models = {name: load_hmr(ckpt_dir / name)[0] for name in trained}
    # One mean-pose baseline for every row (see BASELINE_NOTE): a fresh copy of a checkpoint
    # (only its architecture matters) given the pool's mean parameters, as training sets them.
    pooled = load_hmr(ckpt_dir / trained[0])[0]
    pool = training_stream([str(storage.asset_dir("reference_renders") / "train")], {}, size, 1, 0)
    training_mean(pool, {}).apply(pooled)  # from the labels: no image is read
    pool_size = pool.num_samples
    scored = [(BASELINE_MODEL, BASELINE_POOL, mean_predictor(pooled)),
              *(("hmr", name, model) for name, model in models.items())]  # fmt: skip
    values = {}
    for test_name, data in tests.items():  # each set read once, every model scored on each batch
        values[test_name] = evaluate_models({f"{w}/{n}": predict for w, n, predict in scored}, body, data)
        context.log.info(f"scored {len(scored)} models on {test_name} ({set_size(data)} samples)")
    rows = [{"model": w, "train_set": n, "test_set": t, "metric": m, "value": values[t][f"{w}/{n}"][m]}
            for w, n, _ in scored for t in tests for m in METRICS]  # fmt: skip
    return rows, pool_size


def _image_distances(storage: StorageResource, settings: BenchmarkSettings, size: int,
                     out: Path) -> tuple[dict[str, float] | None, str]:  # fmt: skip
    """FID / KID of the generated against the rendered training images, when Inception weights are
    configured (only then are the training images read); the status otherwise."""
    why = unavailable(settings.inception_weights)
    distances = None
    if why is None:
        rendered = load_folder(storage.asset_dir("reference_renders") / "train", size)["image"]
        generated = load_folder(storage.asset_dir("filtered_dataset"), size)["image"]
        distances, why = inception_distances(to_uint8(rendered), to_uint8(generated), settings.inception_weights)
    write_json_atomic(out / "image_distances.json", {"status": why, **(distances or {})})
    return distances, ", ".join(f"{k} {v:.3f}" for k, v in distances.items()) if distances else why


def _report(markdown: str, avatar_md: str, dist_md: str, tests: dict[str, EvalSet],
            pool_size: int) -> str:  # fmt: skip
    synthetic = ("rendered", "generated", "generated_unfiltered")
    real = "".join(f"; {n} = {set_size(d)} frames" for n, d in tests.items() if n not in synthetic)
    return (f"# Benchmark\n\n{markdown} reference_renders/train holds {pool_size} renders.\n\n"
            f"Test sets: rendered = {set_size(tests['rendered'])} held-out reference renders; generated = "
            f"{set_size(tests['generated'])} held-out generated samples (test poses, kept by the dataset's "
            f"filter, which the generated training data also passed); generated_unfiltered = "
            f"{set_size(tests['generated_unfiltered'])} (the same generations before the filter, biased "
            f"towards no training filter){real}. * = cross-domain (the test images are unlike the training "
            f"set's); the others are held to MPJPE <= 0.8 of the mean-pose baseline.\n\n"
            f"FID / KID (generated vs rendered training images): {dist_md}\n\n"
            f"## GST avatars (novel views of held-out subjects)\n\n{avatar_md}\n")  # fmt: skip


def _log(run: Any, out: Path, png: bytes, scores: pd.DataFrame, stats: pd.DataFrame,
         distances: dict[str, float] | None) -> None:  # fmt: skip
    publish_png(out, "preview_generated_test.png", png, run)
    run.log_metrics({f"{r.model}.{r.train_set}.{r.test_set}.{r.metric}": r.value for r in scores.itertuples()})
    run.log_metrics({f"stats.{r.dataset}.{r.statistic}": r.value for r in stats.itertuples()})
    if distances:
        run.log_metrics(distances)
    run.log_artifact(out / "scores.parquet")
    run.log_artifact(out / "README.md")


def _real_tests(settings: BenchmarkSettings, body: Any, size: int) -> dict[str, dict[str, torch.Tensor]]:
    """3DPW / EMDB test sets from user paths; their ground truth is SMPL, so the run must use it."""
    readers = {"3dpw": (settings.threedpw_path, frames_3dpw), "emdb": (settings.emdb_path, frames_emdb)}
    wanted = {name: (path, read) for name, (path, read) in readers.items() if path}
    if wanted and body.name != "smpl":
        raise dg.Failure(
            f"{', '.join(wanted)} ground truth is SMPL but the body model is {body.name}: set body_model.name: smpl "
            "(and model_dir) and retrain hmr_checkpoints, or clear the paths"
        )
    return {name: frames_to_batch(evenly(read(path), settings.real_test_limit), size, body.num_shape_params)
            for name, (path, read) in wanted.items()}  # fmt: skip


def _dataset_stats(storage: StorageResource, tests: dict[str, EvalSet],
                   gen_decisions: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """Per training and test set: size, pose spread, and (generated sets) the OKS distribution."""
    sources = training_sources(storage)
    kept = pd.read_parquet(storage.asset_dir("filtered_dataset") / "manifest.parquet")
    kept = kept[kept.decision == "kept"]
    rows = []

    def add(dataset: str, values: dict[str, float]) -> None:
        rows.extend({"dataset": dataset, "statistic": k, "value": float(v)} for k, v in values.items())

    for name in ("rendered", "generated"):
        data = folder_labels(sources[name][0])
        add(f"train/{name}", {"num_samples": len(data["joints_3d"]), "pose_spread_mm": _pose_spread_mm(data)})
    add("train/generated", _oks_stats(kept.oks.to_numpy()))
    for name, data in tests.items():
        add(f"test/{name}", {"num_samples": set_size(data), "pose_spread_mm": _pose_spread_mm(set_labels(data))})
    add("test/generated", _oks_stats(gen_decisions.oks[gen_decisions.decision == "kept"].to_numpy()))
    add("test/generated_before_filter", {"num_samples": len(gen_decisions), **_oks_stats(gen_decisions.oks.to_numpy())})
    return pd.DataFrame(rows)


def _stats_markdown(stats: pd.DataFrame) -> str:
    wide = stats.pivot(index="dataset", columns="statistic", values="value")
    cols = list(wide.columns)
    lines = ["| dataset | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for ds, r in wide.iterrows():
        lines.append(f"| {ds} | " + " | ".join("" if pd.isna(r[c]) else f"{r[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


@dg.asset_check(asset=benchmark_scores, description="The table holds every (model, train set, test set, metric) "
                "cell, each finite and non-negative: every HMR checkpoint and the one common mean-pose baseline on "
                "every test set (rendered, generated, generated_unfiltered and any real ones).")  # fmt: skip
def benchmark_table_complete(storage: StorageResource) -> dg.AssetCheckResult:
    everything = pd.read_parquet(storage.asset_dir("benchmark_scores") / "scores.parquet")
    scores = everything[everything.test_set != GST_TEST]
    cells = {(r.model, r.train_set, r.test_set, r.metric) for r in scores.itertuples()}
    tests = {"rendered", "generated", "generated_unfiltered", *scores.test_set}
    wanted = {(m, t, s, k) for m, t in [(BASELINE_MODEL, BASELINE_POOL),
                                        *(("hmr", t) for t in scores[scores.model == "hmr"].train_set.unique())]
              for s in tests for k in METRICS}  # fmt: skip
    gst = everything[everything.test_set == GST_TEST]
    gst_cells = {(r.model, r.metric) for r in gst.itertuples()}
    gst_wanted = {(m, k) for m in GST_MODELS for k in IMAGE_METRICS} | {("gst", "mpjpe"), ("hmr", "mpjpe")}
    finite = bool(np.isfinite(everything.value).all())
    passed = cells == wanted and len(scores) == len(wanted) and gst_cells == gst_wanted and len(gst) == len(gst_wanted)
    return dg.AssetCheckResult(
        passed=passed and finite,
        metadata={"rows": len(everything), "missing": len(wanted - cells) + len(gst_wanted - gst_cells)},
    )


@dg.asset_check(asset=benchmark_scores, description="Every checkpoint's MPJPE is at most 0.8 of the one common "
                "mean-pose baseline's (the mean parameters of reference_renders/train, the same for every checkpoint) "
                "on its own domains' test sets (rendered: renders; generated: generated and generated_unfiltered; "
                "mixed: all three; real sets: 3DPW). A quality target: a miss is a warning; every cell's ratio is "
                "in the metadata, cross-domain ones included.")  # fmt: skip
def hmr_beats_mean_pose(storage: StorageResource) -> dg.AssetCheckResult:
    return hmr_vs_mean_pose(pd.read_parquet(storage.asset_dir("benchmark_scores") / "scores.parquet"))


def hmr_vs_mean_pose(scores: pd.DataFrame) -> dg.AssetCheckResult:
    """The verdict of ``hmr_beats_mean_pose`` on a scores table (a function of the table alone, so
    it is tested without a pipeline run)."""
    baseline = scores[(scores.model == BASELINE_MODEL) & (scores.train_set == BASELINE_POOL)]
    tests = set(baseline.test_set)  # HMR cells only: GST rows have no mean pose
    mpjpe = scores[(scores.metric == "mpjpe") & scores.test_set.isin(tests)]
    ratio = ratios_to_baseline(mpjpe, BASELINE_MODEL, BASELINE_POOL)
    ratio = ratio[ratio.index.get_level_values("model") == "hmr"].droplevel("model")
    sets = ratio.index.get_level_values("train_set").unique()
    ratios = {f"{t}/{s}": float(ratio[t, s, "mpjpe"]) for t in sets for s in tests if (t, s, "mpjpe") in ratio.index}
    checked = [f"{t}/{s}" for t in sets for s in own_domains(t) if f"{t}/{s}" in ratios]
    missed = [c for c in checked if ratios[c] > 0.8]
    summary = {"checked": ", ".join(checked), "missed": ", ".join(missed) or "none",
               "baseline": f"{BASELINE_MODEL}/{BASELINE_POOL}"}  # fmt: skip
    return dg.AssetCheckResult(passed=not missed, severity=dg.AssetCheckSeverity.WARN, metadata={**ratios, **summary})


@dg.asset_check(asset=benchmark_scores, description="GST's novel-view PSNR and SSIM within the person's mask on "
                "held-out subjects are above both baselines': the untrained GST and the HMR mesh in a flat mean "
                "colour (a quality target: a miss is a warning, shown with every score, full-image ones "
                "included).")  # fmt: skip
def gst_beats_baselines(storage: StorageResource) -> dg.AssetCheckResult:
    passed, meta = gst_checks_metadata(pd.read_parquet(storage.asset_dir("benchmark_scores") / "scores.parquet"))
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=meta)


CHECKS = [benchmark_table_complete, hmr_beats_mean_pose, gst_beats_baselines]
