"""A flipped sample is still exactly labelled: its mirrored parameters pose the body onto its
mirrored joints, its joints project onto its keypoints, each keypoint reads the colour it
read before the flip, and flipping twice gives the sample back."""

import pytest
import torch

from dreamer_core.hmr.augment import JOINT_MIRROR, flip_batch
from dreamer_core.hmr.camera import project
from dreamer_core.hmr.data import samples_to_batch
from tests.helpers.renders import render_poses


@pytest.fixture(scope="module")
def batch(anny_body):
    return samples_to_batch(render_poses(anny_body, 8, seed=7, purpose="flip"))


def test_flipped_labels_are_exact(anny_body, batch):
    which = torch.tensor([True, False] * 4)
    out = flip_batch(batch, which)
    for key in batch:
        assert torch.equal(out[key][~which], batch[key][~which]), key
    with torch.no_grad():
        posed = anny_body.forward({"global_orient": out["global_orient_cam"], "body_pose": out["body_pose"],
                                   "shape": out["shape"], "transl": out["transl_cam"]}).joints  # fmt: skip
    # anny is left-right symmetric up to its mesh: the mirrored parameters land within a few mm.
    assert (posed - out["joints_3d"]).norm(dim=-1).max() < 0.01
    kp = out["keypoints_2d"]
    inside = kp[..., 2] > 0
    torch.testing.assert_close(project(out["joints_3d"], out["K"])[inside], kp[..., :2][inside], atol=1e-3, rtol=0)

    # Pixel convention: each flipped keypoint reads the same colour the original one read.
    def colours(b: dict[str, torch.Tensor], joints: torch.Tensor) -> torch.Tensor:
        uv = b["keypoints_2d"][:, joints, :2].floor().long()
        n = torch.arange(len(uv))[:, None].expand(-1, len(joints))
        return b["image"][n, :, uv[..., 1], uv[..., 0]]

    f = which.nonzero()[:, 0]
    sub = {k: v[f] for k, v in batch.items()}
    flipped = {k: v[f] for k, v in out.items()}
    vis = (sub["keypoints_2d"][..., 2] == 2).all(0).nonzero()[:, 0]
    assert len(vis) > 0
    torch.testing.assert_close(colours(flipped, JOINT_MIRROR[vis]), colours(sub, vis), atol=0, rtol=0)
    back = flip_batch(out, which)
    for key in batch:
        torch.testing.assert_close(back[key], batch[key], atol=1e-5, rtol=0)
