"""Group ``generation``: the control-conditioned generator, DPO preference pairs, and the
DPO-aligned generator (LoRA), each with OKS measured by the pose detector."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import torch

from dreamer_core.config import DPOSettings, GeneratorSettings
from dreamer_core.datasets.shards import remove_shards
from dreamer_core.datasets.stream import ShardStream, to_device
from dreamer_core.datasets.torch_dataset import ShardSplit, image_side, sample_stream, stack_samples
from dreamer_core.dpo.candidates import (
    candidate_key,
    control_chunks,
    first_controls,
    read_candidates,
    write_candidates,
)
from dreamer_core.dpo.lora import (
    LoraSettings,
    adapters_disabled,
    load_generator_with_lora,
    lora_parameter_count,
    save_lora,
)
from dreamer_core.dpo.pair_stream import pair_stream
from dreamer_core.dpo.pairs import PairRule, select_pairs
from dreamer_core.dpo.train import DPOTraining, compare_before_after, heldout_seeds, train_dpo_stream
from dreamer_core.errors import PipelineInputError
from dreamer_core.fingerprint import data_fingerprint
from dreamer_core.generate.backends import load_generator, tiny_config
from dreamer_core.generate.base import ControlGenerator, generate_batched
from dreamer_core.generate.evaluate import control_agreement, grain
from dreamer_core.generate.prompts import prompts_for
from dreamer_core.generate.tiny import TinyGenerator
from dreamer_core.generate.train import GeneratorTraining, train_generator
from dreamer_core.images import to_uint8
from dreamer_core.io import write_json_atomic
from dreamer_core.keypoints.detectors import load_detector
from dreamer_core.poses.bank import read_pose_bank
from dreamer_core.seeds import derive_seed
from dreamer_core.viz import sample_grid_png
from orchestration.assets.common import (
    asset_step,
    dvc_meta,
    file_hash,
    input_version,
    log_progress,
    publish_png,
    write_parquet,
)
from orchestration.assets.tracked import AssetRun
from orchestration.resources import DVCResource, MLflowResource, StorageResource
from orchestration.settings import DPOConfig, GeneratorConfig


@dg.asset(
    group_name="generation",
    deps=["reference_renders", "pose_detector"],
    kinds={"pytorch", "diffusers"},
    pool="gpu",
    metadata=dvc_meta(params=["seed", "generator"]),
    description="Control-conditioned generator (control image -> photo-like image): tiny is trained here on "
    "reference renders, pretrained backends are loaded. Scored by OKS of the pose detector on held-out controls, "
    "against shuffled controls.",
)
@asset_step
def generator(
    context: dg.AssetExecutionContext,
    config: GeneratorConfig,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()["generator"]
    renders = storage.asset_dir("reference_renders")
    inputs = {"reference_renders": input_version(storage, "reference_renders")}  # first: fails while partial
    out = storage.asset_dir("generator")
    test = stack_samples(renders / "test", ("image", "control", "mask", "keypoints", "key"),
                         settings.eval_samples)  # fmt: skip
    with AssetRun(context, mlflow, dvc, {"generator": settings, "seed": config.seed}, inputs) as tracked:
        t0 = time.perf_counter()
        gen, n_params = _train_or_load(context, settings, config, renders, out, tracked.run)
        train_seconds = time.perf_counter() - t0
        metrics, png = _score_generator(context, gen, test, storage, config.seed)
        metrics.update(train_seconds=train_seconds, num_parameters=n_params)
        timing = ("train_seconds", "images_per_second")  # metadata and MLflow only: files must be reproducible
        write_json_atomic(out / "metrics.json", {k: v for k, v in metrics.items() if k not in timing})
        publish_png(out, "preview.png", png, tracked.run)
        tracked.run.log_metrics(metrics)
        for f in [*sorted(out.glob("*.safetensors")), out / "config.json"]:
            tracked.run.log_artifact(f, "checkpoint")
        context.log.info(f"generator: OKS {metrics['oks_matched']:.3f} on own controls vs "
                         f"{metrics['oks_shuffled']:.3f} shuffled (real renders {metrics['oks_real_renders']:.3f}); "
                         f"mask IoU {metrics['mask_iou_matched']:.3f} vs "
                         f"{metrics['mask_iou_shuffled']:.3f}")  # fmt: skip
        return tracked.result(out, (png, "control | sample (seed a) | sample (seed b) | reference render"),
                              **{k: float(v) for k, v in metrics.items()})  # fmt: skip


def _train_or_load(context: dg.AssetExecutionContext, settings: GeneratorSettings, config: Any, renders: Path,
                   out: Path, run: Any) -> tuple[ControlGenerator, int]:  # fmt: skip
    """The tiny generator trained (on the run's device) on the reference renders, or a pretrained
    pipeline; saved to ``out`` and returned on that device."""
    seed = config.seed
    if settings.backend != "tiny":
        from dreamer_core.generate.pretrained import DiffusersControlGenerator

        context.log.info(f"loading pretrained {settings.backend} from {settings.weights}")
        gen = DiffusersControlGenerator.from_settings(settings, config.torch_device())
        (out / "model.safetensors").unlink(missing_ok=True)  # a tiny model saved earlier is not this one
        gen.save(out)
        return gen, sum(p.numel() for p in gen.denoiser.parameters())
    train = sample_stream([renders / "train"], ("image", "control"), settings.batch_size, seed, settings.loader_workers)
    torch.manual_seed(seed)  # initial weights from the seed, not from whatever ran before in-process
    gen = TinyGenerator(tiny_config(settings, image_size=image_side(renders / "train"))).to(config.torch_device())
    n_params = sum(p.numel() for p in gen.net.parameters())
    context.log.info(f"training the tiny generator ({n_params / 1e6:.2f} M parameters) on "
                     f"{train.num_samples} streamed reference renders for {settings.steps} steps")  # fmt: skip
    cfg = GeneratorTraining(steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
                            ema_decay=settings.ema_decay, control_dropout=settings.control_dropout,
                            seed=seed)  # fmt: skip
    # A killed run continues from data/generator/resume (saved every 100 steps) when rematerialized,
    # provided the training shards are byte for byte the same (their index SHA-256s key the state).
    train_generator(gen, train, cfg, tracker=run, log=context.log.info,
                    resume_dir=out / "resume", inputs={"data": data_fingerprint(renders / "train")})  # fmt: skip
    gen.to("cpu").save(out)
    return gen.to(config.torch_device()), n_params


def _score_generator(context: dg.AssetExecutionContext, gen: ControlGenerator, test: dict[str, Any],
                     storage: StorageResource, seed: int) -> tuple[dict[str, Any], bytes]:  # fmt: skip
    """OKS of samples of held-out controls against their own and shuffled controls, and a preview."""
    keys = list(test["key"])
    seeds = [derive_seed(seed, "generator-eval", k) for k in keys]
    t1 = time.perf_counter()
    images = generate_batched(gen, test["control"], prompts_for(seed, keys), seeds, 32,
                              log_progress(context, "sampling held-out controls"))  # fmt: skip
    sample_seconds = time.perf_counter() - t1
    detector = load_detector(storage.asset_dir("pose_detector"))
    scores = control_agreement(detector, images, test["keypoints"], test["mask"])
    real = control_agreement(detector, test["image"], test["keypoints"], test["mask"])
    metrics = {**scores, "oks_real_renders": real["oks_matched"], "grain": grain(images),
               "grain_real_renders": grain(test["image"]),
               "images_per_second": len(images) / max(sample_seconds, 1e-9)}  # fmt: skip
    k = min(6, len(images))
    second = gen.sample(test["control"][:k], [""] * k, [s + 1 for s in seeds[:k]])
    rows = [[to_uint8(test["control"][i]), to_uint8(images[i]), to_uint8(second[i]), to_uint8(test["image"][i])]
            for i in range(k)]  # fmt: skip
    return metrics, sample_grid_png(rows)


@dg.asset_check(asset=generator, description="The saved generator reloads and its metrics are finite (a data "
                "contract).")  # fmt: skip
def generator_reloads(storage: StorageResource) -> dg.AssetCheckResult:
    out = storage.asset_dir("generator")
    m = json.loads((out / "metrics.json").read_text())
    load_generator(out)
    finite = all(np.isfinite(m[k]) for k in ("oks_matched", "oks_shuffled"))
    return dg.AssetCheckResult(passed=bool(finite), metadata={k: m[k] for k in ("oks_matched", "oks_shuffled")})


@dg.asset_check(asset=generator, description="Learning target: samples follow their controls (OKS against the own "
                "controls at least 0.1 above shuffled controls; person mask IoU above shuffled).")  # fmt: skip
def generator_follows_control(storage: StorageResource) -> dg.AssetCheckResult:
    m = json.loads((storage.asset_dir("generator") / "metrics.json").read_text())
    return dg.AssetCheckResult(
        passed=m["oks_matched"] > m["oks_shuffled"] + 0.1
        and not m["mask_iou_matched"] <= m["mask_iou_shuffled"],  # NaN: the detector has no person mask
        severity=dg.AssetCheckSeverity.WARN,
        metadata={k: m[k] for k in ("oks_matched", "oks_shuffled", "mask_iou_matched", "mask_iou_shuffled")},
    )


@dg.asset(
    group_name="generation",
    deps=["generator", "control_renders", "pose_detector"],
    kinds={"pytorch"},
    pool="gpu",
    metadata=dvc_meta(params=["seed", "dpo"]),
    description="Preference pairs for Diffusion-DPO: N seeded candidates per held-in control, each scored by OKS "
    "against the control's label; best vs worst when the gap and the winner are large enough.",
)
@asset_step
def dpo_pairs(
    context: dg.AssetExecutionContext,
    config: DPOConfig,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()["dpo"]
    out, controls = storage.asset_dir("dpo_pairs"), storage.asset_dir("control_renders")
    keys, pose_ids = _training_controls(storage, settings.num_controls)
    prompts = prompts_for(config.seed, keys)
    seeds = np.array([[derive_seed(config.seed, "dpo-candidate", k, j) for j in range(settings.num_candidates)]
                      for k in keys])  # fmt: skip
    inputs = {"generator": file_hash(storage, "generator", "config.json")}
    with AssetRun(context, mlflow, dvc, {"dpo": settings, "seed": config.seed}, inputs) as tracked:
        gen = load_generator(storage.asset_dir("generator"), config.torch_device())
        detector = load_detector(storage.asset_dir("pose_detector"), gen.device)
        for stale in ("candidates.npz", "candidates.parquet", "pairs.parquet", "summary.json"):
            (out / stale).unlink(missing_ok=True)  # no old table may sit next to new candidates
        remove_shards(out / "candidates")
        t0 = time.perf_counter()
        oks = write_candidates(gen, detector, control_chunks(controls, len(keys)), keys, prompts, seeds,
                               out / "candidates", progress=log_progress(context, "candidates"))  # fmt: skip
        seconds = time.perf_counter() - t0
        pairs = select_pairs(oks, PairRule(settings.min_gap, settings.min_winner_oks, settings.pairing))
        gaps = _write_pair_tables(out, keys, pose_ids, prompts, seeds, oks, pairs)
        summary = {
            "num_controls": len(keys), "num_candidates": oks.size, "candidates_per_control": oks.shape[1],
            "num_pairs": len(pairs), "mean_candidate_oks": float(np.nanmean(oks)),
            "mean_pair_gap": float(np.mean(gaps)) if gaps else 0.0,
            "images_per_second": oks.size / max(seconds, 1e-9),
        }  # fmt: skip
        write_json_atomic(out / "summary.json", {k: v for k, v in summary.items() if k != "images_per_second"})
        png = _pairs_png(out / "candidates", keys, pairs or [(c, 0, 1) for c in range(min(6, len(keys)))])
        publish_png(out, "preview.png", png, tracked.run)
        tracked.run.log_metrics(summary)
        context.log.info(
            f"dpo pairs: {len(pairs)} of {len(keys)} controls ({oks.shape[1]} candidates each, "
            f"mean OKS {summary['mean_candidate_oks']:.3f}, mean gap {summary['mean_pair_gap']:.3f})"
        )
        return tracked.result(out, (png, "control | winner | loser"), **summary)


def _training_controls(storage: StorageResource, n: int) -> tuple[list[str], list[str]]:
    """Keys and pose ids of the first ``n`` control renders (labels only; training poses only: a
    leaked val / test pose fails)."""
    keys, pose_ids = first_controls(storage.asset_dir("control_renders"), n)
    if leaked := read_pose_bank(storage.asset_dir("pose_bank")).not_in_split(pose_ids):
        raise dg.Failure(f"{len(leaked)} control poses (e.g. {leaked[0]}) are validation or test poses (shards of an "
                         "older split): re-materialize control_renders")  # fmt: skip
    if len(keys) < 2:
        raise dg.Failure("control_renders holds fewer than 2 samples; materialize its partitions first")
    return keys, pose_ids


def _pairs_png(folder: Path, keys: list[str], shown: list[tuple[int, int, int]]) -> bytes:
    """control | winner | loser of the first six pairs, read back from the candidate shards."""
    shown = shown[:6]
    names = [(candidate_key(keys[c], w), candidate_key(keys[c], lo)) for c, w, lo in shown]
    found = read_candidates(folder, {k for pair in names for k in pair})
    return sample_grid_png([[found[w].control, found[w].image, found[lo].image] for w, lo in names])


def _write_pair_tables(out: Path, keys: list[str], pose_ids: Any, prompts: list[str], seeds: np.ndarray,
                       oks: np.ndarray, pairs: list[tuple[int, int, int]]) -> list[float]:  # fmt: skip
    """candidates.parquet (one row per candidate, with its shard key) and pairs.parquet; returns the
    pairs' OKS gaps."""
    n_cand = seeds.shape[1]
    cand_rows = [{"control_key": k, "pose_id": pose_ids[c], "candidate": j, "key": candidate_key(k, j),
                  "seed": int(seeds[c, j]), "oks": float(oks[c, j]), "prompt": prompts[c]}
                 for c, k in enumerate(keys) for j in range(n_cand)]  # fmt: skip
    pair_rows = [{"control": c, "control_key": keys[c], "pose_id": pose_ids[c], "winner": w, "loser": lo,
                  "winner_seed": int(seeds[c, w]), "loser_seed": int(seeds[c, lo]),
                  "winner_oks": float(oks[c, w]), "loser_oks": float(oks[c, lo]), "prompt": prompts[c]}
                 for c, w, lo in pairs]  # fmt: skip
    write_parquet(out / "candidates.parquet", pd.DataFrame(cand_rows))
    write_parquet(out / "pairs.parquet", pd.DataFrame(pair_rows, columns=list(_PAIR_COLUMNS)))
    return [r["winner_oks"] - r["loser_oks"] for r in pair_rows]


_PAIR_COLUMNS = ("control", "control_key", "pose_id", "winner", "loser", "winner_seed", "loser_seed", "winner_oks",
                 "loser_oks", "prompt")  # fmt: skip


@dg.asset(
    group_name="generation",
    deps=["dpo_pairs", "generator", "reference_renders", "pose_detector"],
    kinds={"pytorch", "peft"},
    pool="gpu",
    metadata=dvc_meta(params=["seed", "dpo"]),
    description="The generator aligned to its control with Diffusion-DPO (a LoRA); mean OKS on held-out controls "
    "with fixed seeds before and after, under the reward detector and an independent judge.",
)
@asset_step
def dpo_generator(
    context: dg.AssetExecutionContext,
    config: DPOConfig,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()["dpo"]
    renders = input_version(storage, "reference_renders")  # its held-out controls: fails while partial
    out = storage.asset_dir("dpo_generator")
    pairs = pd.read_parquet(storage.asset_dir("dpo_pairs") / "pairs.parquet")
    stream = _pair_stream(storage, pairs, settings, config.seed)
    held = _heldout_controls(storage, settings)
    seeds = heldout_seeds(config.seed, settings.heldout_seeds, settings.heldout_controls)
    det_dir = storage.asset_dir("pose_detector")
    device = config.torch_device()
    detectors = {"reward": load_detector(det_dir, device), "judge": load_detector(det_dir / "judge", device)}
    lora = LoraSettings(rank=settings.lora_rank, alpha=float(settings.lora_rank), targets=settings.lora_targets)
    cfg = DPOTraining(steps=settings.steps, batch_pairs=settings.batch_pairs, lr=settings.lr,
                      beta=settings.beta, seed=config.seed, lora=lora)  # fmt: skip
    params = {"dpo": settings, "seed": config.seed, "num_pairs": len(pairs)}
    inputs = {"dpo_pairs": file_hash(storage, "dpo_pairs", "summary.json"),
              "generator": file_hash(storage, "generator", "config.json"), "reference_renders": renders}  # fmt: skip
    with AssetRun(context, mlflow, dvc, params, inputs) as tracked:
        gen = load_generator(storage.asset_dir("generator"), device)
        context.log.info(f"DPO on {len(pairs)} pairs: {cfg.steps} steps of {cfg.batch_pairs} pairs, beta {cfg.beta}, "
                         f"objective {gen.objective}")  # fmt: skip
        stats = train_dpo_stream(gen, stream, list(pairs["prompt"]), cfg, tracker=tracked.run, log=context.log.info)
        save_lora(out, gen.denoiser, lora, extra={"base": "generator", "objective": gen.objective})
        context.log.info(f"held-out evaluation: {len(seeds[0])} controls x {len(seeds)} seeds, before/after")
        result = compare_before_after(gen, detectors, _heldout_chunks(held, settings.heldout_controls), seeds,
                                      log_progress(context, "held-out samples (before, then after DPO)"))  # fmt: skip
        result.update(num_pairs=len(pairs), lora_parameters=lora_parameter_count(gen.denoiser),
                      train_seconds=stats["seconds"], final_implicit_accuracy=stats["implicit_accuracy"])  # fmt: skip
        write_json_atomic(out / "metrics.json", {k: v for k, v in result.items() if k != "train_seconds"})
        png = _before_after_png(gen, held, seeds[0])
        publish_png(out, "preview.png", png, tracked.run)
        tracked.run.log_metrics(result)
        tracked.run.log_artifact(out / "lora.safetensors", "lora")
        context.log.info(
            f"held-out OKS {result['heldout_oks_before']:.4f} -> {result['heldout_oks_after']:.4f} "
            f"({result['heldout_oks_delta']:+.4f} +/- {result['heldout_oks_delta_std']:.4f} over seeds); judge "
            f"{result['judge_oks_before']:.4f} -> {result['judge_oks_after']:.4f}"
        )
        return tracked.result(out, (png, "held-out control | before DPO | after DPO (same seed)"),
                              **{k: float(v) for k, v in result.items()})  # fmt: skip


def _pair_stream(storage: StorageResource, pairs: pd.DataFrame, settings: DPOSettings, seed: int) -> ShardStream:
    """The pairs as a stream of batches read from the candidate shards (every pair once per epoch;
    only indexes are read here)."""
    winners = [candidate_key(k, int(j)) for k, j in zip(pairs["control_key"], pairs["winner"], strict=True)]
    losers = [candidate_key(k, int(j)) for k, j in zip(pairs["control_key"], pairs["loser"], strict=True)]
    return pair_stream(storage.asset_dir("dpo_pairs") / "candidates", winners, losers, settings.batch_pairs, seed,
                       settings.loader_workers)  # fmt: skip


def _heldout_controls(storage: StorageResource, settings: DPOSettings) -> ShardSplit:
    """The held-out split whose first ``heldout_controls`` renders (held-out poses, never used for
    pairs) score the gain, read a shard at a time; checked for size from its index alone."""
    held = ShardSplit(storage.asset_dir("reference_renders") / settings.heldout_split, ("control", "keypoints", "mask"))
    if len(held) < settings.heldout_controls:
        raise PipelineInputError(f"dpo.heldout_controls is {settings.heldout_controls} but reference_renders/"
                                 f"{settings.heldout_split} holds {len(held)} renders: lower it or "
                                 "render more (reference_renders.num_" + settings.heldout_split + ")")  # fmt: skip
    return held


def _heldout_chunks(held: ShardSplit, n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The first ``n`` held-out controls, keypoints and masks, a shard at a time, as floats."""
    for chunk in held.chunks():
        part = to_device({k: v[:n] for k, v in chunk.items()})
        n -= len(part["control"])
        yield part["control"], part["keypoints"], part["mask"]
        if n <= 0:
            return  # before the next shard is decoded


def _before_after_png(gen: Any, held: ShardSplit, seeds: list[int]) -> bytes:
    """held-out control | before DPO | after DPO (same seed) of the first six held-out controls."""
    k = min(6, len(seeds))
    controls = torch.cat([c for c, _, _ in _heldout_chunks(held, k)])
    with adapters_disabled(gen.denoiser):
        before = gen.sample(controls[:k], [""] * k, seeds[:k])
    after = gen.sample(controls[:k], [""] * k, seeds[:k])
    return sample_grid_png([[to_uint8(controls[i]), to_uint8(before[i]), to_uint8(after[i])] for i in range(k)])


@dg.asset_check(asset=dpo_generator, description="The LoRA reloads onto the generator and the held-out scores "
                "are finite (a data contract).")  # fmt: skip
def dpo_generator_reloads(storage: StorageResource) -> dg.AssetCheckResult:
    m = json.loads((storage.asset_dir("dpo_generator") / "metrics.json").read_text())
    load_generator_with_lora(storage.asset_dir("generator"), storage.asset_dir("dpo_generator"))
    keys = ("heldout_oks_before", "heldout_oks_after", "judge_oks_before", "judge_oks_after")
    return dg.AssetCheckResult(passed=all(np.isfinite(m[k]) for k in keys), metadata={k: m[k] for k in keys})


@dg.asset_check(asset=dpo_generator, description="Learning target: DPO raised mean held-out OKS (same controls, "
                "same seeds) under the reward detector by more than twice its spread over sampling seeds; the "
                "judge's change is reported alongside.")  # fmt: skip
def dpo_improves_heldout_oks(storage: StorageResource) -> dg.AssetCheckResult:
    m = json.loads((storage.asset_dir("dpo_generator") / "metrics.json").read_text())
    delta, spread = m["heldout_oks_after"] - m["heldout_oks_before"], m["heldout_oks_delta_std"]
    keys = ("heldout_oks_before", "heldout_oks_after", "heldout_oks_delta_std", "judge_oks_before", "judge_oks_after")
    return dg.AssetCheckResult(
        passed=bool(delta > 2 * spread),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={**{k: m[k] for k in keys}, "heldout_oks_delta": delta},
    )


CHECKS = [generator_reloads, generator_follows_control, dpo_generator_reloads, dpo_improves_heldout_oks]
