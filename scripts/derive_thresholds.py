"""Derive the OKS thresholds on validation poses (never on test): run after `make demo`.

OKS became COCO's (segmentation area, the person mask, instead of the box: about half of it), so
every OKS is lower than before for the same keypoints, and the gates written for the box
(`filtered_dataset.min_oks`, `dpo.min_winner_oks`, `dpo.min_gap`) would mean something stricter.
This measures, on validation poses only:

- the reward detector on the validation renders (exact labels): what OKS a correctly labelled
  image gets, under the COCO area and under the old box area;
- validation controls through the generator each gate applies to (the base generator for the DPO
  winner gate: pairs are sampled from it; the DPO generator for the dataset filter: the rounds
  sample from it), with fresh seeds and the round code path (the same renders and seeds for both,
  so their paired OKS difference is reported too), scored by the reward detector: for
  each old box-area gate, the COCO-area threshold that keeps the same share of samples (quantile
  matching), i.e. the same gate expressed in COCO's units. (`dpo.min_gap`, a difference of OKS,
  is not re-derived.) The hardness bins (easy / medium / hard / very hard) get the same treatment:
  they label predicted OKS of the rounds' samples, so they are matched on the DPO generator's.

    .venv/bin/python scripts/derive_thresholds.py [--samples 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamer_core.datasets.torch_dataset import stack_samples  # noqa: E402
from dreamer_core.dpo.lora import load_generator_with_lora  # noqa: E402
from dreamer_core.generate.backends import load_generator  # noqa: E402
from dreamer_core.generate.evaluate import detect  # noqa: E402
from dreamer_core.generate.prompts import prompts_for  # noqa: E402
from dreamer_core.images import stack_coco_keypoints  # noqa: E402
from dreamer_core.keypoints.detectors import load_detector  # noqa: E402
from dreamer_core.keypoints.metrics import mask_area, oks  # noqa: E402
from dreamer_core.mining.rounds import generate_shard  # noqa: E402
from dreamer_core.poses.bank import read_pose_bank  # noqa: E402
from dreamer_core.render.renderer import BodyRenderer  # noqa: E402
from orchestration.resources import BodyModelResource, StorageResource  # noqa: E402
from orchestration.settings import SETTINGS  # noqa: E402

# The gates as they were written for the box area, and the generator whose samples each one gates. The
# hardness bins label the hardness model's predicted OKS, which is in the units of the rounds' samples
# (the DPO generator's, scored by the reward detector).
BOX_GATES = {"filtered_dataset.min_oks": ((0.7,), "dpo_generator"), "dpo.min_winner_oks": ((0.5,), "generator"),
             "hardness_model.bins": ((0.8, 0.6, 0.4), "dpo_generator")}  # fmt: skip


def _box_area(bbox: np.ndarray) -> np.ndarray:
    b = np.asarray(bbox, float)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _both(pred: np.ndarray, kp: np.ndarray, masks: np.ndarray, bbox: np.ndarray) -> dict[str, np.ndarray]:
    return {"coco": oks(pred, kp[..., :2], kp[..., 2], mask_area(masks)),
            "box": oks(pred, kp[..., :2], kp[..., 2], _box_area(bbox))}  # fmt: skip


def _quantiles(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    return {"mean": float(x.mean()), **{f"p{q}": float(np.quantile(x, q / 100)) for q in (10, 25, 50, 75, 90)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256, help="generated validation samples")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    storage = StorageResource()
    detector = load_detector(storage.asset_dir("pose_detector"))
    seed = SETTINGS.seed

    val = stack_samples(storage.asset_dir("reference_renders") / "val", ("image", "keypoints", "mask", "bbox"))
    pred = detect(detector, val["image"])["keypoints"].numpy()
    renders = _both(pred, val["keypoints"].numpy(), val["mask"].numpy(), val["bbox"].numpy())

    body = BodyModelResource().load()
    renderer = BodyRenderer(body)
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    pool = bank.rows("val")
    rows = pool[np.random.default_rng(seed).integers(0, len(pool), args.samples)]
    generators = {"generator": load_generator(storage.asset_dir("generator")),
                  "dpo_generator": load_generator_with_lora(storage.asset_dir("generator"),
                                                            storage.asset_dir("dpo_generator"))}  # fmt: skip
    generated, gates = {}, {}
    for name, gen in generators.items():
        result = generate_shard(body, renderer, bank, rows, SETTINGS.render, gen, detector,
                                seed, 0, "val-thresholds", SETTINGS.round_generations.batch_size,
                                lambda keys: prompts_for(seed + 1, keys))  # fmt: skip
        kp = stack_coco_keypoints(result.samples)
        masks = np.stack([s.mask for s in result.samples])
        bbox = np.stack([np.asarray(s.labels["bbox"], dtype=np.float32) for s in result.samples])
        images = torch.from_numpy(np.stack([s.image for s in result.samples])).permute(0, 3, 1, 2).float() / 255.0
        generated[name] = _both(detect(detector, images)["keypoints"].numpy(), kp, masks, bbox)
    for gate, (box_gates, name) in BOX_GATES.items():
        both = generated[name]
        finite = np.isfinite(both["box"]) & np.isfinite(both["coco"])
        for i, box_gate in enumerate(box_gates):
            keep = float(np.mean(both["box"][finite] >= box_gate))
            coco = float(np.quantile(both["coco"][finite], 1 - keep)) if keep > 0 else 1.0
            key = gate if len(box_gates) == 1 else f"{gate}[{i}]"
            gates[key] = {"box_gate": box_gate, "samples_of": name, "keep_share": keep,
                          "coco_equivalent": round(coco, 3)}  # fmt: skip
    # Same poses, cameras and noise seeds for both generators (one shard name): the paired change is
    # what DPO does on the path the rounds sample, beside the held-out controls dpo_generator reports.
    diff = generated["dpo_generator"]["coco"] - generated["generator"]["coco"]
    diff = diff[np.isfinite(diff)]
    out = {
        "validation_poses": int(len(pool)),
        "dpo_minus_base_paired": {"mean": float(diff.mean()), "sem": float(diff.std(ddof=1) / np.sqrt(len(diff)))},
        "renders": {k: _quantiles(v) for k, v in renders.items()},
        "generated": {name: {k: _quantiles(v) for k, v in both.items()} for name, both in generated.items()},
        "gates": gates,
        "num_renders": len(val["image"]),
        "num_generated": int(len(rows)),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
