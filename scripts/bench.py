"""`make bench`: body-model forward throughput, pose-bank build time and render throughput,
measured in one run.

Prints poses/s at batch 1, 64 and 256 (and the speed-up of batching over batch 1), the time to
build the configured pose bank and its diversity ratio, then control and reference renders/s at
128, 256 and 512 px with Warp ray casting side by side with the same renderer on the strongest CPU
ray caster a user would pick (Open3D's Embree ``RaycastingScene``, when ``make bench`` installed it)
and on trimesh's ray casting, on the same mesh, as ratios (and how far Open3D's hits are from
Warp's: mask, depth and interpolated surface points, so that the ratio compares equal work); then
the tiny generator: images/s by batch size and training / DPO step times, for the configured
pixel-unshuffle network side by side with the same UNet at full resolution (unshuffle 1); then
the filter stages' samples/s and the banded near-duplicate search against brute force; then HMR
training samples/s side by side with the data path (shard decode + resize, in-memory batch gather).
"""

from __future__ import annotations

import time
from pathlib import Path

from orchestration.env import apply_defaults

apply_defaults("tiny")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dreamer_core.bodies import load_body_model  # noqa: E402
from dreamer_core.config import PipelineSettings, load_settings  # noqa: E402
from dreamer_core.poses.anatomical import sample_anatomical  # noqa: E402
from dreamer_core.poses.bank import build_pose_bank  # noqa: E402


def throughput(body, batch: int, min_seconds: float = 2.0) -> float:
    go, bp, _, _ = sample_anatomical(batch, {"standing": 1.0, "running": 1.0}, 8.0, np.random.default_rng(0))
    params = {"global_orient": torch.as_tensor(go, dtype=torch.float32),
              "body_pose": torch.as_tensor(bp, dtype=torch.float32)}  # fmt: skip
    with torch.no_grad():
        body.forward(params)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_seconds:
            body.forward(params)
            n += batch
    return n / (time.perf_counter() - t0)


class TrimeshRaycaster:
    """Baseline with the same interface as ``Raycaster``: trimesh's (non-Embree) first-hit query."""

    def __init__(self, faces: np.ndarray, row_stride: int = 1) -> None:
        self.faces = np.asarray(faces)
        self.row_stride = row_stride  # cast every n-th row only (ray-throughput measurement)

    def set_vertices(self, vertices: np.ndarray) -> None:
        import trimesh

        self.mesh = trimesh.Trimesh(vertices, self.faces, process=False)

    def cast(self, camera, supersample: int = 1, max_t: float = 1e3):
        import trimesh

        from dreamer_core.render.raycast import Hits

        origin, dirs = camera.rays(supersample)
        h, w = dirs.shape[:2]
        face = np.full((h, w), -1, dtype=np.int32)
        points = np.zeros((h, w, 3))
        rows = np.arange(0, h, self.row_stride)
        sel = dirs[rows].reshape(-1, 3)
        loc, ray, tri = self.mesh.ray.intersects_location(np.tile(origin, (len(sel), 1)), sel, multiple_hits=False)
        fsub = np.full(len(sel), -1, dtype=np.int32)
        psub = np.zeros((len(sel), 3))
        ray = np.asarray(ray, dtype=np.int64)
        fsub[ray], psub[ray] = tri, loc
        face[rows] = fsub.reshape(len(rows), w)
        points[rows] = psub.reshape(len(rows), w, 3)
        bary = np.zeros((h, w, 3))
        m = face >= 0
        bary[m] = trimesh.triangles.points_to_barycentric(self.mesh.triangles[face[m]], points[m])
        depth = np.where(m, (points - camera.center) @ camera.R[2], 0.0)
        return Hits(depth=depth.astype(np.float32), face=face, bary=bary.astype(np.float32),
                    points=points.astype(np.float32))  # fmt: skip

    def interpolate(self, hits, values):
        from dreamer_core.render.raycast import Raycaster

        return Raycaster.interpolate(self, hits, values)  # type: ignore[arg-type]

    def interpolate_hits(self, hits, values):
        from dreamer_core.render.raycast import Raycaster

        return Raycaster.interpolate_hits(self, hits, values)  # type: ignore[arg-type]


class Open3DRaycaster(TrimeshRaycaster):
    """The strongest CPU baseline: Open3D's ``RaycastingScene`` (Intel Embree's BVH, every core),
    behind the same interface. Its hit's ``primitive_uvs`` are Embree's (u, v): the point is
    (1 - u - v) a + u b + v c, the barycentrics ``Hits`` holds."""

    def set_vertices(self, vertices: np.ndarray) -> None:
        import open3d as o3d

        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                                 o3d.core.Tensor(np.ascontiguousarray(self.faces, dtype=np.uint32)))  # fmt: skip

    def cast(self, camera, supersample: int = 1, max_t: float = 1e3):
        import open3d as o3d

        from dreamer_core.render.raycast import Hits

        origin, dirs = camera.rays(supersample)
        h, w = dirs.shape[:2]
        d = dirs.reshape(-1, 3)
        rays = np.concatenate([np.broadcast_to(origin, d.shape), d], axis=1).astype(np.float32)
        hit = self.scene.cast_rays(o3d.core.Tensor(rays))
        t, uv = hit["t_hit"].numpy(), hit["primitive_uvs"].numpy()
        m = np.isfinite(t) & (t < max_t)
        face = np.where(m, hit["primitive_ids"].numpy().astype(np.int64), -1).astype(np.int32)
        bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=-1) * m[:, None]
        points = np.where(m[:, None], origin + np.where(m, t, 0.0)[:, None] * d, 0.0)
        depth = np.where(m, (points - camera.center) @ camera.R[2], 0.0)
        return Hits(depth=depth.reshape(h, w).astype(np.float32), face=face.reshape(h, w),
                    bary=bary.reshape(h, w, 3).astype(np.float32),
                    points=points.reshape(h, w, 3).astype(np.float32))  # fmt: skip


def _open3d() -> bool:
    try:
        import open3d  # noqa: F401
    except ImportError:
        return False
    return True


def render_rate(renderer, vertices, cams, reference: bool, min_seconds: float) -> float:
    from dreamer_core.render.appearance import sample_appearance

    rng = np.random.default_rng(0)
    n, t0 = 0, time.perf_counter()
    while True:
        for v, cam in zip(vertices, cams, strict=True):
            renderer.render(v, cam, 1, sample_appearance(rng) if reference else None)
            n += 1
        if time.perf_counter() - t0 >= min_seconds:
            return n / (time.perf_counter() - t0)


def bench_renders(body) -> None:
    from dreamer_core.render.cameras import CameraSampling, sample_camera
    from dreamer_core.render.renderer import BodyRenderer

    go, bp, _, _ = sample_anatomical(4, {"standing": 1.0, "running": 1.0}, 8.0, np.random.default_rng(1))
    with torch.no_grad():
        verts = body.forward({"global_orient": torch.as_tensor(go, dtype=torch.float32),
                              "body_pose": torch.as_tensor(bp, dtype=torch.float32)}).vertices.numpy()  # fmt: skip
    warp_r, base_r, o3d_r = BodyRenderer(body), BodyRenderer(body), BodyRenderer(body)
    have_o3d = _open3d()
    if have_o3d:
        o3d_r.raycaster = Open3DRaycaster(o3d_r.faces)
    else:
        print("open3d is not installed (make bench installs it): its column is '-'")
    print(f"\nrenders/s (one core-pair, supersample 1) on {len(warp_r.faces)} faces: Warp vs Open3D (Embree) "
          "vs trimesh ray casting; Warp vs Open3D on one frame: share of pixels only one hits, largest depth "
          "and interpolated-point gaps where both hit (mm)")  # fmt: skip
    print(f"{'size':>5} {'kind':>10} {'warp/s':>9} {'open3d/s':>9} {'ratio':>7} {'trimesh/s':>10} {'ratio':>7}"
          f" {'mask diff':>9} {'depth mm':>9} {'point mm':>9}")  # fmt: skip
    for size in (128, 256, 512):
        cfg = CameraSampling((800.0, 1600.0), 1000, (3.0, 6.0), 10.0, 0.1, 32.0, size)
        cams = [sample_camera(v, np.random.default_rng(i), cfg) for i, v in enumerate(verts)]
        for kind in ("control", "reference"):
            ref = kind == "reference"
            fast = render_rate(warp_r, verts, cams, ref, 2.0)
            o3d_cols = f"{'-':>9} {'-':>7} "
            if have_o3d:
                rate = render_rate(o3d_r, verts, cams, ref, 2.0)
                o3d_cols = f"{rate:>9.1f} {fast / rate:>6.1f}x "
            base_cols = f"{'-':>10} {'-':>7}"
            if size <= 256:  # one full trimesh frame takes ~20 s at 128 px, ~70 s at 256 px
                base_r.raycaster = TrimeshRaycaster(base_r.faces)
                slow = render_rate(base_r, verts[:1], cams[:1], ref, 0.0)
                base_cols = f"{slow:>10.3f} {fast / slow:>6.0f}x"
            agree = ""
            if have_o3d and not ref:
                mask, depth, point = _agreement(warp_r, o3d_r, verts[0], cams[0])
                agree = f" {mask:>9.4f} {depth:>9.3f} {point:>9.3f}"
            print(f"{size:>5} {kind:>10} {fast:>9.1f} {o3d_cols}{base_cols}{agree}", flush=True)
    # Ray casting alone at 512 px (the scene built beforehand); trimesh on 1/16 of the rows, since
    # one of its frames would take minutes.
    cam = cams[0]
    warp_rays = _ray_rate(warp_r.raycaster, verts[0], cam, 5)
    o3d_rays = _ray_rate(Open3DRaycaster(o3d_r.faces), verts[0], cam, 5) if have_o3d else float("nan")
    base_rays = _ray_rate(TrimeshRaycaster(base_r.faces, row_stride=16), verts[0], cam, 1) / 16
    print(f"  512 px ray casting: Warp {warp_rays / 1e6:.2f} M rays/s, Open3D {o3d_rays / 1e6:.2f} M rays/s "
          f"({warp_rays / o3d_rays:.1f}x), trimesh {base_rays / 1e3:.1f} k rays/s (on 1/16 of the rows): "
          f"{warp_rays / base_rays:.0f}x")  # fmt: skip


def _ray_rate(raycaster, vertices: np.ndarray, cam, repeats: int) -> float:
    """Rays per second of ``cast`` alone (the best of ``repeats``), the scene built beforehand."""
    raycaster.set_vertices(vertices)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        raycaster.cast(cam)
        best = min(best, time.perf_counter() - t0)
    return cam.width * cam.height / best


def _agreement(warp_r, o3d_r, vertices: np.ndarray, cam) -> tuple[float, float, float]:
    """How far Open3D's hits are from Warp's on one frame: the share of pixels where only one of
    them hits, and on pixels both hit the largest depth gap and the largest gap between the surface
    points their face ids and barycentrics interpolate (mm; a wrong face or barycentric order shows
    there even when the depth agrees). The speed ratio then compares equal work."""
    hits = []
    for r in (warp_r, o3d_r):
        r.raycaster.set_vertices(vertices)
        hits.append(r.raycaster.cast(cam))
    a, b = hits
    both = a.mask & b.mask
    if not both.any():
        return float("nan"), float("nan"), float("nan")
    depth = float(np.abs(a.depth - b.depth)[both].max() * 1000.0)
    points = [warp_r.raycaster.interpolate(h, vertices.astype(np.float64))[both] for h in hits]
    point_gap = float(np.linalg.norm(points[0] - points[1], axis=1).max() * 1000.0)
    return float((a.mask != b.mask).mean()), depth, point_gap


def _timed(fn, repeats: int, *args) -> float:
    fn(*args)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    return (time.perf_counter() - t0) / repeats


def bench_generator(params: PipelineSettings) -> None:
    from dreamer_core.dpo.lora import LoraSettings
    from dreamer_core.dpo.train import DPOTraining, train_dpo
    from dreamer_core.generate.backends import tiny_config
    from dreamer_core.generate.tiny import TinyGenerator
    from dreamer_core.generate.train import GeneratorTraining, train_generator

    size = params.render.image_size
    settings = params.generator
    lora = LoraSettings(targets=tuple(params.dpo.lora_targets))
    print(f"\ntiny generator at {size} px, {settings.sample_steps} sampling steps, guidance "
          f"{settings.guidance_scale}, channels {settings.channels}")  # fmt: skip
    print(f"{'unshuffle':>9} {'params':>8} {'b1 img/s':>9} {'b8 img/s':>9} {'b32 img/s':>10} {'train s/step':>13} "
          f"{'dpo s/step':>11}")  # fmt: skip

    def sample(gen: TinyGenerator, controls: torch.Tensor) -> None:
        gen.sample(controls, [""] * len(controls), list(range(len(controls))))

    def train(gen: TinyGenerator, images: torch.Tensor) -> None:
        train_generator(gen, {"image": images, "control": images}, GeneratorTraining(steps=2, batch_size=32))

    def dpo(cfg, images: torch.Tensor) -> None:
        train_dpo(TinyGenerator(cfg), images[:16], images[16:32], images[:16], [""] * 16,
                  DPOTraining(steps=2, batch_pairs=16, lora=lora))  # fmt: skip

    rates = {}
    images = torch.rand(64, 3, size, size)
    for unshuffle in (settings.unshuffle, 1):
        gen = TinyGenerator(tiny_config(settings.replace(unshuffle=unshuffle), size))
        n = sum(p.numel() for p in gen.net.parameters())
        row = [b / _timed(sample, 1 if b > 1 else 2, gen, torch.rand(b, 3, size, size)) for b in (1, 8, 32)]
        train_step = _timed(train, 1, gen, images) / 2
        dpo_step = _timed(dpo, 1, gen.cfg, images) / 2
        rates[unshuffle] = (row, train_step)
        print(f"{unshuffle:>9} {n / 1e6:>7.2f}M {row[0]:>9.1f} {row[1]:>9.1f} {row[2]:>10.1f} {train_step:>13.3f} "
              f"{dpo_step:>11.3f}")  # fmt: skip
    (fast, fast_step), (slow, slow_step) = rates[settings.unshuffle], rates[1]
    print(
        f"pixel-unshuffle x{settings.unshuffle} vs full resolution: sampling {fast[2] / slow[2]:.1f}x "
        f"(batch 32), training {slow_step / fast_step:.1f}x faster per step"
    )


def _filter_images(
    body, bank, params: PipelineSettings, n: int = 512
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Generated samples of the round shards when `make demo` made them, else reference renders."""
    from dreamer_core.datasets.build import BuildReport, render_samples
    from dreamer_core.datasets.shards import iter_folder
    from dreamer_core.images import stack_coco_keypoints
    from dreamer_core.render.renderer import BodyRenderer
    from orchestration.env import asset_dir

    samples, source = [], "generated (round1/round2 shards)"
    for r in (1, 2):
        folder = asset_dir(f"round{r}_generations")
        if any(folder.glob("*.index.json")):
            samples += [s for s, _ in zip(iter_folder(folder), range(n - len(samples)), strict=False)]
    if len(samples) < n:
        source = "reference renders (materialize the round shards to bench on generated images)"
        rs = params.render
        samples = render_samples(body, BodyRenderer(body), bank, np.arange(n) % len(bank), rs, 0, "bench", "b",
                                 True, BuildReport(), "bench images")  # fmt: skip
    images = np.stack([s.image for s in samples])
    kp = stack_coco_keypoints(samples)
    masks = np.stack([s.mask for s in samples])  # uint8 person masks: the OKS area, as in COCO
    return images, kp, masks, source


def bench_filters(body, bank, params: PipelineSettings) -> None:
    """Per filter stage samples/s on the same images, and the banded near-duplicate search side by
    side with brute force (all pairs) on the same hashes."""
    from dreamer_core.filters.phash import hamming, near_duplicates, phash
    from dreamer_core.filters.quality import contrast, grey, saturated_fraction, sharpness
    from dreamer_core.filters.stages import count_people
    from dreamer_core.generate.evaluate import detect, per_sample_oks
    from dreamer_core.keypoints.detectors import load_detector
    from dreamer_core.keypoints.heatmap import HeatmapNet, HeatmapNetConfig
    from dreamer_core.keypoints.metrics import mask_area
    from orchestration.env import asset_dir

    images, kp, masks, source = _filter_images(body, bank, params)
    try:
        detector, det_name = load_detector(asset_dir("pose_detector")), "pose_detector asset"
    except Exception:
        detector = HeatmapNet(HeatmapNetConfig(width=params.pose_detector.width))
        det_name = "untrained heatmap net of the configured width"
    f = params.filtered_dataset
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    det = detect(detector, x)
    g = grey(images)
    timings = {
        "detector forward (crowding + pose)": _timed(detect, 1, detector, x),
        "crowding: mask components": _timed(count_people, 3, det, f.min_person_area),
        "pose: OKS vs label": _timed(lambda: per_sample_oks(det["keypoints"].numpy(), kp, mask_area(masks)), 3),
        "quality: std / clipped / Laplacian": _timed(
            lambda: (contrast(grey(images)), saturated_fraction(images), sharpness(g)), 3
        ),  # fmt: skip
        "near-duplicate: pHash": _timed(phash, 1, images),
    }
    hashes = phash(images)
    alive = np.ones(len(hashes), dtype=bool)
    timings["near-duplicate: banded search"] = _timed(near_duplicates, 3, hashes, alive, f.max_hash_distance)
    n = len(images)
    print(f"\nfilter stages on {n} {images.shape[1]} px images ({source}); detector: {det_name}")
    print(f"{'stage':>38} {'samples/s':>11}")
    for name, seconds in timings.items():
        print(f"{name:>38} {n / seconds:>11.0f}")
    total = sum(timings.values())
    print(f"{'all stages':>38} {n / total:>11.0f}")

    def brute(h: np.ndarray, d: int) -> int:
        kept: list[int] = []
        for i in range(len(h)):
            if not kept or hamming(h[i], h[kept]).min() > d:
                kept.append(i)
        return len(kept)

    rng = np.random.default_rng(0)
    big = rng.integers(0, 2**63, 20000, dtype=np.uint64)
    big[1::2] = big[::2] ^ (np.uint64(1) << rng.integers(0, 64, 10000).astype(np.uint64))  # planted near-duplicates
    d = f.max_hash_distance
    t0 = time.perf_counter()
    dup, _ = near_duplicates(big, np.ones(len(big), dtype=bool), d)
    t_band = time.perf_counter() - t0
    t0 = time.perf_counter()
    kept_brute = brute(big, d)
    t_brute = time.perf_counter() - t0
    assert len(big) - int((dup >= 0).sum()) == kept_brute  # the same answer
    print(f"near-duplicate search over {len(big)} hashes (distance <= {d}): banded {t_band:.2f} s, brute force "
          f"{t_brute:.2f} s ({t_brute / t_band:.1f}x), same kept set size")  # fmt: skip


def bench_hmr(body, bank, params: PipelineSettings) -> None:
    """HMR training samples/s (and the body model's share of a step) side by side with the data
    path: decoding + resizing shards, and gathering a batch from the in-memory set. The loader
    keeps up when its samples/s is well above training's."""
    import tempfile

    from dreamer_core.datasets.build import BuildReport, render_samples, write_samples
    from dreamer_core.hmr.data import load_folder
    from dreamer_core.hmr.losses import hmr_losses
    from dreamer_core.hmr.model import HMR, HMRConfig
    from dreamer_core.hmr.train import HMRTraining, train_hmr
    from dreamer_core.render.renderer import BodyRenderer

    h = params.hmr
    size, batch = h.image_size, h.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        rs = params.render
        samples = render_samples(body, BodyRenderer(body), bank, np.arange(512) % len(bank), rs, 0, "bench-hmr", "h",
                                 True, BuildReport(), "bench hmr")  # fmt: skip
        write_samples(Path(tmp), samples, 128, "train")
        t0 = time.perf_counter()
        data = load_folder(tmp, size)
        decode = len(samples) / (time.perf_counter() - t0)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(200):
        idx = torch.randint(0, len(samples), (batch,), generator=gen)
        _ = {k: v[idx] for k, v in data.items()}
    gather = 200 * batch / (time.perf_counter() - t0)
    torch.manual_seed(0)
    keys = ("backbone", "width", "depth", "patch", "dim", "decoder_layers", "heads")
    model = HMR(HMRConfig(image_size=size, num_shape=body.num_shape_params, **{k: getattr(h, k) for k in keys}))
    steps = 20
    result = train_hmr(model, body, data, HMRTraining(steps=steps, batch_size=batch, lr=h.lr))
    b = {k: v[:batch] for k, v in data.items()}
    model.train()

    def leaf_params() -> dict[str, torch.Tensor]:
        keys = (("global_orient", "global_orient_cam"), ("body_pose", "body_pose"), ("shape", "shape"))
        return {k: b[src].clone().requires_grad_(True) for k, src in keys}

    def body_only() -> None:  # what the losses run: the skeleton alone
        body.skeleton_joints(leaf_params()).sum().backward()

    def body_mesh() -> None:  # the full pass (skinned mesh + surface keypoints)
        body.forward(leaf_params(), validate=False).joints.sum().backward()

    def step() -> None:
        hmr_losses(body, model(b["image"]), b)["total"].backward()

    skeleton_s, mesh_s = _timed(body_only, 5), _timed(body_mesh, 5)
    share = skeleton_s / _timed(step, 5)
    threads = torch.get_num_threads()
    print(f"\nHMR ({h['backbone']}, {size} px, batch {batch}, {threads} threads) on {len(samples)} renders")
    print(f"{'path':>40} {'samples/s':>11}")
    print(f"{'training (forward + backward + step)':>40} {result['samples_per_second']:>11.0f}")
    print(f"{'loader: shard decode + resize':>40} {decode:>11.0f}")
    print(f"{'loader: in-memory batch gather':>40} {gather:>11.0f}")
    rate = result["samples_per_second"]
    verdict = "is not the bottleneck" if min(decode, gather) > rate else "IS THE BOTTLENECK"
    print(f"decode is {decode / rate:.1f}x and gather {gather / rate:.0f}x training's rate: the loader {verdict}; "
          f"the body model is {share:.0%} of a training step")  # fmt: skip
    print(f"body pass forward + backward at batch {batch}: skeleton only {skeleton_s * 1000:.0f} ms vs skinned mesh "
          f"{mesh_s * 1000:.0f} ms ({mesh_s / skeleton_s:.1f}x)")  # fmt: skip


def bench_raster(body) -> None:
    """The Gaussian rasterizer facade: forward and forward + backward for 5k / 15k Gaussians on
    the body surface at 128 / 256 px, on the CPU compositor, and on gsplat's kernels when CUDA exists."""
    from avatar_core.raster import rasterization

    verts = body.canonical_vertices.detach()
    g = torch.Generator().manual_seed(0)
    backends = [("torch", "cpu")] + ([("gsplat", "cuda")] if torch.cuda.is_available() else [])
    threads = torch.get_num_threads()
    print(f"\nGaussian rasterizer (Gaussians on the body surface, one camera 2.5 m away, {threads} threads)")
    print(f"{'backend':>8} {'gaussians':>10} {'size':>5} {'forward ms':>11} {'fwd+bwd ms':>11}")
    for n in (5000, 15000):
        idx = torch.randint(0, len(verts), (n,), generator=g)
        scene = [verts[idx] + 0.005 * torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
                 torch.full((n, 3), 0.008), torch.full((n,), 0.8), torch.rand(n, 3, generator=g)]  # fmt: skip
        for size in (128, 256):
            viewmat = torch.eye(4)[None]
            viewmat[0, :3, :3] = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))  # look at the body's front, Y up
            viewmat[0, 2, 3] = 2.5
            K = torch.tensor([[[size * 1.2, 0.0, size / 2], [0.0, size * 1.2, size / 2], [0.0, 0.0, 1.0]]])
            for backend, device in backends:
                leaves = [t.to(device).requires_grad_(True) for t in scene]
                cam = (viewmat.to(device), K.to(device))

                def forward(leaves=leaves, cam=cam, backend=backend, size=size):
                    return rasterization(*leaves, *cam, size, size, backend=backend)

                def backward(forward=forward):
                    rgb, alpha, _ = forward()
                    (rgb.sum() + alpha.sum()).backward()

                def sync(fn, device=device):
                    fn()
                    if device == "cuda":
                        torch.cuda.synchronize()

                with torch.no_grad():
                    fwd = _timed(sync, 3, forward)
                both = _timed(sync, 3, backward)
                print(f"{backend:>8} {n:>10} {size:>5} {fwd * 1000:>11.0f} {both * 1000:>11.0f}")


def main() -> None:
    params = load_settings()
    body = load_body_model(params.body_model)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, body model {body.name}")
    print(f"{'batch':>6} {'poses/s':>10} {'vs batch 1':>11}")
    base = None
    for batch in (1, 64, 256):
        rate = throughput(body, batch)
        base = base or rate
        print(f"{batch:>6} {rate:>10.1f} {rate / base:>10.1f}x")
    settings = params.pose_bank
    t0 = time.perf_counter()
    bank = build_pose_bank(settings, body, params.seed)
    dt = time.perf_counter() - t0
    s = bank.stats
    print(f"pose bank ({params.profile}): {s['num_poses']} poses from "
          f"{int(settings.candidate_factor * settings.num_poses)} candidates in {dt:.2f} s; "
          f"NN distance {s['nn_dist_mm']:.1f} mm vs random draw {s['nn_dist_random_mm']:.1f} mm "
          f"(ratio {s['nn_dist_mm'] / s['nn_dist_random_mm']:.2f})")  # fmt: skip
    bench_renders(body)
    bench_generator(params)
    bench_filters(body, bank, params)
    bench_hmr(body, bank, params)
    bench_raster(body)


if __name__ == "__main__":
    main()
