"""Bad input through the public entry points: each case gives one clear error that names the input
and the fix, and leaves the earlier outputs as they were.

The cases (``pytest tests/hardening -v`` lists each one):

| case | entry point |
|---|---|
| corrupt image, truncated image | ``python -m avatar_core.demo`` |
| corrupt shard, truncated shard, shard member with an absolute path / ``..``, NaN label | ``ShardDataset`` |
| AMASS file with wrong-shaped poses, NaN poses, out-of-range poses, pickled arrays | ``pose_bank`` asset |
| NaN / out-of-range pose parameters | ``BodyModel.forward`` |
| missing SMPL-X files; an official ``.pkl`` without opting in | ``pose_bank`` asset; ``load_body_model`` |
| unknown profile, negative / mistyped params value | ``python -m orchestration.cli`` |
| out-of-range run-config value (launchpad) | ``pose_bank`` asset |
| output folder that is a file, read-only output folder | ``pose_bank`` asset |
| missing / damaged checkpoint, damaged ``.ply`` | ``load_hmr``, ``python -m avatar_core.demo``, ``load_ply`` |
| label pickle that imports code | ``load_label_pickle`` (3DPW / EMDB readers) |
| sparse member claiming 8 GB (``ulimit -v 4000000``), oversized / duplicate member, PNG bomb | ``read_shard`` |
| label JSON of a wrong type or nested 100k deep | ``ShardDataset`` |
| launchpad ``launcher`` running ``--no-python sh``; ``real_train`` name with ``../`` | ``hmr_checkpoints`` |
| run-config overrides of ``allow_pickle_models`` / ``dvc_bin`` / ``repo_dir`` | ``pose_bank`` |
| HMR training spec with an unknown key | ``python -m orchestration.train_hmr`` |
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dreamer_core.datasets.build import write_samples
from dreamer_core.errors import PipelineInputError
from orchestration.cli import _failure_message
from orchestration.definitions import ASSETS, CHECKS
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import PoseBankConfig
from tests.hardening.conftest import REPORT
from tests.helpers.renders import render_poses
from tests.helpers.repo import REPO

pytestmark = pytest.mark.slow


def digest(folder: Path) -> str:
    """Names and bytes of every file under ``folder``: equal digests mean untouched outputs."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".locks" not in p.relative_to(folder).parts:  # run locks are not outputs
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@dataclass
class World:
    """What the cases share: a materialized pose bank (the earlier output), a small shard folder,
    a small GST checkpoint and a real person image."""

    tmp: Path
    data: Path
    resources: dict
    shards: Path
    gst: Path
    image: Path

    def materialize(self, storage_root: Path | None = None, body: BodyModelResource | None = None,
                    **pose_bank: object) -> str:  # fmt: skip
        """Materialize pose_bank (small) with these settings; the failure message ('' on success)."""
        resources = dict(self.resources)
        if storage_root is not None:
            resources["storage"] = StorageResource(root=str(storage_root))
        if body is not None:
            resources["body_model"] = body
        config = PoseBankConfig(**{"num_poses": 16, "candidate_factor": 1.0, **pose_bank})
        result = dg.materialize([*ASSETS, *CHECKS], selection=["pose_bank"], resources=resources,
                                run_config=dg.RunConfig(ops={"pose_bank": config}), raise_on_error=False)  # fmt: skip
        return "" if result.success else _failure_message(result)


@pytest.fixture(scope="module")
def world(tmp_path_factory, anny_body) -> World:
    from avatar_core.gst.model import GST, GSTConfig, save_gst
    from dreamer_core.hmr.model import HMR, HMRConfig

    tmp = tmp_path_factory.mktemp("hardening")
    resources = {
        "storage": StorageResource(root=str(tmp / "data")),
        "body_model": BodyModelResource(),
        "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", artifact_root=(tmp / "art").as_uri()),
        "dvc": DVCResource(enabled=False),
    }
    w = World(tmp, tmp / "data", resources, tmp / "shards", tmp / "gst", tmp / "person.png")
    assert w.materialize() == "", "the baseline pose bank did not materialize"
    samples = render_poses(anny_body, 4, seed=5, purpose="hardening")
    write_samples(w.shards, samples, 2, "")
    Image.fromarray(samples[0].image).save(w.image)
    torch.manual_seed(0)
    hmr = HMR(HMRConfig(image_size=32, width=8, dim=32, heads=2, decoder_layers=1, num_shape=6))
    save_gst(w.gst, GST(hmr, GSTConfig(num_vertices=16, chunk=8)), torch.arange(16))
    return w


# Each case sets up its bad input, calls a public entry point and returns (error message, what the
# message must name: the input and the fix). Cases that write check that earlier outputs survive.
CASES: dict[str, Callable[[World, Path], tuple[str, list[str]]]] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


def demo(w: World, image: Path, capsys, checkpoint: Path | None = None) -> str:
    from avatar_core.demo import main

    out = image.parent / "avatar.ply"
    out.write_bytes(b"an earlier avatar")
    code = main(["--checkpoint", str(checkpoint or w.gst), "--image", str(image), "--out", str(out), "--views", "2"])
    assert code == 2 and out.read_bytes() == b"an earlier avatar", "a failed demo touched its earlier output"
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err  # one line, no traceback
    return err


def reading(folder: Path) -> str:
    from dreamer_core.datasets.torch_dataset import ShardDataset

    before = digest(folder)
    with pytest.raises(PipelineInputError) as info:
        ShardDataset(folder)
    assert digest(folder) == before
    return str(info.value)


def copy_shards(w: World, tmp: Path) -> tuple[Path, Path]:
    folder = tmp / "shards"
    shutil.copytree(w.shards, folder)
    return folder, folder / "shard-000000.tar"


def reindex(shard: Path) -> None:
    """Record the shard's current bytes in its index (hash, size, and its keys and count where the
    tar still lists its members), as a writer that produced them would: each case then reaches the
    reader's own check for what it damaged."""
    index = shard.parent / f"{shard.name}.index.json"
    entries = json.loads(index.read_text())
    entry = entries[shard.name]
    entry.update(sha256=hashlib.sha256(shard.read_bytes()).hexdigest(), bytes=shard.stat().st_size)
    try:
        with tarfile.open(shard) as tar:
            keys = list(dict.fromkeys(m.name.split(".", 1)[0] for m in tar))
        entry.update(keys=keys, num_samples=len(keys))
    except (tarfile.TarError, EOFError):  # a truncated tar: the reader must say so itself
        pass
    index.write_text(json.dumps(entries))


@case("corrupt image -> avatar demo")
def _(w, tmp, capsys):
    bad = tmp / "person.png"
    bad.write_bytes(os.urandom(2048))
    return demo(w, bad, capsys), [str(bad), "give a PNG or JPEG"]


@case("truncated image -> avatar demo")
def _(w, tmp, capsys):
    bad = tmp / "person.png"
    bad.write_bytes(w.image.read_bytes()[: w.image.stat().st_size // 2])
    return demo(w, bad, capsys), [str(bad), "give a PNG or JPEG"]


@case("corrupt shard -> ShardDataset")
def _(w, tmp, capsys):
    folder, shard = copy_shards(w, tmp)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)
    shard.write_bytes(bytes(data))
    return reading(folder), [str(shard), "SHA-256", "re-materialize"]


@case("truncated shard -> ShardDataset")
def _(w, tmp, capsys):
    folder, shard = copy_shards(w, tmp)
    shard.write_bytes(shard.read_bytes()[:3000])
    reindex(shard)  # the hash alone would catch it; the tar reader must too
    return reading(folder), [str(shard), "truncated", "re-materialize"]


def raw_shard(folder: Path, names: list[str], payload: dict[str, bytes]) -> Path:
    shard = folder / "shard-000000.tar"
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            data = payload[name.rsplit("/", 1)[-1].split(".", 1)[-1]]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    reindex(shard)
    return shard


def members(shard: Path) -> dict[str, bytes]:
    with tarfile.open(shard) as tar:
        first = tar.getmembers()[0].name.split(".", 1)[0]
        return {m.name.split(".", 1)[1]: tar.extractfile(m).read() for m in tar if m.name.startswith(first + ".")}


def first_sample_only(w: World, tmp: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A copy of the shard folder reduced to its first shard, and that shard's first sample's
    members (extension -> bytes), to be rewritten by a case."""
    folder, shard = copy_shards(w, tmp)
    (folder / "shard-000001.tar").unlink()
    (folder / "shard-000001.tar.index.json").unlink()
    return folder, shard, members(shard)


@case("shard member with an absolute path -> ShardDataset")
def _(w, tmp, capsys):
    folder, shard, payload = first_sample_only(w, tmp)
    raw_shard(folder, [f"/tmp/evil.{ext}" for ext in payload], payload)
    return reading(folder), [str(shard), "absolute path or '..'", "delete it"]


@case("shard member with '..' -> ShardDataset")
def _(w, tmp, capsys):
    folder, shard, payload = first_sample_only(w, tmp)
    raw_shard(folder, [f"../evil.{ext}" for ext in payload], payload)
    assert not (tmp / "evil.json").exists()
    return reading(folder), [str(shard), "absolute path or '..'", "delete it"]


@case("NaN label in a shard -> ShardDataset")
def _(w, tmp, capsys):
    folder, shard, payload = first_sample_only(w, tmp)
    labels = json.loads(payload["json"])
    labels["K"][0][0] = float("nan")
    payload["json"] = json.dumps(labels).encode()  # json writes NaN as the bare token NaN
    raw_shard(folder, [f"s0.{ext}" for ext in payload], payload)
    return reading(folder), [str(shard), "non-finite value at labels.K[0][0]", "re-materialize"]


def one_sample(w: World, tmp: Path, edit: Callable[[dict[str, bytes]], list[tuple[str, bytes]]]) -> tuple[Path, Path]:
    """A shard folder whose only shard holds the first sample's members as ``edit`` rewrites them
    (a list of (member name, bytes), in tar order)."""
    folder, shard, payload = first_sample_only(w, tmp)
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in edit(payload):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    reindex(shard)
    return folder, shard


@case("sparse tar member claiming 8 GB -> read_shard under ulimit -v 4000000")
def _(w, tmp, capsys):
    folder, shard, payload = first_sample_only(w, tmp)
    with tarfile.open(shard, "w", format=tarfile.GNU_FORMAT) as tar:
        for ext, data in payload.items():
            if ext != "depth.png":
                info = tarfile.TarInfo(f"s0.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("s0.depth.png")  # a GNU sparse header: 8 GB claimed, no data in the file
        info.type, info.size = tarfile.GNUTYPE_SPARSE, 0
        header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
        header[386:398], header[398:410], header[483:495] = b"%011o\0" % 0, b"%011o\0" % 0, b"%011o\0" % (8 << 30)
        header[148:156] = b"        "
        header[148:155] = b"%06o\0" % (sum(header[:512]) & 0o777777)
        tar.fileobj.write(bytes(header[:512]))
        tar.offset += 512
    assert shard.stat().st_size < 100_000
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (4_000_000 * 1024,) * 2)\n"
            "from dreamer_core.datasets.shards import read_shard, ShardError\n"
            "try:\n    list(read_shard(sys.argv[1]))\nexcept ShardError as exc:\n    print(exc)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, str(shard)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stdout.strip(), [str(shard), "not a regular file", "re-materialize"]


@case("oversized shard member -> ShardDataset")
def _(w, tmp, capsys):
    from dreamer_core.datasets.shards import MAX_MEMBER_BYTES

    folder, shard = one_sample(w, tmp, lambda p: [*((f"s0.{e}", d) for e, d in p.items() if e != "json"),
                                                  ("s0.json", b" " * (MAX_MEMBER_BYTES + 1))])  # fmt: skip
    return reading(folder), [str(shard), "s0.json", "more than any sample member", "re-materialize"]


@case("duplicate shard member names -> ShardDataset")
def _(w, tmp, capsys):
    folder, shard = one_sample(w, tmp, lambda p: [*((f"s0.{e}", d) for e, d in p.items()), ("s0.json", p["json"])])
    return reading(folder), [str(shard), "'s0.json' appears twice", "re-materialize"]


@case("PNG decompression bomb in a shard -> ShardDataset")
def _(w, tmp, capsys):
    bomb = io.BytesIO()  # 8000 x 8000 pixels in ~70 kB; refused from its header, never decompressed
    Image.new("L", (8000, 8000)).save(bomb, format="PNG")
    folder, shard = one_sample(w, tmp, lambda p: [(f"s0.{e}", bomb.getvalue() if e == "mask.png" else d)
                                                  for e, d in p.items()])  # fmt: skip
    return reading(folder), [str(shard), "s0.mask.png is a 8000x8000 L image", "re-materialize"]


def _label_edit(edit: Callable[[dict], object]) -> Callable[[dict[str, bytes]], list[tuple[str, bytes]]]:
    def rewrite(p: dict[str, bytes]) -> list[tuple[str, bytes]]:
        labels = json.loads(p["json"])
        edited = edit(labels)
        data = edited if isinstance(edited, bytes) else json.dumps(labels).encode()
        return [(f"s0.{e}", data if e == "json" else d) for e, d in p.items()]

    return rewrite


@case("label JSON with a wrong type -> ShardDataset")
def _(w, tmp, capsys):
    folder, shard = one_sample(w, tmp, _label_edit(lambda lab: lab.update(image_size="64x64")))
    return reading(folder), [str(shard), "s0.json field 'image_size' is not a 2 array of numbers", "re-materialize"]


@case("deeply nested label JSON -> ShardDataset")
def _(w, tmp, capsys):
    deep = lambda lab: json.dumps(lab)[:-1].encode() + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # noqa: E731
    folder, shard = one_sample(w, tmp, _label_edit(deep))
    return reading(folder), [str(shard), "s0.json is not valid JSON", "re-materialize"]


def _run_config_error(w: World, asset: str, run_config: dict) -> str:
    before = digest(w.data)
    with pytest.raises(dg.DagsterInvalidConfigError) as info:
        dg.materialize([*ASSETS, *CHECKS], selection=[asset], resources=w.resources, run_config=run_config)
    assert digest(w.data) == before
    return str(info.value)


@case("launchpad launcher 'torchrun --no-python sh' -> hmr_checkpoints")
def _(w, tmp, capsys):
    config = {"ops": {"hmr_checkpoints": {"config": {"launcher": "torchrun --no-python sh -c 'id'"}}}}
    return _run_config_error(w, "hmr_checkpoints", config), ["hmr_checkpoints", "launcher"]


@case("run-config override of allow_pickle_models / dvc_bin / repo_dir -> pose_bank")
def _(w, tmp, capsys):
    config = {"resources": {"body_model": {"config": {"allow_pickle_models": True, "model_dir": str(tmp)}},
                            "dvc": {"config": {"dvc_bin": "/bin/sh", "repo_dir": str(tmp)}}}}  # fmt: skip
    return _run_config_error(w, "pose_bank", config), ["allow_pickle_models", "dvc_bin", "repo_dir"]


@case("hmr.real_train name with '../' (launchpad) -> hmr_checkpoints")
def _(w, tmp, capsys):
    config = {"ops": {"hmr_checkpoints": {"config": {"real_train": {"../../etc": "3dpw:/data/3dpw"}}}}}
    before = digest(w.data)
    result = dg.materialize([*ASSETS, *CHECKS], selection=["hmr_checkpoints"], resources=w.resources,
                            run_config=config, raise_on_error=False)  # fmt: skip
    assert not result.success and digest(w.data) == before and not (w.data / "etc").exists()
    return _failure_message(result), ["hmr.real_train", "[A-Za-z0-9_-]"]


def amass_case(w: World, tmp: Path, arrays: dict[str, np.ndarray], allow_pickle: bool = False) -> str:
    folder = tmp / "amass"
    folder.mkdir()
    np.savez(folder / "walk.npz", **arrays, allow_pickle=allow_pickle)
    before = digest(w.data / "pose_bank")
    message = w.materialize(amass_path=str(folder), amass_on_error="fail",
                            source_weights={"anatomical": 1.0, "amass": 1.0})  # fmt: skip
    assert digest(w.data / "pose_bank") == before, "a failed pose_bank run changed the earlier pose bank"
    return message


@case("AMASS file with wrong-shaped poses -> pose_bank")
def _(w, tmp, capsys):
    msg = amass_case(w, tmp, {"poses": np.zeros((20, 10)), "trans": np.zeros((20, 3))})
    return msg, [str(tmp / "amass" / "walk.npz"), "'poses' has shape (20, 10)", "amass_on_error: skip"]


@case("AMASS file with NaN poses -> pose_bank")
def _(w, tmp, capsys):
    poses = np.zeros((20, 156))
    poses[7, 5] = np.nan
    msg = amass_case(w, tmp, {"poses": poses, "trans": np.zeros((20, 3))})
    return msg, [str(tmp / "amass" / "walk.npz"), "NaN or inf (first at frame 7)", "fix or remove this file"]


@case("AMASS file with out-of-range poses -> pose_bank")
def _(w, tmp, capsys):
    msg = amass_case(w, tmp, {"poses": np.full((20, 156), 40.0), "trans": np.zeros((20, 3))})
    return msg, [str(tmp / "amass" / "walk.npz"), "outside +/-2pi", "fix or remove this file"]


@case("AMASS file holding pickled objects -> pose_bank")
def _(w, tmp, capsys):
    msg = amass_case(w, tmp, {"poses": np.array([{"evil": 1}], dtype=object)}, allow_pickle=True)
    return msg, [str(tmp / "amass" / "walk.npz"), "not a plain-array .npz", "re-save it without object arrays"]


@case("NaN pose parameters -> BodyModel.forward")
def _(w, tmp, capsys):
    from dreamer_core.bodies import load_body_model
    from dreamer_core.config import BodyModelSettings

    body = load_body_model(BodyModelSettings(name="anny"))
    pose = torch.zeros(2, 21, 3)
    pose[1, 4, 0] = float("nan")
    with pytest.raises(PipelineInputError) as info:
        body.forward({"body_pose": pose})
    return str(info.value), ["'body_pose'", "NaN or inf (batch rows [1])", "drop or repair"]


@case("out-of-range pose parameters -> BodyModel.forward")
def _(w, tmp, capsys):
    from dreamer_core.bodies import load_body_model
    from dreamer_core.config import BodyModelSettings

    body = load_body_model(BodyModelSettings(name="anny"))
    with pytest.raises(PipelineInputError) as info:
        body.forward({"body_pose": torch.full((1, 21, 3), 3.0)})
    return str(info.value), ["'body_pose'", "rotation angle", "angle at most pi"]


@case("missing SMPL-X files -> pose_bank")
def _(w, tmp, capsys):
    empty = tmp / "smplx_models"
    empty.mkdir()
    before = digest(w.data / "pose_bank")
    msg = w.materialize(body=BodyModelResource(name="smplx", model_dir=str(empty)))
    assert digest(w.data / "pose_bank") == before
    return msg, [str(empty), "SMPLX_NEUTRAL.npz", "point body_model.model_dir at the folder"]


@case("official SMPL .pkl without opting in -> load_body_model")
def _(w, tmp, capsys):
    from dreamer_core.bodies import load_body_model
    from dreamer_core.config import BodyModelSettings

    (tmp / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(PipelineInputError) as info:
        load_body_model(BodyModelSettings(name="smpl", model_dir=str(tmp)))
    return str(info.value), [str(tmp), "body_model.allow_pickle_models: true"]


def cli(tmp: Path, *args: str, **env: str) -> str:
    full = {**os.environ, "DAGSTER_HOME": str(tmp / "home"), "PD_DATA_DIR": str(tmp / "data"), "PD_DVC": "off", **env}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", *args], cwd=REPO, env=full,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0 and err.startswith("error: "), err
    return err


@case("unknown profile -> orchestration.cli")
def _(w, tmp, capsys):
    return cli(tmp, "status", PD_PROFILE="huge"), ["PD_PROFILE", "'huge'", "must be one of ['tiny', 'full']"]


def bad_params(tmp: Path, key: str, value: object) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tiny"]["pose_bank"][key] = value
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@case("negative params value -> orchestration.cli")
def _(w, tmp, capsys):
    path = bad_params(tmp, "num_poses", -5)
    return cli(tmp, "status", PD_PARAMS=str(path)), ["tiny.pose_bank.num_poses", "-5"]


@case("mistyped params value -> orchestration.cli")
def _(w, tmp, capsys):
    path = bad_params(tmp, "noise_deg", "lots")
    return cli(tmp, "status", PD_PARAMS=str(path)), ["tiny.pose_bank.noise_deg", "'lots'"]


@case("misspelt params key -> orchestration.cli")
def _(w, tmp, capsys):
    path = bad_params(tmp, "num_pose", 64)
    return cli(tmp, "status", PD_PARAMS=str(path)), ["tiny.pose_bank", "num_pose", "allowed are"]


@case("out-of-range run config (launchpad) -> pose_bank")
def _(w, tmp, capsys):
    before = digest(w.data / "pose_bank")
    msg = w.materialize(candidate_factor=0.25)
    assert digest(w.data / "pose_bank") == before
    return msg, ["run_config.pose_bank.candidate_factor", "0.25"]


@case("output folder is a file -> pose_bank")
def _(w, tmp, capsys):
    root = tmp / "data"
    root.mkdir()
    (root / "pose_bank").write_text("not a folder")
    msg = w.materialize(storage_root=root)
    assert (root / "pose_bank").read_text() == "not a folder"
    return msg, [str(root / "pose_bank"), "not writable", "PD_DATA_DIR"]


@case("read-only output folder -> pose_bank")
def _(w, tmp, capsys):
    root = tmp / "data"
    out = root / "pose_bank"
    shutil.copytree(w.data / "pose_bank", out)
    before = digest(out)
    if os.geteuid() == 0:  # root writes through permission bits: make it a read-only bind mount
        mounted = subprocess.run(["mount", "--bind", str(out), str(out)], capture_output=True).returncode == 0
        if not mounted or subprocess.run(["mount", "-o", "remount,bind,ro", str(out)]).returncode != 0:
            pytest.skip("running as root without the right to mount a read-only folder")
    else:
        out.chmod(0o555)
    try:
        msg = w.materialize(storage_root=root)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(out)], check=True)
        else:
            out.chmod(0o755)
    assert digest(out) == before
    return msg, [str(out), "not writable", "PD_DATA_DIR"]


@case("missing checkpoint files -> load_hmr")
def _(w, tmp, capsys):
    from dreamer_core.hmr.model import load_hmr

    with pytest.raises(PipelineInputError) as info:
        load_hmr(tmp / "nothing_here")
    return str(info.value), [str(tmp / "nothing_here"), "materialize hmr_checkpoints"]


@case("damaged checkpoint -> avatar demo")
def _(w, tmp, capsys):
    ckpt = tmp / "gst"
    shutil.copytree(w.gst, ckpt)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    image = tmp / "person.png"
    shutil.copy(w.image, image)
    message = demo(w, image, capsys, checkpoint=ckpt)
    return message, [str(ckpt), "unreadable checkpoint", "re-materialize gst_checkpoint"]


@case("damaged .ply -> load_ply")
def _(w, tmp, capsys):
    from avatar_core.ply import load_ply

    bad = tmp / "avatar.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00")
    with pytest.raises(PipelineInputError) as info:
        load_ply(bad)
    return str(info.value), [str(bad), "not a readable .ply", "export it again"]


@case("label pickle that imports code -> load_label_pickle")
def _(w, tmp, capsys):
    from dreamer_core.datasets.safe_pickle import load_label_pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    bad = tmp / "courtyard_basketball_00.pkl"
    bad.write_bytes(pickle.dumps({"poses": Evil()}))
    with pytest.raises(PipelineInputError) as info:
        load_label_pickle(bad)
    assert not (Path.cwd() / "pwned").exists()
    return str(info.value), [str(bad), "not allowed", "only dicts, lists and numpy arrays"]


@case("HMR training spec with an unknown key -> orchestration.train_hmr")
def _(w, tmp, capsys):
    spec = {"train_set": "rendered", "sources": [str(w.shards)], "out": str(tmp / "out"), "seed": 0,
            "hmr": {"image_size": 32, "width": 8, "widht": 8, "steps": 1}, "body_model": {"name": "anny"}}  # fmt: skip
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-m", "orchestration.train_hmr", "--spec", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp / "out").exists()
    return proc.stderr.strip(), ["hmr: unknown keys ['widht']", "allowed"]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, world, tmp_path, capsys):
    message, expected = CASES[name](world, tmp_path, capsys)
    missing = [e for e in expected if e not in message]
    shown = message.replace(str(tmp_path), "<tmp>").replace(str(world.tmp), "<tmp>")
    REPORT.append((name, "ok" if message and not missing else "FAILED", shown))
    assert message, f"{name}: no error at all"
    assert not missing, f"{name}: the error does not say {missing}:\n{message}"
