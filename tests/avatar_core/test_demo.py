"""The command-line demo: one rendered image in, a standard .ply avatar and a turntable strip out;
a broken image is refused with a clear message and nothing is written."""

import numpy as np
import torch
from PIL import Image

from avatar_core.demo import main
from avatar_core.gst.assemble import Assembler
from avatar_core.gst.model import GST, GSTConfig, save_gst
from avatar_core.ply import REQUIRED, load_ply
from dreamer_core.hmr.model import HMR, HMRConfig
from tests.helpers.renders import render_poses


def test_image_to_ply_and_turntable(anny_body, tmp_path, capsys):
    from plyfile import PlyData

    torch.manual_seed(0)
    hmr = HMR(HMRConfig(image_size=32, width=8, dim=32, heads=2, decoder_layers=1, num_shape=6))
    hmr.mean_shape.fill_(0.5)  # an adult (anny's all-zero phenotype is a newborn)
    assembler = Assembler.for_body(anny_body, 128)
    save_gst(tmp_path / "ckpt", GST(hmr, GSTConfig(num_vertices=128, chunk=32, init_opacity=0.5)), assembler.vertex_ids)
    image = render_poses(anny_body, 1, seed=8, purpose="demo")[0].image
    Image.fromarray(image).save(tmp_path / "person.png")
    out = tmp_path / "out" / "avatar.ply"
    assert main(["--checkpoint", str(tmp_path / "ckpt"), "--image", str(tmp_path / "person.png"), "--out", str(out),
                 "--views", "4"]) == 0  # fmt: skip
    assert set(REQUIRED) <= set(PlyData.read(str(out))["vertex"].data.dtype.names)
    avatar = load_ply(out)
    assert len(avatar) == 128
    centre = (avatar.means.max(0).values + avatar.means.min(0).values) / 2
    assert centre.norm() < 1.0 and float(avatar.means[:, 1].max() - avatar.means[:, 1].min()) > 1.0  # adult-sized
    strip = np.asarray(Image.open(out.with_suffix(".turntable.png")))
    assert strip.shape[1] >= 5 * strip.shape[0] - 10 and strip[:, strip.shape[0] :].max() > 0  # input + 4 views
    assert "128 Gaussians" in capsys.readouterr().out


def test_broken_image_is_refused(tmp_path, capsys):
    torch.manual_seed(0)
    hmr = HMR(HMRConfig(image_size=32, width=8, dim=32, heads=2, decoder_layers=1, num_shape=6))
    save_gst(tmp_path / "ckpt", GST(hmr, GSTConfig(num_vertices=16, chunk=8)), torch.arange(16))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "avatar.ply"
    assert main(["--checkpoint", str(tmp_path / "ckpt"), "--image", str(tmp_path / "bad.png"), "--out", str(out)]) == 2
    assert "bad.png: not a readable image" in capsys.readouterr().err and not out.exists()
