"""GST on real multi-view renders: an untrained GST predicts exactly its HMR's body and the
initial Gaussians the config names; Gaussians ride on the posed body; training lifts novel-view
PSNR on held-out subjects above the untrained model's; a killed training resumes to the same
weights; a checkpoint round-trips."""

import math

import pytest
import torch

from avatar_core.gst.assemble import Assembler, farthest_points, joint_frames
from avatar_core.gst.data import load_multiview, subject_stream, subjects
from avatar_core.gst.evaluate import body_mpjpe, score_gst
from avatar_core.gst.model import GST, GSTConfig, load_gst, save_gst
from avatar_core.gst.train import GSTTraining, gst_resume_key, input_batch, train_gst
from dreamer_core.hmr.model import HMR, HMRConfig
from tests.helpers.renders import render_multiview_folder


@pytest.fixture(scope="module")
def multiview(anny_body, tmp_path_factory):
    return render_multiview_folder(anny_body, tmp_path_factory.mktemp("mv"))


@pytest.fixture(scope="module")
def views(multiview):
    return load_multiview(multiview)


def make(body, vertices: int = 256, seed: int = 0) -> tuple[GST, Assembler]:
    torch.manual_seed(seed)
    hmr = HMR(HMRConfig(image_size=32, width=8, dim=32, heads=2, decoder_layers=1, num_shape=body.num_shape_params))
    assembler = Assembler.for_body(body, vertices)
    return GST(hmr, GSTConfig(num_vertices=vertices, chunk=32, init_scale=assembler.vertex_spacing())), assembler


def test_untrained_gst_is_its_hmr_plus_the_initial_gaussians(anny_body, views):
    model, assembler = make(anny_body)
    model.eval()
    images = input_batch(views, torch.arange(3), torch.zeros(3, dtype=torch.long), 32)
    with torch.no_grad():
        ours, theirs = model(images), model.hmr(images)
    for key in ("global_orient", "body_pose", "shape", "cam"):
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-6, rtol=0)
    assert ours["offset"].shape == (3, 256, 3) and ours["offset"].abs().max() < 0.05
    assert float(torch.sigmoid(ours["opacity_logit"]).mean()) == pytest.approx(0.1, abs=0.02)
    assert float(ours["log_scale"].exp().mean()) == pytest.approx(model.cfg.init_scale, rel=0.1)
    assert ours["sh"].shape == (3, 256, 1, 3)


def test_gaussians_ride_on_the_posed_body(anny_body):
    _, assembler = make(anny_body)
    assert len(set(assembler.vertex_ids.tolist())) == 256
    spread = farthest_points(anny_body.canonical_vertices, 64)
    assert torch.equal(spread, farthest_points(anny_body.canonical_vertices, 64))  # deterministic
    g = torch.Generator().manual_seed(0)
    rot = torch.linalg.qr(torch.randn(2, 22, 3, 3, generator=g))[0]
    rot = rot * torch.sign(torch.linalg.det(rot))[..., None, None]
    from dreamer_core.bodies.rotations import matrix_to_axis_angle

    aa = matrix_to_axis_angle(rot)
    pred = {"rotmat": rot, "global_orient": aa[:, 0], "body_pose": aa[:, 1:], "shape": torch.full((2, 6), 0.5),
            "cam": torch.tensor([[1.0, 0.1, -0.1]] * 2), "offset": torch.zeros(2, 256, 3),
            "quat": torch.tensor([1.0, 0, 0, 0]).expand(2, 256, 4), "log_scale": torch.zeros(2, 256, 3),
            "opacity_logit": torch.zeros(2, 256), "sh": torch.zeros(2, 256, 1, 3)}  # fmt: skip
    K = torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]).expand(2, 3, 3)
    base = assembler.gaussians(pred, K, 64.0)
    torch.testing.assert_close(base["means"], assembler.vertices(pred, K, 64.0))
    # A local offset / rotation is turned by the vertex's part frame.
    pred["offset"] = torch.tensor([0.0, 0.0, 0.05]).expand(2, 256, 3)
    moved = assembler.gaussians(pred, K, 64.0)
    frames = joint_frames(rot)[:, assembler.parts]
    torch.testing.assert_close(moved["means"] - base["means"], frames[..., :, 2] * 0.05, atol=1e-5, rtol=0)
    from avatar_core.gst.assemble import quat_to_matrix

    torch.testing.assert_close(quat_to_matrix(base["quats"]), frames, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_training_beats_the_untrained_model_on_heldout_subjects(anny_body, multiview):
    """Trained as gst_checkpoint trains (training subjects streamed from the shards), scored on the
    held-out subjects only."""
    test = load_multiview(multiview, heldout=True)
    model, assembler = make(anny_body)
    model.eval()
    before = score_gst(model, assembler, test)
    cfg = GSTTraining(steps=80, subjects_per_step=3, target_views=3, lr=3e-3)
    result = train_gst(model, assembler, subject_stream(multiview, cfg.subjects_per_step, cfg.seed), cfg)
    after = score_gst(model, assembler, test)
    assert result["steps_run"] == 80
    assert after["psnr"] > before["psnr"] + 1.0, (before, after)
    assert after["psnr_mask"] > before["psnr_mask"], (before, after)
    assert math.isfinite(body_mpjpe(model, anny_body, test))


@pytest.mark.parametrize("source", ["stream", "memory"])
def test_killed_training_resumes_to_the_same_weights_and_checkpoint_round_trips(anny_body, multiview, views,
                                                                                tmp_path, source):  # fmt: skip
    cfg = GSTTraining(steps=5, subjects_per_step=2, target_views=2, seed=2)
    train = subject_stream(multiview, 2, cfg.seed) if source == "stream" else subjects(views, False)
    straight, assembler = make(anny_body, 64)
    fresh = {k: v.clone() for k, v in straight.state_dict().items()}
    train_gst(straight, assembler, train, cfg)

    def kill(step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt  # the state is saved every 2 steps: the last one holds step 2

    killed, _ = make(anny_body, 64)
    killed.load_state_dict(fresh)
    with pytest.raises(KeyboardInterrupt):
        train_gst(killed, assembler, train, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2, after_step=kill)
    steps: list[int] = []
    again, _ = make(anny_body, 64, seed=9)  # a new process: other weights, state from disk
    train_gst(again, assembler, train, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2, after_step=steps.append)
    assert steps == [3, 4, 5] and not (tmp_path / "resume").exists()
    for k, v in straight.state_dict().items():  # equal up to CPU summation order (multi-threaded scatter-adds)
        torch.testing.assert_close(again.state_dict()[k], v, atol=1e-5, rtol=1e-4, msg=k)
    save_gst(tmp_path / "ckpt", again, assembler.vertex_ids, {"note": "x"})
    loaded, ids, extra = load_gst(tmp_path / "ckpt")
    assert torch.equal(ids, assembler.vertex_ids) and extra == {"note": "x"}
    images = input_batch(views, torch.arange(2), torch.zeros(2, dtype=torch.long), 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)["sh"], again.eval()(images)["sh"])


def test_resume_key_names_the_starting_weights_and_the_data():
    """Without the anny fixture: the key needs only the model's config, the views and ``inputs``."""
    torch.manual_seed(0)
    hmr = HMR(HMRConfig(image_size=16, width=4, depth=2, dim=16, heads=2, decoder_layers=1, num_shape=4))
    model = GST(hmr, GSTConfig(num_vertices=16, chunk=8))
    views = {"images": torch.rand(3, 2, 3, 16, 16), "K": torch.eye(3).expand(3, 2, 3, 3).clone()}
    cfg = GSTTraining(steps=4, subjects_per_step=4)
    assert gst_resume_key(model, views, cfg) == gst_resume_key(model, {k: v.clone() for k, v in views.items()}, cfg)
    other = {**views, "images": views["images"].flip(-1)}  # same subjects and views, other pixels
    assert gst_resume_key(model, other, cfg) != gst_resume_key(model, views, cfg)
    start = {"hmr": "weights-a", "data": "index"}  # what train_gst's entry point passes
    assert gst_resume_key(model, views, cfg, start) == gst_resume_key(model, views, cfg, dict(start))
    assert gst_resume_key(model, views, cfg, start) != gst_resume_key(model, views, cfg, {**start, "hmr": "weights-b"})


def test_a_streamed_run_resumes_only_onto_the_same_stream(multiview):
    """The key of a streamed run holds the stream's order (seed, batch) and its shards' content,
    and the stream must give the step's subjects."""
    torch.manual_seed(0)
    hmr = HMR(HMRConfig(image_size=16, width=4, depth=2, dim=16, heads=2, decoder_layers=1, num_shape=4))
    model = GST(hmr, GSTConfig(num_vertices=16, chunk=8))
    cfg = GSTTraining(steps=4, subjects_per_step=2)
    key = gst_resume_key(model, subject_stream(multiview, 2, seed=0), cfg)
    assert key == gst_resume_key(model, subject_stream(multiview, 2, seed=0), cfg)
    assert key != gst_resume_key(model, subject_stream(multiview, 2, seed=1), cfg)
    assert key != gst_resume_key(model, subject_stream(multiview, 3, seed=0), cfg)
    with pytest.raises(ValueError, match="the stream gives 3 subjects a step, the training asks for 2"):
        train_gst(model, None, subject_stream(multiview, 3, seed=0), cfg)
