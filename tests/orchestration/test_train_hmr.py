"""The HMR training entry point refuses a bad spec with a message naming what is wrong."""

from __future__ import annotations

import os

import pytest

from dreamer_core.errors import ConfigError, PipelineInputError
from orchestration.train_hmr import validate_spec

SMALL = {"image_size": 32, "backbone": "cnn", "width": 8, "depth": 2, "dim": 32, "heads": 2, "decoder_layers": 1,
         "steps": 2, "launcher": ""}  # fmt: skip


def _spec(tmp_path, **changes):
    spec = {
        "train_set": "rendered",
        "sources": [str(tmp_path)],
        "out": str(tmp_path / "out"),
        "hmr": SMALL,
        "seed": 0,
        "body_model": {"name": "anny"},
    }
    return {**spec, **changes}


def test_valid_spec_passes(tmp_path):
    validate_spec(_spec(tmp_path))


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"hmr": {**SMALL, "widht": 8}}, ConfigError, r"HMR training spec: hmr: unknown keys \['widht'\]"),
        ({"hmr": {**SMALL, "steps": 0}}, ConfigError, r"HMR training spec: hmr\.steps must be an integer in"),
        ({"body_model": {"name": "smpl-x"}}, ConfigError, r"HMR training spec: body_model\.name must be one of"),
        ({"sources": ["/nonexistent/shards"]}, PipelineInputError, "/nonexistent/shards does not exist"),
    ],
)
def test_bad_spec_is_named(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        validate_spec(_spec(tmp_path, **changes))


def test_missing_keys_are_listed(tmp_path):
    spec = _spec(tmp_path)
    del spec["out"], spec["hmr"]
    with pytest.raises(ConfigError, match=r"missing \['out', 'hmr'\]"):
        validate_spec(spec)


@pytest.mark.slow
def test_same_command_runs_data_parallel_under_torchrun(anny_body, tmp_path):
    """Two CPU ranks (gloo) train one model: rank 0 writes the checkpoint and reports both ranks."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from dreamer_core.datasets.build import write_samples
    from dreamer_core.hmr.model import load_hmr
    from tests.helpers.renders import render_poses

    samples = render_poses(anny_body, 16, seed=2, purpose="ddp")
    write_samples(tmp_path / "train", samples, 8, "train")
    spec = _spec(tmp_path / "train", out=str(tmp_path / "out"), hmr={**SMALL, "steps": 4, "batch_size": 4,
                 "checkpoint_every": 2})  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    torchrun = Path(sys.executable).parent / "torchrun"
    args = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "orchestration.train_hmr",
            "--spec", str(tmp_path / "spec.json")]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "PD_TORCH_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["world_size"] == 2 and reports[0]["steps_run"] == 4
    _, extra = load_hmr(tmp_path / "out")
    assert extra["train_set"] == "rendered" and not (tmp_path / "out" / "resume").exists()


def test_real_sources_need_an_smpl_body(anny_body, tmp_path):
    from orchestration.train_hmr import real_sources

    spec = _spec(tmp_path, sources=[f"3dpw:{tmp_path}"])
    validate_spec(spec)
    with pytest.raises(ConfigError, match="labels are SMPL, but body_model.name is anny"):
        real_sources(spec, 32, anny_body)
    with pytest.raises(PipelineInputError, match="is not a folder"):
        validate_spec(_spec(tmp_path, sources=["3dpw:/nonexistent/3DPW"]))


@pytest.mark.slow
def test_torchrun_through_dagster_pipes(anny_body, tmp_path):
    """What hmr_checkpoints runs with ``hmr.launcher: torchrun ...``: two ranks under Pipes, rank 0
    reports to Dagster, the other reads its spec from the Pipes context."""
    import dagster as dg

    from dreamer_core.datasets.build import write_samples
    from dreamer_core.hmr.model import load_hmr
    from orchestration.training_entry import training_command
    from tests.helpers.renders import render_poses

    write_samples(tmp_path / "train", render_poses(anny_body, 16, seed=4, purpose="pipes"), 8, "train")
    spec = _spec(tmp_path / "train", out=str(tmp_path / "out"), hmr={**SMALL, "steps": 4, "batch_size": 4,
                 "checkpoint_every": 2})  # fmt: skip
    command = training_command("orchestration.train_hmr", "torchrun --standalone --nproc_per_node 2")
    assert command[0].endswith("torchrun") and command[-2:] == ["-m", "orchestration.train_hmr"]

    @dg.asset
    def ddp_hmr(context):  # no annotations: this module has postponed annotations, which Dagster cannot resolve
        pipes = dg.PipesSubprocessClient(env={"PD_TORCH_THREADS": "1"})
        messages = pipes.run(context=context, command=command, extras={"spec": spec}).get_custom_messages()
        return dg.MaterializeResult(metadata={"report": messages[-1]})

    result = dg.materialize([ddp_hmr])
    assert result.success
    report = result.asset_materializations_for_node("ddp_hmr")[0].metadata["report"].value
    assert report["world_size"] == 2 and report["steps_run"] == 4
    _, extra = load_hmr(tmp_path / "out")
    assert extra["train_set"] == "rendered"
