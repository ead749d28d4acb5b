"""Train one HMR model: ``python -m orchestration.train_hmr --spec spec.json``.

The ``hmr_checkpoints`` asset launches this module through Dagster Pipes (the spec arrives in the
Pipes extras; logs and a summary message go back to the run), so training is an ordinary process
that also runs by hand or data-parallel on a GPU node:
``torchrun --nproc_per_node 8 -m orchestration.train_hmr --spec spec.json`` (DDP; rank 0 logs,
checkpoints and reports). A killed run resumes from ``<out>/resume``; a finished one with the
same spec and the same input shards is not trained again.

The spec (JSON): ``train_set`` (a name), ``sources`` (shard folders, or ``3dpw:<root>``), ``out`` (folder),
``hmr`` (``dreamer_core.config.HMRSettings`` fields; omitted ones keep their defaults), ``seed``,
``body_model`` (``BodyModelSettings`` fields), optional ``device`` (``auto | cpu | cuda[:N]``, default
auto: under torchrun each rank its ``LOCAL_RANK`` GPU), ``overlay_folder`` (held-out shards drawn in
the overlays) and ``mlflow`` (``tracking_uri``, ``run_id`` or ``experiment``).

Shard sources stream (``dreamer_core.hmr.data.training_stream``): each rank reads its own shards
through ``hmr.loader_workers`` DataLoader workers, so memory does not grow with the training set.
"""

import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dreamer_core.bodies import load_body_model
from dreamer_core.config import BodyModelSettings, HMRSettings
from dreamer_core.datasets.real import TRAIN_READERS, frames_to_training_batch, parse_real_source
from dreamer_core.datasets.shards import iter_folder
from dreamer_core.devices import resolve_device, valid_device
from dreamer_core.errors import ConfigError, PipelineInputError
from dreamer_core.fingerprint import data_fingerprint as folder_fingerprint
from dreamer_core.fingerprint import digest_of, file_sha256
from dreamer_core.hmr.data import load_samples, training_mean, training_stream
from dreamer_core.hmr.model import HMR, HMRConfig, load_hmr, save_hmr
from dreamer_core.hmr.train import HMRTraining, predicted_keypoints, train_hmr
from dreamer_core.images import COCO_KEYPOINTS, to_uint8
from dreamer_core.io import write_json_atomic
from dreamer_core.viz import keypoint_overlay_png
from orchestration.training_entry import entry_main, finished_summary, publish_checkpoint, tracker_for

REQUIRED = ("train_set", "sources", "out", "hmr", "seed", "body_model")
WHERE = "HMR training spec: "


def spec_settings(spec: dict[str, Any]) -> tuple[HMRSettings, BodyModelSettings]:
    """The spec's settings, checked like params.yaml (an unknown or bad key is named)."""
    return HMRSettings.from_mapping(spec["hmr"], WHERE), BodyModelSettings.from_mapping(spec["body_model"], WHERE)


def validate_spec(spec: dict[str, Any]) -> None:
    missing = [k for k in REQUIRED if k not in spec]
    if missing:
        raise ConfigError(f"{WHERE}missing {missing}; see `python -m orchestration.train_hmr --help`")
    spec_settings(spec)
    if not valid_device(spec.get("device", "auto")):
        raise ConfigError(f"{WHERE}device must be auto, cpu, cuda or cuda:N, got {spec['device']!r}")
    for source in spec["sources"]:
        if parse_real_source(source) is None and not Path(source).is_dir():
            raise PipelineInputError(f"HMR training source {source} does not exist; materialize the asset writing it")


def data_fingerprint(sources: list[str]) -> str:
    """The training data by content, in source order: a shard folder's index (each shard's SHA-256)
    and manifests (``dreamer_core.fingerprint.data_fingerprint``, no image read), or a real
    dataset's label files. A shard rewritten with other bytes and the same sample count is a
    different training set."""
    parts = []
    for source in sources:
        real = parse_real_source(source)
        if real:
            parts.append({str(p.relative_to(real[1])): file_sha256(p) for p in sorted(real[1].rglob("*.pkl"))})
        else:
            parts.append(folder_fingerprint(source))
    return digest_of(parts)


def real_sources(spec: dict[str, Any], size: int, body: Any) -> dict[str, dict[str, torch.Tensor]]:
    """The ``3dpw:<root>`` sources (their train split, SMPL labels) as in-memory sets."""
    out = {}
    for source in spec["sources"]:
        real = parse_real_source(source)
        if real is None:
            continue
        if body.name != "smpl":
            raise ConfigError(f"training source {source}: its labels are SMPL, but body_model.name is {body.name}")
        out[source] = frames_to_training_batch(TRAIN_READERS[real[0]](real[1]), size, body)
    return out


def _fingerprint(spec: dict[str, Any]) -> dict[str, Any]:
    """The key of a finished checkpoint (reused when it matches) and of the resume state: what
    the model is a function of (its training set, model and training settings, the body model)
    and the training data by content. HMR starts from seeded fresh weights, so no upstream
    weights enter it; settings that only say how to run (launcher, parallel sets) do not either."""
    hmr, body = spec_settings(spec)
    keep = {"train_set": spec["train_set"], "image_size": hmr.image_size, "model": hmr.model_fields(),
            "training": hmr.training_fields(spec["seed"]), "body_model": body.to_dict()}  # fmt: skip
    return {**keep, "data": data_fingerprint(spec["sources"])}


def _distributed(setting: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(setting)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and CUDA libraries use the current device
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return int(os.environ.get("RANK", "0")), world, device


def run_training(spec: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume, or reuse) the model a spec describes; returns its summary."""
    validate_spec(spec)
    out = Path(spec["out"])
    rank, world, device = _distributed(spec.get("device", "auto"))
    fingerprint = _fingerprint(spec)
    if (done := finished_summary(out, fingerprint)) is not None:
        log(f"{spec['train_set']}: a checkpoint for this spec and data exists in {out}; not training again")
        return {**done, "reused": True}
    hmr, body_settings = spec_settings(spec)
    body = load_body_model(body_settings, device=str(device))
    size = hmr.image_size
    cpu_body = load_body_model(body_settings) if device.type != "cpu" else body  # loaders work on the CPU
    memory = real_sources(spec, size, cpu_body)
    folders = [s for s in spec["sources"] if parse_real_source(s) is None]
    stream = training_stream(folders, memory, size, hmr.batch_size, spec["seed"], rank, world, hmr.loader_workers)
    mean = training_mean(stream, memory, rank, world)  # each rank sums its share of the labels
    mean = mean.all_reduce() if world > 1 else mean
    del memory  # the stream holds its own uint8 copy of in-memory sets
    log(f"{spec['train_set']}: {stream.num_samples} training samples streamed from {len(spec['sources'])} "
        f"source(s) at {size} px on {device}{f' x {world} ranks' if world > 1 else ''}")  # fmt: skip
    cfg = HMRTraining(**hmr.training_fields(spec["seed"]))
    torch.manual_seed(cfg.seed)
    model = HMR(HMRConfig(**hmr.model_fields(), image_size=size, num_shape=body.num_shape_params)).to(device)
    wrap = None
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrap = lambda m: torch.nn.parallel.DistributedDataParallel(m, device_ids=ids)  # noqa: E731
    tracker = tracker_for(spec, rank, "hmr_training", f"hmr-{spec['train_set']}")
    say = (lambda m: log(f"{spec['train_set']}: {m}")) if rank == 0 else None
    result = train_hmr(model, body, stream, cfg, tracker=tracker, log=say,
                       resume_dir=out / "resume", checkpoint_every=hmr.checkpoint_every,
                       rank=rank, wrap=wrap, inputs=fingerprint, mean=mean)  # fmt: skip
    # The file holds what is reproducible (DVC versions it); timings go to the caller and MLflow.
    summary = {"train_set": spec["train_set"], "num_train": stream.num_samples, "steps": cfg.steps,
               "final_loss": round(float(result["final_loss"]), 6), "fingerprint": fingerprint}  # fmt: skip
    timing = {"world_size": world, "steps_run": int(result["steps_run"]), "seconds": round(result["seconds"], 1),
              "samples_per_second": round(result["samples_per_second"], 1)}  # fmt: skip
    if rank == 0:
        model = model.cpu()
        save_hmr(out, model, {"train_set": spec["train_set"], "training": hmr.training_fields(spec["seed"])})
        load_hmr(out)  # what was written reads back
        image = None
        if spec.get("overlay_folder"):
            image = ("overlay.png", _overlay(model, cpu_body, spec["overlay_folder"], size))
        publish_checkpoint(tracker, out, {k: result[k] for k in ("samples_per_second", "final_loss")}, image)
        write_json_atomic(out / "summary.json", summary)  # last: a summary means a complete checkpoint
    if world > 1:
        torch.distributed.destroy_process_group()
    return {**summary, **timing, "reused": False}


def _overlay(model: HMR, body: Any, folder: str, size: int, n: int = 8) -> bytes:
    """The first ``n`` held-out samples with the model's keypoints over their labels (read no further)."""
    data = load_samples(itertools.islice(iter_folder(folder), n), size, folder)
    pred = predicted_keypoints(model, body, data)
    images = to_uint8(data["image"])
    truth = data["keypoints_2d"][:, :COCO_KEYPOINTS].numpy()
    return keypoint_overlay_png(list(images), list(truth), list(pred))


def main(argv: list[str] | None = None) -> int:
    return entry_main(run_training, "python -m orchestration.train_hmr", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
