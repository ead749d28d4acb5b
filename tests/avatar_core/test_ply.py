"""An exported avatar opens in plyfile with the standard 3DGS fields, imports to the same
parameters and renders the same image; broken files and non-finite values get clear errors."""

import numpy as np
import pytest
import torch

from avatar_core.gaussians import Gaussians
from avatar_core.ply import REQUIRED, load_ply, save_ply
from dreamer_core.errors import PipelineInputError


def random_gaussians(n: int = 300, degree: int = 1, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(means=torch.randn(n, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, 3.0]),
                     log_scales=torch.rand(n, 3, generator=g).log() - 3.5, quats=torch.randn(n, 4, generator=g),
                     opacity_logits=torch.randn(n, generator=g),
                     sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g) * 0.5)  # fmt: skip


def test_round_trip_fields_and_image(tmp_path):
    from plyfile import PlyData

    g = random_gaussians()
    path = save_ply(tmp_path / "avatar.ply", g)
    names = PlyData.read(str(path))["vertex"].data.dtype.names
    assert set(REQUIRED) <= set(names) and {f"f_rest_{i}" for i in range(9)} <= set(names)
    back = load_ply(path)
    for name, value in g.tensors().items():
        torch.testing.assert_close(getattr(back, name), value, atol=0, rtol=0)
    vm = torch.eye(4)[None]
    K = torch.tensor([[[60.0, 0.0, 32.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]]])
    before, _ = g.render(vm, K, 64, 64)
    after, _ = back.render(vm, K, 64, 64)
    assert torch.equal(before, after) and before.std() > 0.01


def test_f_rest_is_channel_major_like_the_reference_writer(tmp_path):
    from plyfile import PlyData

    g = random_gaussians(4, degree=1)
    data = PlyData.read(str(save_ply(tmp_path / "a.ply", g)))["vertex"].data
    # Reference 3DGS: f_rest_0..2 are the red channel's three degree-1 coefficients.
    np.testing.assert_array_equal(np.stack([data[f"f_rest_{i}"] for i in range(3)], -1), g.sh[:, 1:, 0].numpy())


def test_bad_files_and_values(tmp_path):
    g = random_gaussians(10)
    g.means[3, 1] = float("nan")
    with pytest.raises(ValueError, match="means is not finite for 1 of 10"):
        save_ply(tmp_path / "nan.ply", g)
    assert not (tmp_path / "nan.ply").exists()
    path = save_ply(tmp_path / "ok.ply", random_gaussians(10))
    (tmp_path / "cut.ply").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(PipelineInputError, match="cut.ply: not a readable .ply"):
        load_ply(tmp_path / "cut.ply")
    (tmp_path / "mesh.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
                                        b"property float y\nproperty float z\nend_header\n0 0 0\n")  # fmt: skip
    with pytest.raises(PipelineInputError, match="missing vertex fields"):
        load_ply(tmp_path / "mesh.ply")
    with pytest.raises(PipelineInputError, match="no such .ply"):
        load_ply(tmp_path / "absent.ply")
    with pytest.raises(ValueError, match="sh has shape"):
        Gaussians(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.zeros(2, 3, 3))
