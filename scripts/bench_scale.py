"""`make bench-scale`: does memory stay flat and cost stay linear when the data grow 8x?

Every asset runs in its own ``python -m orchestration.cli materialize <asset>`` process (what a
DVC stage or a Dagster step runs), on a scratch data folder, Dagster instance and MLflow store, with
DVC off, twice: with the tiny models on N samples and on 8N (every count of data scaled by 8, every
training's step count the same). A sampler polls the resident memory (PSS: shared pages counted
once) of the process and all its children (DataLoader workers, Pipes training processes) ten
times a second.

Per asset it prints the peak RSS and the seconds per unit at both sizes, and their ratios. The unit
is a sample the asset writes (producers) or a training step (training entry points: their steps
are fixed, so a loop that streams costs the same per step at 8N; one that loads its split grows).
Then a projection of each asset's peak RSS to the ``full`` profile's data: flat (the N run's peak)
when the 8N peak is within 10% of it, else linear in the samples of data it reads or writes (the
memory per sample measured between N and 8N, scaled by the pixel count from this bench's 48 px to
the full profile's size for image-holding assets). Seconds per unit include each process's start
(~15 s of imports, model loads and Dagster set-up): for producers, whose units grow 8x, that
start is spread over more units at 8N, so their ratio understates any growth; training entry
points run the same steps at both sizes, so theirs is the cost of larger data alone. The last line is

    scale: worst peak-RSS ratio X.XX, worst time-per-sample ratio Y.YY at 8x data
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dreamer_core.config import PipelineSettings, load_settings  # noqa: E402

SIZE = 48  # px: the bench's renders


def scaled(s: int) -> dict[str, dict]:
    """The tiny profile cut to seconds per asset, every count of data times ``s``."""
    return {
        "pose_bank": {"num_poses": 64 * s, "candidate_factor": 2},
        "render": {"image_size": SIZE, "supersample": 2},
        "reference_renders": {"num_train": 48 * s, "num_val": 12 * s, "num_test": 12 * s,
                              "multiview_subjects": 3 * s, "multiview_heldout": s, "views_per_ring": 4,
                              "samples_per_shard": 16},
        "control_renders": {"num_shards": s, "samples_per_shard": 16},
        "pose_detector": {"steps": 200, "batch_size": 8, "width": 16, "judge_steps": 10},  # finds people
        "generator": {"steps": 4, "batch_size": 4, "channels": [16, 32], "eval_samples": 6, "sample_steps": 2},
        "dpo": {"num_controls": 8 * s, "num_candidates": 2, "min_gap": 0.0, "min_winner_oks": 0.0, "steps": 2,
                "batch_pairs": 2, "heldout_controls": 4 * s, "heldout_seeds": 2, "lora_rank": 2},
        "round_generations": {"samples_per_shard": 16, "initial_shards": s, "batch_size": 8},
        "hardness_model": {"min_samples_leaf": 2, "max_iter": 20, "folds": 3},
        "filtered_dataset": {"min_oks": 0.0, "min_keypoint_score": 0.0, "min_person_area": 0.0, "min_sharpness": 0.0,
                             "samples_per_shard": 16},
        "hmr": {"image_size": 32, "width": 8, "dim": 32, "heads": 2, "decoder_layers": 1, "steps": 6, "batch_size": 4,
                "checkpoint_every": 2},
        "benchmark_scores": {"generated_test_samples": 8 * s},
        "gst": {"num_vertices": 64, "chunk": 32, "steps": 4, "subjects_per_step": 2, "target_views": 2,
                "checkpoint_every": 2},
    }  # fmt: skip


def units(p: PipelineSettings) -> dict[str, tuple[int, str, int, bool]]:
    """Asset -> (units of work, unit name, samples of data it reads or writes, holds images) under
    settings ``p``. Training entry points run a fixed number of steps (their unit), while their
    data grow: that is what their memory would grow with if they held it."""
    ref, rg, dpo = p.reference_renders, p.round_generations, p.dpo
    views = ref.multiview_subjects * ref.views_per_ring * len(ref.elevations_deg)
    renders = ref.num_train + ref.num_val + ref.num_test + views
    shard_samples = rg.initial_shards * rg.samples_per_shard
    generated = 2 * shard_samples  # both rounds
    controls = p.control_renders.num_shards * p.control_renders.samples_per_shard
    return {
        "pose_bank": (p.pose_bank.num_poses, "pose", p.pose_bank.num_poses, False),
        "reference_renders": (renders, "sample", renders, True),
        "control_renders": (controls, "sample", controls, True),
        "pose_detector": (p.pose_detector.steps + p.pose_detector.judge_steps, "step", ref.num_train + ref.num_test,
                          True),
        "generator": (p.generator.steps, "step", ref.num_train, True),
        "dpo_pairs": (dpo.num_controls, "control", dpo.num_controls * dpo.num_candidates, True),
        "dpo_generator": (dpo.steps, "step", dpo.num_controls + dpo.heldout_controls, True),
        "round1_generations": (shard_samples, "sample", shard_samples, True),
        "hardness_model": (p.pose_bank.num_poses, "pose", p.pose_bank.num_poses, False),
        "round2_generations": (shard_samples, "sample", shard_samples, True),
        "filtered_dataset": (generated, "sample", generated, True),
        "hmr_checkpoints": (p.hmr.steps * len(p.hmr.train_sets), "step", ref.num_train + generated, True),
        "gst_checkpoint": (p.gst.steps, "step", views, True),
        "benchmark_scores": (ref.num_test + p.benchmark_scores.generated_test_samples, "sample",
                             ref.num_test + p.benchmark_scores.generated_test_samples, True),
    }  # fmt: skip


FLAT = 1.10  # a peak-RSS ratio at 8x data up to this is allocator noise: projected flat


@dataclass
class Run:
    seconds: float
    peak_mb: float
    ok: bool
    tail: str


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process tree, each shared page counted once: the proportional set size
    (PSS) where the system reports it. Plain RSS counts a forked child's pages twice (a child that
    ``fork`` made shares its parent's pages until it ``exec``s), which showed as +500 MB spikes."""
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # the process itself just exited
        return 0
    for p in tree:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.Error:  # a child that just exited
            pass
    return total


def run_asset(asset: str, env: dict[str, str], log: Path) -> Run:
    """Materialize ``asset`` (all its partitions) in a fresh process; its wall time and the peak RSS
    of its process tree."""
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "materialize", asset], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        ps, peak, done = psutil.Process(proc.pid), 0, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss(ps))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
    text = log.read_text()
    # Learning targets cannot be met in a few steps: exit 1 with every run ok is a missed WARN/ERROR check.
    ok = code == 0 or (code == 1 and "FAILED" not in text)
    return Run(seconds, peak / 2**20, ok, text[-1500:])


def pipeline(root: Path, s: int) -> dict[str, dict]:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in scaled(s).items():
        raw["tiny"].setdefault(section, {}).update(values)
    raw["profile"] = "tiny"
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return raw["tiny"]


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PD_", "MLFLOW_", "DAGSTER_", "DVC_"))}
    env.update(PD_PARAMS=str(root / "params.yaml"), PD_DATA_DIR=str(root / "data"), DAGSTER_HOME=str(root / "home"),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", PD_DVC="off", PD_PROFILE="tiny",
               PD_MLFLOW_ARTIFACT_ROOT=(root / "artifacts").as_uri())  # fmt: skip
    return env


def measure(scale: int, assets: list[str], work: Path) -> tuple[dict[str, Run], PipelineSettings]:
    root = work / f"x{scale}"
    root.mkdir(parents=True)
    pipeline(root, scale)
    settings = load_settings(root / "params.yaml", "tiny")
    env = environment(root)
    runs = {}
    for asset in assets:
        runs[asset] = run_asset(asset, env, root / f"{asset}.log")
        r = runs[asset]
        print(f"  x{scale} {asset}: {r.seconds:.1f} s, peak {r.peak_mb:.0f} MB{'' if r.ok else ' FAILED'}", flush=True)
        if not r.ok:
            print(r.tail, file=sys.stderr)
            raise SystemExit(f"{asset} failed at x{scale}; its log: {root / (asset + '.log')}")
    return runs, settings


def report(small: dict[str, Run], big: dict[str, Run], ps: PipelineSettings, pb: PipelineSettings) -> None:
    full = load_settings(REPO / "params.yaml", "full")
    us, ub, uf = units(ps), units(pb), units(full)
    pixels = (full.render.image_size / SIZE) ** 2
    print(f"\n{'asset':<20} {'unit':>7} {'units N':>8} {'RSS N MB':>9} {'RSS 8N':>8} {'ratio':>6} {'s/unit N':>9} "
          f"{'s/unit 8N':>10} {'ratio':>6} {'full: data':>11} {'proj. RSS GB':>13}")  # fmt: skip
    worst_rss = worst_time = 0.0
    for asset, a in small.items():
        b = big[asset]
        (n1, unit, d1, images), (n8, _, d8, _), (_, _, df, _) = us[asset], ub[asset], uf[asset]
        rss_ratio = b.peak_mb / a.peak_mb
        t1, t8 = a.seconds / n1, b.seconds / n8
        # Linear in the data when memory grew beyond noise (per data sample, scaled by the pixel
        # count from 48 px to the full profile's size for image-holding assets); flat otherwise.
        per_sample_mb = (b.peak_mb - a.peak_mb) / max(d8 - d1, 1) if rss_ratio > FLAT else 0.0
        projected = (a.peak_mb + per_sample_mb * (pixels if images else 1.0) * max(df - d1, 0)) / 1024
        worst_rss, worst_time = max(worst_rss, rss_ratio), max(worst_time, t8 / t1)
        print(f"{asset:<20} {unit:>7} {n1:>8} {a.peak_mb:>9.0f} {b.peak_mb:>8.0f} {rss_ratio:>6.2f} {t1:>9.3f} "
              f"{t8:>10.3f} {t8 / t1:>6.2f} {df:>11} {projected:>13.1f}")  # fmt: skip
    print(f"\nscale: worst peak-RSS ratio {worst_rss:.2f}, worst time-per-sample ratio {worst_time:.2f} at 8x data")


def _graph_order() -> list[str]:
    from orchestration.definitions import defs

    return [k.to_user_string() for k in defs.resolve_asset_graph().toposorted_asset_keys]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", nargs="*", help="only these assets (with their upstream already in the order)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders (their logs)")
    args = parser.parse_args()
    graph = _graph_order()
    if sorted(units(load_settings())) != sorted(graph):
        raise SystemExit(f"units() must name every asset of the graph: {graph}")
    assets = [a for a in graph if not args.assets or a in args.assets]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    print(f"scratch: {work}; {len(assets)} assets at N and 8N", flush=True)
    try:
        small, ps = measure(1, assets, work)
        big, pb = measure(8, assets, work)
        report(small, big, ps, pb)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
