"""One image in, a Gaussian avatar out:
``python -m avatar_core.demo --checkpoint data/gst_checkpoint --image person.png --out avatar.ply``.

The image is centre-cropped to a square around the person (crop it yourself for other framings)
and resized to the model's input. The avatar is written in a body-centred frame (pelvis at the
origin, Y up, facing +Z: SMPL's), as a standard 3DGS ``.ply``, with a turntable strip next to it
(``<out>.turntable.png``: the input, then views every 360/N degrees around the body).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avatar_core.gaussians import Gaussians
from avatar_core.gst.assemble import Assembler, quat_to_matrix
from avatar_core.gst.model import load_gst
from avatar_core.ply import save_ply
from dreamer_core.bodies.rotations import matrix_to_quaternion
from dreamer_core.errors import PipelineInputError
from dreamer_core.hmr.camera import weak_perspective_to_translation

# Camera frame (OpenCV: y down, looking along +z at the person) -> body-centred, Y up, facing +Z.
CAMERA_TO_BODY = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def read_image(path: str | Path, size: int) -> torch.Tensor:
    """[1, 3, size, size] in [0, 1]: centre square crop, resized; a clear error for anything else."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(f"{path}: no such image")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise PipelineInputError(f"{path}: not a readable image ({e}); give a PNG or JPEG of one person") from e
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    rgb = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


@torch.no_grad()
def predict_avatar(model: Any, assembler: Assembler, image: torch.Tensor, focal: float = 1.6) -> Gaussians:
    """The avatar of one image, body-centred. ``focal`` (in image sides) only scales the depth the
    pelvis is placed at, not the avatar."""
    size = float(image.shape[-1])
    K = torch.tensor([[[focal * size, 0.0, size / 2], [0.0, focal * size, size / 2], [0.0, 0.0, 1.0]]])
    pred = model(image)
    g = assembler.gaussians(pred, K, size)
    pelvis = weak_perspective_to_translation(pred["cam"], K[:, 0, 0], size)
    means = (g["means"][0] - pelvis) @ CAMERA_TO_BODY.T
    quats = matrix_to_quaternion(CAMERA_TO_BODY @ quat_to_matrix(g["quats"][0]))
    return Gaussians(
        means=means,
        log_scales=g["scales"][0].log(),
        quats=quats,
        opacity_logits=torch.logit(g["opacities"][0].clamp(1e-6, 1 - 1e-6)),
        sh=g["colors"][0],
    )


def turntable(avatar: Gaussians, views: int, size: int = 128, distance: float = 3.0) -> list[np.ndarray]:
    """``views`` renders around the vertical axis (uint8 [size, size, 3]), on black."""
    from dreamer_core.render.cameras import multiview_rig

    extent = float((avatar.means.max(0).values - avatar.means.min(0).values).norm())
    focal = size * distance / (extent * 1.2)
    centre = ((avatar.means.max(0).values + avatar.means.min(0).values) / 2).numpy().astype(np.float64)
    cams = multiview_rig(views, distance, [10.0], focal, size, centre)
    vm = torch.tensor(np.stack([np.block([[c.R, c.t[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]]) for c in cams]),
                      dtype=torch.float32)  # fmt: skip
    K = torch.tensor(np.stack([c.K for c in cams]), dtype=torch.float32)
    rgb, _ = avatar.render(vm, K, size, size)
    return list((rgb.clamp(0, 1) * 255).round().byte().numpy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avatar_core.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--checkpoint", default="data/gst_checkpoint", help="a gst_checkpoint folder")
    parser.add_argument("--image", required=True, help="PNG / JPEG of one person")
    parser.add_argument("--out", required=True, help="the .ply to write")
    parser.add_argument("--views", type=int, default=8, help="turntable views")
    parser.add_argument("--focal", type=float, default=1.6, help="assumed focal length in image sides")
    parser.add_argument("--body-model", default="anny", help="the body model the checkpoint was trained with")
    args = parser.parse_args(argv)
    if not 1 <= args.views <= 360 or not math.isfinite(args.focal) or args.focal <= 0:
        parser.error("--views must be in 1..360 and --focal a positive number")
    out = Path(args.out)
    if out.suffix != ".ply":
        parser.error(f"--out must end in .ply, got {out}")
    from dreamer_core.bodies import load_body_model
    from dreamer_core.config import BodyModelSettings
    from dreamer_core.viz import sample_grid_png

    try:
        model, vertex_ids, _ = load_gst(args.checkpoint)
        body = load_body_model(BodyModelSettings(name=args.body_model))
        image = read_image(args.image, model.hmr.cfg.image_size)
    except PipelineInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    avatar = predict_avatar(model, Assembler(body, vertex_ids), image, args.focal)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_ply(out, avatar)
    strip = out.with_suffix(".turntable.png")
    frames = turntable(avatar, args.views)
    first = (image[0].permute(1, 2, 0) * 255).round().byte().numpy()
    strip.write_bytes(sample_grid_png([[first, *frames]], cell=128))
    print(f"wrote {out} ({len(avatar)} Gaussians) and {strip} ({args.views} views)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
