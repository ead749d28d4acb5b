"""Sweep DPO recipes on the validation split of a materialized ``tiny`` data folder.

Why a script and not an asset: a sweep is how defaults get chosen, and choosing them must never
touch the test poses. Every recipe here trains on the training poses' control renders (what
``dpo_pairs`` would score) and is judged on ``reference_renders/val`` with the fixed held-out seeds,
before vs after, under the reward detector and the judge. Candidates and the "before" scores are
computed once and cached in ``--out``, keyed by content (the generator's and detectors' weights, the
controls' data fingerprint, the seed and the counts), so a retrained model never reuses a stale
cache; each recipe then costs its training steps plus one pass over the validation controls.

    .venv/bin/python scripts/dpo_sweep.py --data data --out /tmp/dpo_sweep \
        --recipe '{"steps": 60}' --recipe '{"steps": 300, "pairing": "all"}'

A recipe is a JSON object of ``dpo`` keys (num_controls, num_candidates, min_gap, min_winner_oks,
pairing, beta, steps, batch_pairs, lr, lora_rank, plus train_seed: the minibatch / noise seed, to
measure how much a result depends on it); missing keys take params.yaml's values. One JSON line
per recipe is appended to ``--out/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dreamer_core.datasets.torch_dataset import stack_samples
from dreamer_core.dpo.lora import LoraSettings
from dreamer_core.dpo.pairs import PairRule, score_candidates, select_pairs
from dreamer_core.dpo.train import DPOTraining, heldout_oks, heldout_seeds, train_dpo
from dreamer_core.fingerprint import data_fingerprint, digest_of, weights_fingerprint
from dreamer_core.generate.backends import load_generator
from dreamer_core.generate.base import generate_batched
from dreamer_core.generate.prompts import prompts_for
from dreamer_core.io import load_npz, write_npz_atomic
from dreamer_core.keypoints.detectors import load_detector
from dreamer_core.seeds import derive_seed
from orchestration.settings import SETTINGS


def cache_key(data: Path, seed: int, *inputs: str) -> str:
    """Content key of a cache file: the generator and both detectors' weights, the seed, and the
    data fingerprints of the folders it reads."""
    det = data / "pose_detector"
    models = [weights_fingerprint(data / "generator"), weights_fingerprint(det), weights_fingerprint(det / "judge")]
    return digest_of([seed, *models, *(data_fingerprint(data / name) for name in inputs)])[:16]


def candidates(data: Path, out: Path, seed: int, n_ctl: int, n_cand: int) -> dict[str, np.ndarray]:
    """Images, OKS and labels of ``n_cand`` seeded candidates for the first ``n_ctl`` control renders
    (the seeds ``dpo_pairs`` uses), cached."""
    key = cache_key(data, seed, "control_renders")
    for cached in out.glob(f"candidates-{key}-*.npz"):  # per-(key, j) seeds: a larger cache slices exactly
        n, m = map(int, cached.stem.split("-")[-1].split("x"))
        if n >= n_ctl and m >= n_cand:
            a = load_npz(cached)
            return {"images": a["images"][:n_ctl, :n_cand], "controls": a["controls"][:n_ctl],
                    "oks": a["oks"][:n_ctl, :n_cand], "prompts": a["prompts"][:n_ctl]}  # fmt: skip
    path = out / f"candidates-{key}-{n_ctl}x{n_cand}.npz"
    ctl = stack_samples(data / "control_renders", ("control", "keypoints", "mask", "key"), n_ctl)
    keys = list(ctl["key"])
    seeds = [derive_seed(seed, "dpo-candidate", k, j) for k in keys for j in range(n_cand)]
    prompts = [p for p in prompts_for(seed, keys) for _ in range(n_cand)]
    t0 = time.perf_counter()
    flat = generate_batched(load_generator(data / "generator"), ctl["control"].repeat_interleave(n_cand, 0),
                            prompts, seeds, 32)  # fmt: skip
    print(f"{len(flat)} candidates in {time.perf_counter() - t0:.0f} s", flush=True)
    images = flat.reshape(len(keys), n_cand, *flat.shape[1:])
    oks = score_candidates(load_detector(data / "pose_detector"), images, ctl["keypoints"], ctl["mask"])
    arrays = {"images": (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy(),
              "controls": (ctl["control"] * 255).round().to(torch.uint8).numpy(),
              "oks": oks.astype(np.float32), "prompts": np.array(prompts_for(seed, keys))}  # fmt: skip
    write_npz_atomic(path, arrays)
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="val", choices=["val"], help="sweeps choose defaults: validation only")
    ap.add_argument("--recipe", action="append", default=[], help="JSON object of dpo keys (repeatable)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seed, base = SETTINGS.seed, SETTINGS.dpo.to_dict()
    det_dir = args.data / "pose_detector"
    detectors = {"reward": load_detector(det_dir), "judge": load_detector(det_dir / "judge")}
    held = stack_samples(args.data / "reference_renders" / args.split, ("control", "keypoints", "mask"),
                         base["heldout_controls"])  # fmt: skip
    hseeds = heldout_seeds(seed, base["heldout_seeds"], len(held["control"]))
    split_key = cache_key(args.data, seed, f"reference_renders/{args.split}")
    before_path = args.out / f"before-{split_key}-{args.split}-{len(held['control'])}x{len(hseeds)}.npz"
    if before_path.is_file():
        before = load_npz(before_path)
    else:
        gen = load_generator(args.data / "generator")
        before = heldout_oks(gen, detectors, held["control"], held["keypoints"], held["mask"], hseeds)
        write_npz_atomic(before_path, before)
    to_t = lambda a: torch.from_numpy(a).float() / 255.0  # noqa: E731
    for text in args.recipe:
        recipe = {**base, **json.loads(text)}
        cand = candidates(args.data, args.out, seed, recipe["num_controls"], recipe["num_candidates"])
        rule = PairRule(recipe["min_gap"], recipe["min_winner_oks"], recipe["pairing"])
        pairs = np.array(select_pairs(cand["oks"], rule)).reshape(-1, 3)
        c, w, lo = pairs.T
        gen = load_generator(args.data / "generator")
        lora = LoraSettings(rank=recipe["lora_rank"], alpha=float(recipe["lora_rank"]),
                            targets=tuple(recipe["lora_targets"]))  # fmt: skip
        cfg = DPOTraining(steps=recipe["steps"], batch_pairs=recipe["batch_pairs"], lr=recipe["lr"],
                          beta=recipe["beta"], seed=recipe.get("train_seed", seed), lora=lora)  # fmt: skip
        t0 = time.perf_counter()
        stats = train_dpo(gen, to_t(cand["images"][c, w]), to_t(cand["images"][c, lo]), to_t(cand["controls"][c]),
                          [str(p) for p in cand["prompts"][c]], cfg)  # fmt: skip
        train_s = time.perf_counter() - t0
        after = heldout_oks(gen, detectors, held["control"], held["keypoints"], held["mask"], hseeds)
        row = {"recipe": json.loads(text), "seed": seed, "split": args.split, "num_pairs": len(pairs),
               "train_seconds": round(train_s, 1), "implicit_accuracy": stats["implicit_accuracy"]}  # fmt: skip
        for name in detectors:
            delta = np.nanmean(after[name], axis=1) - np.nanmean(before[name], axis=1)
            row[f"{name}_before"] = float(np.nanmean(before[name]))
            row[f"{name}_delta"] = float(delta.mean())
            row[f"{name}_delta_std"] = float(delta.std(ddof=1))
        print(json.dumps(row), flush=True)
        with (args.out / "results.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
