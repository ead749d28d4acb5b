"""Train GST: ``python -m orchestration.train_gst --spec spec.json``.

The ``gst_checkpoint`` asset launches this module through Dagster Pipes, as ``hmr_checkpoints``
launches ``train_hmr``. A killed run resumes from ``<out>/resume``; a finished one with the same
spec, HMR checkpoint and multi-view shards is not trained again.

The spec (JSON): ``hmr_checkpoint`` (an hmr_checkpoints folder), ``multiview`` (the
reference_renders multiview shard folder), ``out``, ``model`` (GSTConfig fields), ``training``
(GSTTraining fields), ``body_model`` (params.yaml section), optional ``device`` (``auto | cpu |
cuda[:N]``: the model, the body and each step's subjects go there; on CUDA the rasterizer is
gsplat's kernels), ``checkpoint_every`` and ``mlflow`` (``tracking_uri``, ``run_id`` or ``experiment``).
"""

import sys
from pathlib import Path
from typing import Any

import torch

from avatar_core.gst.assemble import Assembler
from avatar_core.gst.data import load_multiview, subject_stream
from avatar_core.gst.evaluate import novel_view_protocol, targets_of
from avatar_core.gst.model import GST, GSTConfig, load_gst, save_gst
from avatar_core.gst.train import GSTTraining, describe, render_targets, train_gst
from dreamer_core.bodies import load_body_model
from dreamer_core.config import BodyModelSettings, GSTSettings
from dreamer_core.devices import resolve_device, valid_device
from dreamer_core.errors import ConfigError, PipelineInputError
from dreamer_core.fingerprint import weights_fingerprint
from dreamer_core.hmr.model import load_hmr
from dreamer_core.io import write_json_atomic
from dreamer_core.viz import sample_grid_png
from orchestration.train_hmr import data_fingerprint
from orchestration.training_entry import entry_main, finished_summary, publish_checkpoint, tracker_for

REQUIRED = ("hmr_checkpoint", "multiview", "out", "gst", "seed", "body_model")
WHERE = "GST training spec: "


def spec_settings(spec: dict[str, Any]) -> tuple[GSTSettings, BodyModelSettings]:
    """The spec's settings, checked like params.yaml (an unknown or bad key is named)."""
    return GSTSettings.from_mapping(spec["gst"], WHERE), BodyModelSettings.from_mapping(spec["body_model"], WHERE)


def validate_spec(spec: dict[str, Any]) -> None:
    missing = [k for k in REQUIRED if k not in spec]
    if missing:
        raise ConfigError(f"{WHERE}missing {missing}; see `python -m orchestration.train_gst --help`")
    spec_settings(spec)
    if not valid_device(spec.get("device", "auto")):
        raise ConfigError(f"{WHERE}device must be auto, cpu, cuda or cuda:N, got {spec['device']!r}")
    for key, asset in (("hmr_checkpoint", "hmr_checkpoints"), ("multiview", "reference_renders")):
        if not Path(spec[key]).is_dir():
            raise PipelineInputError(f"GST {key} {spec[key]} does not exist; materialize {asset}")


def _fingerprint(spec: dict[str, Any]) -> dict[str, Any]:
    """The key of a finished checkpoint (reused when it matches) and of the resume state: the model
    and training settings, the HMR checkpoint GST starts from (its weight files by SHA-256) and the
    multi-view shards by content. A retrained HMR with the same config and counts is a different start."""
    gst, body = spec_settings(spec)
    keep = {"model": gst.model_fields(), "training": gst.training_fields(spec["seed"]), "body_model": body.to_dict()}
    return {**keep, "hmr": weights_fingerprint(spec["hmr_checkpoint"]), "data": data_fingerprint([spec["multiview"]])}


def build(spec: dict[str, Any], body: Any) -> tuple[GST, Assembler]:
    """A fresh GST on the spec's HMR checkpoint (also the untrained baseline)."""
    hmr, _ = load_hmr(spec["hmr_checkpoint"])
    values = spec_settings(spec)[0].model_fields()
    values["num_vertices"] = min(values["num_vertices"], body.num_vertices)
    assembler = Assembler.for_body(body, values["num_vertices"])
    values["init_scale"] = assembler.vertex_spacing()
    torch.manual_seed(spec["seed"])
    return GST(hmr, GSTConfig(**values)), assembler


def novel_view_png(model: GST, assembler: Assembler, views: dict[str, torch.Tensor], n: int = 4) -> bytes:
    """Held-out subjects, one per row: the input, then (prediction, target) for three novel views."""
    subject, view, targets = novel_view_protocol(views)
    subject, view = subject[:n], view[:n]
    picks = torch.linspace(0, targets.shape[1] - 1, 3).long()
    targets = targets[:n][:, picks]
    with torch.no_grad():
        rgb, _, _ = render_targets(model, assembler, views, subject, view, targets)
    truth, _ = targets_of(views, subject, targets)

    def u8(x: torch.Tensor):  # noqa: ANN202
        return (x.clamp(0, 1) * 255).round().byte().numpy()

    rows = []
    for i in range(len(subject)):
        row = [u8(views["images"][subject[i], view[i]].permute(1, 2, 0))]
        for j in range(targets.shape[1]):
            row += [u8(rgb[i, j]), u8(truth[i, j])]
        rows.append(row)
    return sample_grid_png(rows, cell=96)


def run_training(spec: dict[str, Any], log=print) -> dict[str, Any]:  # noqa: ANN001
    validate_spec(spec)
    out = Path(spec["out"])
    fingerprint = _fingerprint(spec)
    if (done := finished_summary(out, fingerprint)) is not None:
        log(f"a GST checkpoint for this spec, HMR checkpoint and data exists in {out}; not training again")
        return {**done, "reused": True}
    gst, body_settings = spec_settings(spec)
    device = resolve_device(spec.get("device", "auto"))
    body = load_body_model(body_settings, device=str(device))
    cfg = GSTTraining(**gst.training_fields(spec["seed"]))
    train = subject_stream(spec["multiview"], cfg.subjects_per_step, cfg.seed, gst.loader_workers)
    model, assembler = build(spec, body)
    model.to(device)
    info = describe(model)
    log(f"GST: {info['gaussians']} Gaussians, {info['trainable_parameters']:,} trainable parameters; "
        f"{train.num_samples} training subjects streamed from {len(train.refs)} shard(s), on {device}")  # fmt: skip
    tracker = tracker_for(spec, 0, "gst_training", "gst")
    result = train_gst(model, assembler, train, cfg, tracker=tracker, log=log, resume_dir=out / "resume",
                       checkpoint_every=gst.checkpoint_every, inputs=fingerprint)  # fmt: skip
    extra = {"training": gst.training_fields(spec["seed"]), "hmr_checkpoint": Path(spec["hmr_checkpoint"]).name}
    if device.type != "cpu":  # the preview and the saved weights are made on the CPU
        body = load_body_model(body_settings)
        model, assembler = model.cpu(), Assembler(body, assembler.vertex_ids)
    save_gst(out, model, assembler.vertex_ids, extra)
    load_gst(out)  # what was written reads back
    heldout = load_multiview(spec["multiview"], heldout=True, limit=4)  # the preview's subjects, after training
    publish_checkpoint(tracker, out, {k: result[k] for k in ("subjects_per_second", "final_loss")},
                       ("novel_views.png", novel_view_png(model, assembler, heldout)))  # fmt: skip
    summary = {"num_subjects": train.num_samples, "gaussians": info["gaussians"], "steps": cfg.steps,
               "final_loss": round(float(result["final_loss"]), 6), "fingerprint": fingerprint,
               "lpips": "unavailable: no LPIPS weights in this profile"}  # fmt: skip
    write_json_atomic(out / "summary.json", summary)  # last: a summary means a complete checkpoint
    timing = {"steps_run": int(result["steps_run"]), "seconds": round(result["seconds"], 1),
              "subjects_per_second": round(result["subjects_per_second"], 2)}  # fmt: skip
    return {**summary, **timing, "reused": False}


def main(argv: list[str] | None = None) -> int:
    return entry_main(run_training, "python -m orchestration.train_gst", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
