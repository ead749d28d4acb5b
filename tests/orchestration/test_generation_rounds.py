"""The generation rounds and the filtered dataset through the real command line (what `make demo`
and a DVC stage run), in a scratch data folder and Dagster instance with a small params file:

- both rounds, the hardness model and the filtered dataset materialize, their checks pass, and
  the metadata later checks read is there; a re-materialized shard has the same bytes;
- a backfill with 2 worker processes writes the same shards and the same filtered manifest as the
  serial run;
- a run killed with SIGKILL in the middle of a shard leaves nothing a reader accepts; the rerun
  completes it and the dataset has every sample once;
- HMR models train on rendered, generated and mixed data through the Pipes entry point, the
  benchmark table has every cell, MLflow has the step metrics and checkpoints; a training killed
  with SIGKILL resumes from its last saved step when re-materialized.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers.killpoint import Zygote
from tests.helpers.pipeline import DOWNSTREAM, UPSTREAM, cli, write_small_params
from tests.helpers.pipeline import pipeline_env as _env
from tests.helpers.repo import REPO


def index_hashes(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(folder.glob("*.index.json")):
        out.update({k: v["sha256"] for k, v in json.loads(f.read_text()).items()})
    return out


def _splits(data: Path) -> dict[str, str]:
    """pose_id -> train / val / test, as the pose bank assigned them."""
    from dreamer_core.poses.bank import read_pose_bank

    bank = read_pose_bank(data / "pose_bank")
    return dict(zip(bank.arrays["pose_id"].tolist(), bank.arrays["split"].tolist(), strict=True))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds")
    write_small_params(root)
    env = _env(root, "data", "home")
    cli(env, "materialize", *UPSTREAM, checks=False)
    proc = cli(env, "materialize", *DOWNSTREAM)
    data = root / "data"
    serial = {
        "round1": index_hashes(data / "round1_generations"),
        "manifest": pd.read_parquet(data / "filtered_dataset" / "manifest.parquet"),
        "log": proc.stdout + proc.stderr,
    }
    return root, env, serial


@pytest.mark.slow
def test_rounds_hardness_and_filtered_dataset(pipeline):
    root, env, serial = pipeline
    data = root / "data"
    assert "failed asset checks" not in serial["log"]
    for r in (1, 2):
        folder = data / f"round{r}_generations"
        assert sorted(index_hashes(folder)) == ["shard-000000.tar", "shard-000001.tar"]
        rows = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("manifest-*.parquet"))])
        assert len(rows) == 64 and rows.key.is_unique and (rows["round"] == r).all()
        assert rows.seed.nunique() == 64  # per-sample seeds from (seed, round, shard, index)
    r2 = pd.concat([pd.read_parquet(p) for p in sorted((data / "round2_generations").glob("manifest-*.parquet"))])
    predictions = pd.read_parquet(data / "hardness_model" / "predictions.parquet")
    # Round 2 draws from the predicted-hardest quarter of the training poses.
    assert r2.predicted_oks_at_draw.max() <= predictions.predicted_oks.quantile(0.5) + 1e-9
    metrics = json.loads((data / "hardness_model" / "metrics.json").read_text())
    heldout = ("heldout_mae", "baseline_mae", "heldout_r2", "baseline_r2", "heldout_spearman", "beats_mean")
    assert set(heldout) <= set(metrics)
    # Round 2 ranks by out-of-sample scores: out-of-fold for every pose round 1 scored, and what a
    # round-2 sample records at draw is the score hardness_model published for its pose.
    r1 = pd.concat([pd.read_parquet(p) for p in sorted((data / "round1_generations").glob("manifest-*.parquet"))])
    by_pose = predictions.set_index("pose_id")
    assert set(by_pose.index[by_pose.out_of_fold]) == set(r1.pose_id[np.isfinite(r1.oks)])
    np.testing.assert_allclose(r2.predicted_oks_at_draw, by_pose.predicted_oks.loc[r2.pose_id])
    assert (r2.predicted_out_of_fold.to_numpy() == by_pose.out_of_fold.loc[r2.pose_id].to_numpy()).all()

    manifest = serial["manifest"]
    summary = json.loads((data / "filtered_dataset" / "summary.json").read_text())
    for key in ("num_raw", "num_kept", "num_rejected", "round1_mean_oks", "round2_mean_oks",
                "round1_mean_predicted_oks", "round2_mean_predicted_oks"):  # fmt: skip
        assert key in summary, key
    assert summary["num_raw"] == len(manifest) == 128 and summary["num_kept"] + summary["num_rejected"] == 128
    for stage in ("crowding", "pose", "quality", "near_duplicate"):
        assert {f"{stage}_decision", f"{stage}_score", f"{stage}_reason"} <= set(manifest.columns)
    assert (data / "filtered_dataset" / "README.md").read_text().startswith("# Filtered dataset")
    kept = manifest[manifest.decision == "kept"]
    assert sorted(kept.out_shard.unique()) == sorted(index_hashes(data / "filtered_dataset"))

    # Held out means held out: every sample that trains or tunes anything holds a training pose.
    split_of = _splits(data)
    rounds = pd.concat([pd.read_parquet(p) for r in (1, 2)
                        for p in sorted((data / f"round{r}_generations").glob("manifest-*.parquet"))])  # fmt: skip
    pairs = pd.read_parquet(data / "dpo_pairs" / "pairs.parquet")
    candidates = pd.read_parquet(data / "dpo_pairs" / "candidates.parquet")
    for name, ids in (("rounds", rounds.pose_id), ("filtered_dataset", manifest.pose_id),
                      ("dpo_pairs", pairs.pose_id), ("dpo candidates", candidates.pose_id)):  # fmt: skip
        assert len(ids) and {split_of[p] for p in ids} == {"train"}, name

    # The same config regenerates a shard byte for byte.
    cli(env, "materialize", "round1_generations", "--partition", "shard-000000")
    assert index_hashes(data / "round1_generations") == serial["round1"]


@pytest.mark.slow
def test_two_worker_backfill_matches_serial(pipeline):
    root, _, serial = pipeline
    data2 = root / "data2"
    data2.mkdir()
    for name in UPSTREAM:
        shutil.copytree(root / "data" / name, data2 / name)
    env2 = _env(root, "data2", "home2")
    (root / "home2").mkdir()
    cli(env2, "materialize", "round1_generations", "--workers", "2")
    assert index_hashes(data2 / "round1_generations") == serial["round1"]
    cli(env2, "materialize", "hardness_model", "round2_generations", "filtered_dataset", "--workers", "2")
    pd.testing.assert_frame_equal(pd.read_parquet(data2 / "filtered_dataset" / "manifest.parquet"),
                                  serial["manifest"])  # fmt: skip


@pytest.mark.slow
def test_sigkill_mid_shard_then_rerun_completes(pipeline):
    root, env, _ = pipeline
    data = root / "data"
    cli(env, "add-shards", "--round1", "1")
    args = [sys.executable, "-m", "orchestration.cli", "materialize", "round1_generations", "--partition",
            "shard-000002"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    for line in proc.stdout:  # the first of 4 batches is generated: kill the whole process group mid-shard
        if "shard-000002 generated: 8/32" in line or time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    folder = data / "round1_generations"
    assert "shard-000002.tar" not in index_hashes(folder), "the run finished before the kill; nothing was tested"

    cli(env, "materialize", "round1_generations", "--partition", "shard-000002")
    proc = cli(env, "materialize", "filtered_dataset")
    assert "failed asset checks" not in proc.stdout + proc.stderr
    manifest = pd.read_parquet(data / "filtered_dataset" / "manifest.parquet")
    rows = pd.read_parquet(folder / "manifest-shard-000002.parquet")
    assert len(rows) == 32 and set(rows.key) <= set(manifest.key)
    assert len(manifest) == 160 and manifest.key.is_unique  # 3 + 2 shards of 32, each sample once


@pytest.mark.slow
def test_hmr_checkpoints_and_benchmark_table(pipeline):
    from mlflow.tracking import MlflowClient

    from dreamer_core.hmr.model import load_hmr

    root, env, _ = pipeline
    data = root / "data"
    proc = cli(env, "materialize", "hmr_checkpoints", "gst_checkpoint", "benchmark_scores")
    assert "failed asset checks" not in proc.stdout + proc.stderr
    sets = ("rendered", "generated", "mixed")
    for name in sets:
        _, extra = load_hmr(data / "hmr_checkpoints" / name)
        assert extra["train_set"] == name
    summary = json.loads((data / "hmr_checkpoints" / "summary.json").read_text())
    assert summary["mixed"]["num_train"] == summary["rendered"]["num_train"] + summary["generated"]["num_train"]
    assert {summary[n]["steps"] for n in sets} == {6}  # equal budgets

    # The benchmark's test sets hold test poses only (the rendered one and the generated ones, the
    # filtered set a subset of the unfiltered one).
    from dreamer_core.datasets.shards import iter_folder

    split_of = _splits(data)
    bench = data / "benchmark_scores"
    for folder in (data / "reference_renders" / "test", bench / "generated_test", bench / "generated_test_unfiltered"):
        assert {split_of[s.labels["pose_id"]] for s in iter_folder(folder)} == {"test"}, folder
    kept, raw = ({s.key for s in iter_folder(bench / f)} for f in ("generated_test", "generated_test_unfiltered"))
    assert kept <= raw and len(raw) == 8  # benchmark_scores.generated_test_samples

    everything = pd.read_parquet(data / "benchmark_scores" / "scores.parquet")
    assert list(everything.columns) == ["model", "train_set", "test_set", "metric", "value"]
    gst = everything[everything.test_set == "gst_heldout"]
    assert set(gst.model) == {"gst", "gst_untrained", "flat_mesh", "hmr"} and len(gst) == 3 * 4 + 2
    assert set(gst[gst.model == "hmr"].train_set) == {"mixed"} and np.isfinite(gst.value).all()
    assert {"model.safetensors", "novel_views.png"} <= {p.name for p in (data / "gst_checkpoint").iterdir()}
    scores = everything[everything.test_set != "gst_heldout"]
    # (3 checkpoints + the one common mean-pose baseline) x 3 test sets x 3 metrics.
    assert len(scores) == (3 + 1) * 3 * 3 and not scores.duplicated(["model", "train_set", "test_set", "metric"]).any()
    assert set(scores.model) == {"hmr", "mean_pose"}
    assert set(scores.test_set) == {"rendered", "generated", "generated_unfiltered"}
    assert set(scores[scores.model == "mean_pose"].train_set) == {"reference_renders_train"}
    assert set(scores.metric) == {"mpjpe", "pa_mpjpe", "pve"}
    assert set(scores.train_set) == {*sets, "reference_renders_train"}
    assert np.isfinite(scores.value).all() and (scores.value > 0).all()
    report = (data / "benchmark_scores" / "README.md").read_text()
    assert "| hmr | mixed |" in report and "FID / KID" in report and "unavailable" in report and "| gst |" in report
    assert "| mean_pose | reference_renders_train |" in report and "generated_unfiltered MPJPE / mean pose" in report

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("hmr_checkpoints").experiment_id])
    assert {r.data.tags["train_set"] for r in runs} == set(sets)
    for run in runs:
        assert client.get_metric_history(run.info.run_id, "loss_total")[-1].step == 6
        assert {"lr", "samples_per_second"} <= set(run.data.metrics)
        names = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
        assert names == {"checkpoint/model.safetensors", "checkpoint/config.json"}
        assert {a.path for a in client.list_artifacts(run.info.run_id, "previews")} == {"previews/overlay.png"}

    # Materializing again with nothing changed reuses every checkpoint instead of training again.
    proc = cli(env, "materialize", "hmr_checkpoints")
    assert (proc.stdout + proc.stderr).count("not training again") == 3


@pytest.mark.slow
def test_killed_hmr_training_resumes_from_its_checkpoint(pipeline):
    root, env, _ = pipeline
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["tiny"].setdefault("hmr", {}).update(steps=80, checkpoint_every=5, train_sets=["rendered"])
    (root / "params_long.yaml").write_text(yaml.safe_dump(raw))
    env = {**env, "PD_PARAMS": str(root / "params_long.yaml")}
    state = root / "data" / "hmr_checkpoints" / "rendered" / "resume" / "state.json"
    args = [sys.executable, "-m", "orchestration.cli", "materialize", "hmr_checkpoints"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["step"] >= 10:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before the kill; nothing was tested"
    step = json.loads(state.read_text())["step"]
    assert 10 <= step < 80

    out = cli(env, "materialize", "hmr_checkpoints")
    assert f"rendered: resuming HMR training at step {step}/80" in out.stdout + out.stderr
    assert not state.parent.exists()  # the finished run clears its resume state
    assert json.loads((root / "data" / "hmr_checkpoints" / "summary.json").read_text())["rendered"]["steps"] == 80


@pytest.mark.slow
def test_missing_runs_only_what_is_not_done(pipeline):
    """``materialize --missing`` skips done partitions and assets, and reruns a done partition
    whose rewrite was killed (the old shard stays committed meanwhile; the latest attempt did not
    finish, so it is not done)."""
    root, _, _ = pipeline
    for name in ("data", "home"):
        shutil.copytree(root / name, root / f"{name}-missing")
    env = _env(root, "data-missing", "home-missing")
    folder = root / "data-missing" / "round1_generations"
    n, before = len(list(folder.glob("*.index.json"))), index_hashes(folder)  # 2 shards, or 3 after the kill test
    out = cli(env, "materialize", "round1_generations", "hardness_model", "--missing").stdout
    assert f"round1_generations: {n} of {n} done, skipped" in out and "hardness_model: 1 of 1 done" in out
    assert "materialized " not in out

    args = [sys.executable, "-m", "orchestration.cli", "materialize", "round1_generations", "--partition",
            "shard-000001"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    for line in proc.stdout:  # the first batch of the rewrite is generated: kill it
        if "shard-000001 generated: 8/32" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert index_hashes(folder) == before  # killed before it published anything: the old version stands
    out = cli(env, "materialize", "round1_generations", "--missing").stdout
    assert f"{n - 1} of {n} done, skipped" in out and "materialized round1_generations[shard-000001]: ok" in out
    assert "shard-000000]" not in out and index_hashes(folder) == before  # the same params: the same bytes

    # An unpartitioned asset whose rewrite was killed (SIGKILL at its first write) is not done either.
    (root / "zygote-missing").mkdir()
    zygote = Zygote({**env, "PYTHONPATH": str(REPO)}, REPO, root / "zygote-missing")
    try:
        killed = zygote.run("hardness_model", [root / "data-missing" / "hardness_model"], kill_at=1)
    finally:
        zygote.close()
    assert killed["signal"] == signal.SIGKILL
    out = cli(env, "materialize", "hardness_model", "--missing").stdout
    assert "materialized hardness_model: ok" in out and "skipped" not in out


@pytest.mark.slow
def test_the_score_cache_keeps_only_the_dataset_shards(pipeline):
    """The filtered dataset's score cache (carried from version to version) drops the scores of a
    shard that left the dataset, and keeps one file per shard it scores."""
    root, _, _ = pipeline
    for name in ("data", "home"):
        shutil.copytree(root / name, root / f"{name}-cache")
    env = _env(root, "data-cache", "home-cache")
    cache = root / "data-cache" / "filtered_dataset" / "scores"
    kept = sorted(p.name for p in cache.glob("*.parquet"))
    shutil.copy(cache / kept[0], cache / "round1_generations-shard-000099.parquet")  # a shard since removed
    cli(env, "materialize", "filtered_dataset")
    assert sorted(p.name for p in cache.glob("*.parquet")) == kept
    indexes = [p for r in (1, 2) for p in (root / "data-cache" / f"round{r}_generations").glob("*.index.json")]
    assert len(kept) == len(indexes)
