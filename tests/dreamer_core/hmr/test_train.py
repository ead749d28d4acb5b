"""HMR learns from real renders: after a short training on train poses, MPJPE on held-out poses
(unseen poses, cameras and appearances) is clearly below the mean-parameter baseline on the same
samples; a killed training resumes to bit-identical weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from dreamer_core.datasets.build import BuildReport, render_samples
from dreamer_core.hmr.data import samples_to_batch
from dreamer_core.hmr.model import HMR, HMRConfig
from dreamer_core.hmr.train import (
    HMRTraining,
    evaluate_hmr,
    hmr_resume_key,
    mean_predictor,
    train_hmr,
)
from dreamer_core.render.renderer import BodyRenderer
from tests.helpers.renders import SETTINGS, small_bank


@pytest.fixture(scope="module")
def splits(anny_body):
    bank = small_bank(anny_body, 160, seed=1)
    train_rows, test_rows = bank.rows("train"), bank.rows("test")
    renderer, rs = BodyRenderer(anny_body), replace(SETTINGS, image_size=48)

    def render(rows: np.ndarray, n: int, purpose: str):
        return samples_to_batch(render_samples(anny_body, renderer, bank, rows[np.arange(n) % len(rows)], rs, 1,
                                               purpose, purpose[:2], True, BuildReport(), purpose))  # fmt: skip

    return render(train_rows, 640, "train"), render(test_rows, 96, "test")


def _model(body) -> HMR:
    torch.manual_seed(0)
    return HMR(HMRConfig(image_size=48, width=16, depth=3, dim=128, num_shape=body.num_shape_params))


@pytest.mark.slow
def test_beats_mean_pose_on_heldout_poses(anny_body, splits):
    train, test = splits
    model = _model(anny_body)
    train_hmr(model, anny_body, train, HMRTraining(steps=250, batch_size=32, lr=1e-3))
    base = evaluate_hmr(mean_predictor(model), anny_body, test)
    ours = evaluate_hmr(model, anny_body, test)
    assert ours["mpjpe"] < 0.95 * base["mpjpe"], (ours, base)
    assert ours["pve"] < 0.95 * base["pve"], (ours, base)


def test_killed_training_resumes_to_the_same_weights(anny_body, splits, tmp_path):
    train = {k: v[:24] for k, v in splits[0].items()}
    cfg = HMRTraining(steps=6, batch_size=4, seed=3)
    straight = _model(anny_body)
    fresh = {k: v.clone() for k, v in straight.state_dict().items()}
    train_hmr(straight, anny_body, train, cfg)

    def kill(step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt  # after the state of step 4 was saved

    killed = _model(anny_body)
    killed.load_state_dict(fresh)
    with pytest.raises(KeyboardInterrupt):
        train_hmr(killed, anny_body, train, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2, after_step=kill)
    steps: list[int] = []
    again = _model(anny_body)  # a new process: fresh weights, state from disk
    train_hmr(again, anny_body, train, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2,
              after_step=steps.append)  # fmt: skip
    assert steps == [5, 6] and not (tmp_path / "resume").exists()
    for k, v in straight.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_resume_key_is_the_data_content_not_its_count():
    """Without the anny fixture: the key needs only the model's config and the data."""
    torch.manual_seed(0)
    model = HMR(HMRConfig(image_size=16, width=4, depth=2, dim=16, heads=2, decoder_layers=1, num_shape=4))
    data = {"image": torch.rand(6, 3, 16, 16), "joints_3d": torch.rand(6, 22, 3)}
    cfg = HMRTraining(steps=4, batch_size=2)
    key = hmr_resume_key(model, data, cfg)
    assert key == hmr_resume_key(model, {k: v.clone() for k, v in data.items()}, cfg)  # a rerun resumes
    other = {**data, "joints_3d": data["joints_3d"] + 1e-3}  # same count and settings, other labels
    assert hmr_resume_key(model, other, cfg) != key
    spec_a, spec_b = {"data": "index-a"}, {"data": "index-b"}  # what train_hmr's entry point passes
    assert hmr_resume_key(model, data, cfg, spec_a) == hmr_resume_key(model, other, cfg, spec_a)
    assert hmr_resume_key(model, data, cfg, spec_a) != hmr_resume_key(model, data, cfg, spec_b)
