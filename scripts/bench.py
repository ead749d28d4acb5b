"""`make bench`: body-model forward throughput and pose-bank build time, measured in one run.

Prints poses/s at batch 1, 64 and 256 (and the speed-up of batching over batch 1, measured side
by side), then the time to build the configured pose bank and its diversity ratio.
"""

from __future__ import annotations

import time

from orchestration.env import apply_defaults

apply_defaults("tiny")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dreamer_core.bodies import load_body_model  # noqa: E402
from dreamer_core.config import load_params  # noqa: E402
from dreamer_core.poses.anatomical import sample_anatomical  # noqa: E402
from dreamer_core.poses.bank import build_pose_bank  # noqa: E402


def throughput(body, batch: int, min_seconds: float = 2.0) -> float:
    go, bp, _, _ = sample_anatomical(batch, {"standing": 1.0, "running": 1.0}, 8.0, np.random.default_rng(0))
    params = {"global_orient": torch.as_tensor(go, dtype=torch.float32),
              "body_pose": torch.as_tensor(bp, dtype=torch.float32)}  # fmt: skip
    with torch.no_grad():
        body.forward(params)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_seconds:
            body.forward(params)
            n += batch
    return n / (time.perf_counter() - t0)


def main() -> None:
    params = load_params()
    body = load_body_model(params["body_model"])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, body model {body.name}")
    print(f"{'batch':>6} {'poses/s':>10} {'vs batch 1':>11}")
    base = None
    for batch in (1, 64, 256):
        rate = throughput(body, batch)
        base = base or rate
        print(f"{batch:>6} {rate:>10.1f} {rate / base:>10.1f}x")
    settings = params["pose_bank"]
    t0 = time.perf_counter()
    bank = build_pose_bank(settings, body, params["seed"])
    dt = time.perf_counter() - t0
    s = bank.stats
    print(f"pose bank ({params['profile']}): {s['num_poses']} poses from "
          f"{int(settings['candidate_factor'] * settings['num_poses'])} candidates in {dt:.2f} s; "
          f"NN distance {s['nn_dist_mm']:.1f} mm vs random draw {s['nn_dist_random_mm']:.1f} mm "
          f"(ratio {s['nn_dist_mm'] / s['nn_dist_random_mm']:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
