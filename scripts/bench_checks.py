"""`make bench-checks`: does a partition's asset check cost the same with 8 shards as with 64?

A backfill of S shards runs S partition runs; before checks were per partition each run checked
the whole folder (S^2 shard reads in all). This bench backfills ``control_renders`` and
``reference_renders`` (tiny models, 48 px, 8 samples a shard; reference_renders' S partitions are
S - 4 train shards, one val, one test and two multi-view subjects of 8 views) with 2 workers, as
``cli materialize <asset> --workers 2`` does, into a scratch pipeline at 8 and at 64 shards each.
Then it trains the upstream models of the generation rounds for seconds (``bench_scale``'s cut of
the tiny profile) and backfills both rounds with 2 workers: S / 8 shards each in the 8-shard
pipeline, 8 shards each in the 64-shard one (the full-shaped run). It reads every run's step
timings from the Dagster instance: the wall time of each partition's check step and of its asset
step, at both sizes. The last line per asset is

    <asset> checks: median X.XX s at 8 shards, Y.YY s at 64 (ratio R.RR); asset step A.AA / B.BB s

(for the rounds "at 1 shards ... at 8").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_scale import environment, scaled  # noqa: E402

CHECKS = {"control_renders": "control_renders_valid", "reference_renders": "reference_renders_valid",
          "round1_generations": "round1_shards_valid", "round2_generations": "round2_shards_valid"}  # fmt: skip
ASSETS = tuple(CHECKS)
SHARDED = ("control_renders", "reference_renders")  # S shards; the rounds get S // 8
# What the rounds need, in order, trained for seconds; then the rounds and the model between them.
UPSTREAM = ("pose_detector", "generator", "dpo_pairs", "dpo_generator")


def pipeline(root: Path, shards: int) -> dict[str, str]:
    """A scratch tiny pipeline of 48 px renders: ``shards`` control shards and ``shards`` reference_renders
    partitions of 8 samples each, the rounds with ``round_shards(shards)`` shards."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tiny"]["pose_bank"].update(num_poses=64, candidate_factor=2)
    raw["tiny"]["render"].update(image_size=48, supersample=2)
    raw["tiny"]["control_renders"].update(num_shards=shards, samples_per_shard=8)
    raw["tiny"]["reference_renders"].update(num_train=8 * (shards - 4), num_val=8, num_test=8, multiview_subjects=2,
                                            multiview_heldout=1, views_per_ring=8, elevations_deg=[10.0],
                                            samples_per_shard=8)  # fmt: skip
    for section in ("pose_detector", "generator", "dpo", "hardness_model"):  # UPSTREAM's and the rounds' sections
        raw["tiny"][section].update(scaled(1)[section])
    raw["tiny"]["round_generations"].update(initial_shards=round_shards(shards), samples_per_shard=8, batch_size=8)
    raw["profile"] = "tiny"
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return environment(root)


def round_shards(shards: int) -> int:
    return max(1, shards // 8)


def step_seconds() -> dict[str, list[float]]:
    """Per asset and step kind (``<asset>:asset``, ``<asset>:check``), the wall seconds of every run's step."""
    from orchestration.env import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    instance = dg.DagsterInstance.get()
    out: dict[str, list[float]] = {f"{a}:{k}": [] for a in ASSETS for k in ("asset", "check")}
    for record in instance.get_run_records():
        for stats in instance.get_run_step_stats(record.dagster_run.run_id):
            if stats.start_time is None or stats.end_time is None:
                continue
            for asset, check in CHECKS.items():
                kind = "check" if check in stats.step_key else "asset" if stats.step_key == asset else None
                if kind:
                    out[f"{asset}:{kind}"].append(stats.end_time - stats.start_time)
    return out


def measure(work: Path, shards: int) -> dict[str, object]:
    env = pipeline(work / f"s{shards}", shards)
    log = work / f"s{shards}.log"
    wall = {}
    with log.open("w") as f:
        commands = (["pose_bank"], *([a, "--workers", "2"] for a in SHARDED), *([a] for a in UPSTREAM),
                    ["round1_generations", "--workers", "2"], ["hardness_model"],
                    ["round2_generations", "--workers", "2"])  # fmt: skip
        for args in commands:
            print(f"  {shards} shards: {args[0]}", flush=True)
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "orchestration.cli", "materialize", *args], cwd=REPO, env=env,
                                  stdout=f, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
            if done.returncode:
                raise SystemExit(f"{args[0]} failed at {shards} shards; its log: {log}")
            wall[args[0]] = time.perf_counter() - t0
    stats = subprocess.run([sys.executable, __file__, "--stats"], cwd=REPO, env=env, capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    steps = json.loads(stats.strip().splitlines()[-1])
    for asset in ASSETS:
        expected = shards if asset in SHARDED else round_shards(shards)
        if len(steps[f"{asset}:check"]) != expected:
            raise SystemExit(f"{len(steps[asset + ':check'])} {asset} check steps ran for {expected} shards; see {log}")
    return {"shards": shards, "backfill_s": wall, **steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stats", action="store_true", help=argparse.SUPPRESS)  # inside a scratch pipeline
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders (their logs)")
    args = parser.parse_args()
    if args.stats:
        print(json.dumps(step_seconds()))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-checks-"))
    print(f"scratch: {work}", flush=True)
    rows = [measure(work, n) for n in (8, 64)]  # a failure keeps the scratch folder: its message names a log there
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    for asset in ASSETS:
        print(f"\n{asset}\n{'shards':>6} {'backfill s':>11} {'check median s':>15} {'check max s':>12} "
              f"{'asset median s':>15}")  # fmt: skip
        for r in rows:
            check, step = r[f"{asset}:check"], r[f"{asset}:asset"]
            n = r["shards"] if asset in SHARDED else round_shards(r["shards"])
            print(f"{n:>6} {r['backfill_s'][asset]:>11.1f} {statistics.median(check):>15.2f} "
                  f"{max(check):>12.2f} {statistics.median(step):>15.2f}")  # fmt: skip
    for asset in ASSETS:
        small, big = (statistics.median(r[f"{asset}:check"]) for r in rows)
        a_small, a_big = (statistics.median(r[f"{asset}:asset"]) for r in rows)
        n_small, n_big = (r["shards"] if asset in SHARDED else round_shards(r["shards"]) for r in rows)
        print(f"{asset} checks: median {small:.2f} s at {n_small} shards, {big:.2f} s at {n_big} "
              f"(ratio {big / small:.2f}); "
              f"asset step {a_small:.2f} / {a_big:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
