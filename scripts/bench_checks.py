"""`make bench-checks`: does a partition's asset check cost the same with 8 shards as with 64?

A backfill of S shards runs S partition runs; before checks were per partition each run checked
the whole folder (S^2 shard reads in all). This bench backfills ``control_renders`` (tiny models,
48 px, 8 samples a shard) with 2 workers, as ``cli materialize control_renders --workers 2`` does,
into a scratch pipeline at 8 and at 64 shards, then reads every run's step timings from the
Dagster instance: the wall time of the partition's check step (``control_renders_valid``) and of
its asset step, per partition, at both sizes. The last line is

    checks: median X.XX s at 8 shards, Y.YY s at 64 (ratio R.RR); asset step A.AA / B.BB s

The round shards' checks (``round1_shards_valid`` / ``round2_shards_valid``) run the same
function (``assets/shard_checks.py``) on their own partition.
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

from bench_scale import environment  # noqa: E402

CHECK = "control_renders_valid"


def pipeline(root: Path, shards: int) -> dict[str, str]:
    """A scratch tiny pipeline with ``shards`` control shards of 8 samples at 48 px."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tiny"]["pose_bank"].update(num_poses=64, candidate_factor=2)
    raw["tiny"]["render"].update(image_size=48, supersample=2)
    raw["tiny"]["control_renders"].update(num_shards=shards, samples_per_shard=8)
    raw["profile"] = "tiny"
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return environment(root)


def step_seconds() -> dict[str, list[float]]:
    """Per step kind (the asset's, the check's), the wall seconds of every run's step."""
    from orchestration.env import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    instance = dg.DagsterInstance.get()
    out: dict[str, list[float]] = {"asset": [], "check": []}
    for record in instance.get_run_records():
        for stats in instance.get_run_step_stats(record.dagster_run.run_id):
            if stats.start_time is None or stats.end_time is None:
                continue
            kind = "check" if CHECK in stats.step_key else "asset" if stats.step_key == "control_renders" else None
            if kind:
                out[kind].append(stats.end_time - stats.start_time)
    return out


def measure(work: Path, shards: int) -> dict[str, object]:
    env = pipeline(work / f"s{shards}", shards)
    log = work / f"s{shards}.log"
    with log.open("w") as f:
        for args in (["pose_bank"], ["control_renders", "--workers", "2"]):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "orchestration.cli", "materialize", *args], cwd=REPO, env=env,
                                  stdout=f, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
            if done.returncode:
                raise SystemExit(f"{args[0]} failed at {shards} shards; its log: {log}")
        wall = time.perf_counter() - t0
    stats = subprocess.run([sys.executable, __file__, "--stats"], cwd=REPO, env=env, capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    steps = json.loads(stats.strip().splitlines()[-1])
    if len(steps["check"]) != shards:
        raise SystemExit(f"{len(steps['check'])} check steps ran for {shards} shards; see {log}")
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
    try:
        rows = [measure(work, n) for n in (8, 64)]
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'shards':>6} {'backfill s':>11} {'check median s':>15} {'check max s':>12} {'asset median s':>15}")
    for r in rows:
        print(f"{r['shards']:>6} {r['backfill_s']:>11.1f} {statistics.median(r['check']):>15.2f} "
              f"{max(r['check']):>12.2f} {statistics.median(r['asset']):>15.2f}")  # fmt: skip
    small, big = (statistics.median(r["check"]) for r in rows)
    a_small, a_big = (statistics.median(r["asset"]) for r in rows)
    print(f"\nchecks: median {small:.2f} s at 8 shards, {big:.2f} s at 64 (ratio {big / small:.2f}); "
          f"asset step {a_small:.2f} / {a_big:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
