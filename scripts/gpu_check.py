"""The prepared GPU check (``bash scripts/gpu_check.sh``): does the CUDA path compute what the
tested CPU path computes, and how much faster is it, on one GPU, with nothing downloaded.

Parts, one PASS / FAIL / SKIP line each:
- ``rasterizer``: gsplat's CUDA kernels vs our CPU compositor on one scene: image, alpha and the
  gradients of a fixed weighted sum of the image (means, colours, opacities, scales, quaternions),
  max abs difference < 1e-3 (gradients relative to their largest magnitude).
- ``warp``: Warp ray casting on CUDA vs the CPU on one posed body: depth and interpolated PNCC
  within 1e-4 where both hit, hit masks equal.
- ``train:<model>``: one short training run of every model (pose detector, tiny generator, DPO,
  HMR, GST) on real renders, through the pipeline's own training functions with ``device=cuda``:
  finite losses, weights moved.
- one ``throughput`` row per heavy step, CPU next to CUDA, measured in this run.

Without CUDA the CUDA parts print SKIP and the CPU figures still print (what CI machines and
laptops can run). The exit code is 1 when any part FAILs.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar_core.raster import rasterization  # noqa: E402
from dreamer_core.bodies import load_body_model  # noqa: E402
from dreamer_core.config import load_settings  # noqa: E402

CUDA = torch.cuda.is_available()
LINES: list[str] = []
FAILED: list[str] = []


def report(part: str, ok: bool | None, detail: str) -> None:
    status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
    if ok is False:
        FAILED.append(part)
    line = f"{status} {part}: {detail}"
    LINES.append(line)
    print(line, flush=True)


def seconds(fn: Callable[[], object], device: str, repeat: int = 3) -> float:
    """Seconds per call after one warm-up call (CUDA synchronised)."""
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeat


def throughput(step: str, unit: str, count: int, cpu: float, cuda: float | None) -> None:
    cuda_text = f"{count / cuda:,.0f} {unit}/s ({cpu / cuda:.1f}x)" if cuda else "n/a (no CUDA)"
    line = f"throughput {step}: cpu {count / cpu:,.0f} {unit}/s | cuda {cuda_text}"
    LINES.append(line)
    print(line, flush=True)


def check_rasterizer(n: int, size: int) -> None:
    torch.manual_seed(2)
    means = torch.randn(n, 3) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    quats, scales = torch.randn(n, 4), torch.rand(n, 3) * 0.03 + 0.005
    opac, colors = torch.rand(n), torch.rand(n, 3)
    vm = torch.eye(4).repeat(2, 1, 1)
    vm[1, 0, 3] = 0.2
    K = torch.tensor([[size * 1.25, 0.0, size / 2], [0.0, size * 1.25, size / 2], [0.0, 0.0, 1.0]]).repeat(2, 1, 1)
    weight = torch.rand(2, size, size, 3)

    def run(device: str, backend: str) -> tuple[torch.Tensor, ...]:
        leaves = [t.to(device).requires_grad_(True) for t in (means, quats, scales, opac, colors)]
        rgb, alpha, _ = rasterization(*leaves, vm.to(device), K.to(device), size, size, backend=backend)
        (rgb * weight.to(device)).sum().backward()
        return rgb.detach().cpu(), alpha.detach().cpu(), *[t.grad.cpu() for t in leaves]

    ours = run("cpu", "torch")
    cpu_s = seconds(lambda: run("cpu", "torch"), "cpu", 2)
    if not CUDA:
        report("rasterizer", None, "no CUDA device: gsplat's kernels not compared")
        throughput("rasterizer (forward + backward)", "Gaussians", 2 * n, cpu_s, None)
        return
    theirs = run("cuda", "gsplat")
    image = max(float((a - b).abs().max()) for a, b in zip(ours[:2], theirs[:2], strict=True))
    grads = max(float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)) for a, b in zip(ours[2:], theirs[2:],
                                                                                             strict=True))  # fmt: skip
    detail = f"image/alpha max abs diff {image:.2e}, gradients max rel diff {grads:.2e} ({n} Gaussians, 2 views)"
    report("rasterizer", image < 1e-3 and grads < 1e-3, detail)
    throughput("rasterizer (forward + backward)", "Gaussians", 2 * n,
               cpu_s, seconds(lambda: run("cuda", "gsplat"), "cuda"))  # fmt: skip


def check_warp(body, size: int) -> None:
    from dreamer_core.render.cameras import sample_camera
    from dreamer_core.render.renderer import BodyRenderer

    rs = load_settings(profile="tiny").render.replace(image_size=size)
    vertices = body.forward(body.default_params(1), validate=False).vertices[0].numpy().astype(np.float64)
    camera = sample_camera(vertices, np.random.default_rng(0), rs.camera_sampling())

    def cast(device: str):
        renderer = BodyRenderer(body, device=device)
        hits = renderer.cast(vertices, camera, rs.supersample)
        return hits, renderer.raycaster.interpolate(hits, renderer.pncc)

    cpu_hits, cpu_pncc = cast("cpu")
    rays = cpu_hits.depth.size
    cpu_renderer = BodyRenderer(body, device="cpu")
    cpu_s = seconds(lambda: cpu_renderer.cast(vertices, camera, rs.supersample), "cpu")
    if not CUDA:
        report("warp", None, "no CUDA device: Warp CUDA renders not compared")
        throughput("warp ray casting", "rays", rays, cpu_s, None)
        return
    gpu_hits, gpu_pncc = cast("cuda:0")
    both = cpu_hits.mask & gpu_hits.mask
    same_mask = float((cpu_hits.mask != gpu_hits.mask).mean())
    depth = float(np.abs(cpu_hits.depth - gpu_hits.depth)[both].max())
    pncc = float(np.abs(cpu_pncc - gpu_pncc)[both].max())
    detail = f"depth max diff {depth:.2e} m, PNCC max diff {pncc:.2e}, masks differ on {same_mask:.2%} of {rays} rays"
    report("warp", depth < 1e-4 and pncc < 1e-4 and same_mask < 1e-4, detail)
    gpu_renderer = BodyRenderer(body, device="cuda:0")
    throughput("warp ray casting", "rays", rays, cpu_s,
               seconds(lambda: gpu_renderer.cast(vertices, camera, rs.supersample), "cuda"))  # fmt: skip


def scratch(prefix: str) -> Path:
    """A temporary folder removed when the check exits."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def real_renders(body, n: int, size: int) -> tuple[dict[str, torch.Tensor], list]:
    """``n`` real samples (anny + Warp through the pipeline's renderer) as training tensors."""
    from dreamer_core.datasets.build import BuildReport, render_samples
    from dreamer_core.poses.bank import build_pose_bank
    from dreamer_core.render.renderer import BodyRenderer

    tiny = load_settings(profile="tiny")
    bank = build_pose_bank(tiny.pose_bank.replace(num_poses=max(n, 8), candidate_factor=1), body, seed=0)
    samples = render_samples(body, BodyRenderer(body), bank, np.arange(n) % len(bank.table), tiny.render.replace(
        image_size=size), 0, "gpu", "gc", True, BuildReport(), "gpu-check")  # fmt: skip

    def chw(arrays) -> torch.Tensor:  # noqa: ANN001
        return torch.stack([torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / 255 for a in arrays])

    return {"image": chw([s.image for s in samples]), "control": chw([s.control for s in samples]),
            "mask": torch.stack([torch.from_numpy(np.array(s.mask)).float()[None] / 255 for s in samples]),
            "keypoints": torch.tensor(np.array([s.labels["keypoints_2d"][:17] for s in samples]), dtype=torch.float32),
            "bbox": torch.tensor([s.labels["bbox"] for s in samples], dtype=torch.float32)}, samples  # fmt: skip


def moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[k], v.detach().cpu()) for k, v in after.items() if k in before)


def train_models(body_cpu, split: dict[str, torch.Tensor], samples: list, views) -> None:  # noqa: ANN001
    """Each model's training function on each device; PASS on CUDA when losses are finite and the
    weights moved. Throughput is samples (or subjects) per second of those runs."""
    from avatar_core.gst.assemble import Assembler
    from avatar_core.gst.model import GST, GSTConfig
    from avatar_core.gst.train import GSTTraining, train_gst
    from dreamer_core.datasets.build import write_samples
    from dreamer_core.datasets.torch_dataset import sample_stream
    from dreamer_core.dpo.train import DPOTraining, train_dpo
    from dreamer_core.generate.tiny import TinyGenerator, TinyGeneratorConfig
    from dreamer_core.generate.train import GeneratorTraining, train_generator
    from dreamer_core.hmr.data import samples_to_batch
    from dreamer_core.hmr.model import HMR, HMRConfig
    from dreamer_core.hmr.train import HMRTraining, train_hmr
    from dreamer_core.keypoints.train import DETECTOR_FIELDS, DetectorTraining, train_detector

    size = split["image"].shape[-1]
    shards = scratch("gpu-check-train-")  # the detector and generator stream shards
    write_samples(shards, samples, 8, "train")
    hmr_batch = samples_to_batch(samples)
    bodies = {"cpu": body_cpu}
    if CUDA:
        bodies["cuda"] = load_body_model(load_settings(profile="tiny").body_model, device="cuda")

    def detector(device: str):  # noqa: ANN202
        cfg = DetectorTraining(steps=6, batch_size=16, lr=1e-3, width=16, seed=0)
        stream = sample_stream([shards], DETECTOR_FIELDS, 16, 0)
        model, metrics = train_detector(stream, split, cfg, device=device)
        return 6 * 16, np.isfinite(metrics["oks"]), True

    def generator(device: str):  # noqa: ANN202
        torch.manual_seed(0)
        gen = TinyGenerator(TinyGeneratorConfig(image_size=size, block_out_channels=(32, 64, 64))).to(device)
        before = {k: v.detach().cpu().clone() for k, v in gen.net.state_dict().items()}
        stream = sample_stream([shards], ("image", "control"), 8, 0)
        out = train_generator(gen, stream, GeneratorTraining(steps=6, batch_size=8))
        images = gen.sample(split["control"][:8], [""] * 8, list(range(8)), steps=4)
        ok = np.isfinite(out["final_loss"]) and bool(torch.isfinite(images).all())
        return 6 * 8, ok, moved(before, gen.net.state_dict())

    def dpo(device: str):  # noqa: ANN202
        torch.manual_seed(0)
        gen = TinyGenerator(TinyGeneratorConfig(image_size=size, block_out_channels=(32, 64, 64))).to(device)
        stats = train_dpo(gen, split["image"][:8], split["image"][8:16], split["control"][:8], [""] * 8,
                          DPOTraining(steps=4, batch_pairs=4))  # fmt: skip
        return 4 * 4, np.isfinite(stats["loss"]), True

    def hmr(device: str):  # noqa: ANN202
        torch.manual_seed(0)
        body = bodies[device]
        model = HMR(HMRConfig(image_size=size, width=16, num_shape=body.num_shape_params)).to(device)
        before = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        out = train_hmr(model, body, hmr_batch, HMRTraining(steps=6, batch_size=8, lr=1e-3))
        return 6 * 8, np.isfinite(out["final_loss"]), moved(before, model.state_dict())

    def gst(device: str):  # noqa: ANN202
        torch.manual_seed(0)
        body = bodies[device]
        hmr_model = HMR(HMRConfig(image_size=size, width=16, num_shape=body.num_shape_params))
        assembler = Assembler.for_body(body, 2048)
        model = GST(hmr_model, GSTConfig(num_vertices=2048, init_scale=assembler.vertex_spacing())).to(device)
        before = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        out = train_gst(model, assembler, views, GSTTraining(steps=3, subjects_per_step=2, target_views=2))
        return 3 * 2, np.isfinite(out["final_loss"]), moved(before, model.state_dict())

    for name, run in (("detector", detector), ("generator", generator), ("dpo", dpo), ("hmr", hmr), ("gst", gst)):
        timings: dict[str, float] = {}
        for device in ("cpu", "cuda") if CUDA else ("cpu",):
            t0 = time.perf_counter()
            count, finite, changed = run(device)
            if device == "cuda":
                torch.cuda.synchronize()
            timings[device] = time.perf_counter() - t0
            if device == "cuda":
                report(f"train:{name}", bool(finite and changed), f"finite loss {bool(finite)}, weights moved "
                       f"{bool(changed)} on {torch.cuda.get_device_name()}")  # fmt: skip
            elif not (finite and changed):
                report(f"train:{name}[cpu]", False, "the CPU path itself failed")
        if not CUDA:
            report(f"train:{name}", None, "no CUDA device: CPU run only")
        unit = "subjects" if name == "gst" else ("pairs" if name == "dpo" else "samples")
        throughput(f"train {name} (incl. start-up)", unit, count, timings["cpu"], timings.get("cuda"))


def multiview(body, size: int):  # noqa: ANN001, ANN201
    from avatar_core.gst.data import subject_stream
    from dreamer_core.datasets.build import BuildReport, render_multiview, write_samples
    from dreamer_core.poses.bank import build_pose_bank
    from dreamer_core.render.renderer import BodyRenderer

    tiny = load_settings(profile="tiny")
    bank = build_pose_bank(tiny.pose_bank.replace(num_poses=8, candidate_factor=1), body, seed=1)
    held = np.arange(4) >= 3
    rs = tiny.render.replace(image_size=size)
    samples, extra = render_multiview(body, BodyRenderer(body), bank, np.arange(4), held, rs, 4, (10.0,), 3.0, 1,
                                      BuildReport())  # fmt: skip
    folder = scratch("gpu-check-mv-")
    write_samples(folder, samples, 16, "multiview", extra_rows=extra)
    return subject_stream(folder, 2, seed=0)  # as gst_checkpoint trains: training subjects streamed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaussians", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64, help="render side of the training samples")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    where = torch.cuda.get_device_name() if CUDA else "no CUDA device (CPU parts only)"
    print(f"gpu_check: torch {torch.__version__}, {where}", flush=True)
    check_rasterizer(args.gaussians, 128)
    body = load_body_model(load_settings(profile="tiny").body_model)
    check_warp(body, 512)
    split, samples = real_renders(body, 32, args.size)
    train_models(body, split, samples, multiview(body, args.size))
    print(f"gpu_check: {len(FAILED)} failed ({', '.join(FAILED) or 'none'}) in {time.perf_counter() - t0:.0f} s")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
