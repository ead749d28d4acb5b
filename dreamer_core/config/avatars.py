"""Settings of the 3D side: HMR training sets, the benchmark table, GST avatars."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from dreamer_core.config.fields import FLAG, TEXT, Check, Section, integer, items, number, one_of, setting

SYNTHETIC_SETS = ("rendered", "generated", "mixed")
HMR_MODEL_FIELDS = ("backbone", "width", "depth", "patch", "dim", "decoder_layers", "heads")  # HMRConfig's
HMR_TRAINING_FIELDS = ("steps", "batch_size", "lr", "weight_decay", "flip")  # HMRTraining's (with the seed)
GST_MODEL_FIELDS = ("num_vertices", "chunk", "sh_degree", "freeze_backbone")  # GSTConfig's
GST_TRAINING_FIELDS = ("steps", "subjects_per_step", "target_views", "lr", "backbone_lr", "mask_weight",
                       "tightness_weight")  # GSTTraining's (with the seed)  # fmt: skip
# The torchrun flags a launcher may pass, each with the form of its value (None: a bare switch).
# An allow-list: anything else (``--no-python``, a script, ``-m``) could run another program with
# the pod's environment, so it is refused rather than passed on.
_HOST = r"[A-Za-z0-9.-]+"
TORCHRUN_FLAGS: dict[str, str | None] = {
    "--standalone": None,
    "--nproc_per_node": r"[1-9][0-9]{0,3}|gpu|cpu|auto",
    "--nnodes": r"[1-9][0-9]{0,4}(:[1-9][0-9]{0,4})?",
    "--node_rank": r"[0-9]{1,5}",
    "--rdzv_backend": r"c10d|static|etcd|etcd-v2",
    "--rdzv_endpoint": rf"{_HOST}(:[0-9]{{1,5}})?",
    "--rdzv_id": r"[A-Za-z0-9_-]{1,64}",
    "--master_addr": _HOST,
    "--master_port": r"[0-9]{1,5}",
    "--max_restarts": r"[0-9]{1,3}",
    "--monitor_interval": r"[0-9]{1,4}(\.[0-9]+)?",
}
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a set name becomes a folder name: no separators, no dots


def launcher_problem(value: Any) -> str:
    """Why ``value`` is not an allowed launcher ("" when it is): "" or ``torchrun`` with flags of
    ``TORCHRUN_FLAGS`` only (``--flag value``, ``--flag=value``; dashes or underscores)."""
    if not isinstance(value, str):
        return "not a string"
    if not value.isascii() or any(c in value for c in "\"'\\"):
        return "only plain ASCII words (no quotes, escapes or non-ASCII spaces)"
    words = shlex.split(value)  # what training_command splits it with
    if not words:
        return ""
    if words[0] != "torchrun":
        return f"the program is {words[0]!r}, not torchrun"
    rest = words[1:]
    while rest:
        word = rest.pop(0)
        flag, eq, val = word.partition("=")
        flag = "--" + flag[2:].replace("-", "_") if flag.startswith("--") else flag
        if flag not in TORCHRUN_FLAGS:
            return f"{word!r} is not an allowed torchrun flag ({', '.join(TORCHRUN_FLAGS)})"
        form = TORCHRUN_FLAGS[flag]
        if form is None:
            if eq:
                return f"{flag} takes no value"
            continue
        if not eq:
            val = rest.pop(0) if rest else ""
        if not re.fullmatch(form, val):
            return f"{flag} {val!r} is not of the form {form}"
    return ""


LAUNCHER = Check(
    lambda v: launcher_problem(v) == "",
    '"" (one process) or "torchrun" with allowed flags only (--standalone, --nproc_per_node, --nnodes, '
    "--node_rank, --rdzv_*, --master_addr, --master_port, --max_restarts), e.g. "
    '"torchrun --standalone --nproc_per_node gpu"',
)
REAL_SETS = Check(lambda v: isinstance(v, dict) and not set(v) & set(SYNTHETIC_SETS)
                  and all(isinstance(n, str) and NAME.fullmatch(n) for n in v)
                  and all(isinstance(s, str) and s.startswith("3dpw:") for s in v.values()),
                  'a mapping name -> "3dpw:<root>": names of [A-Za-z0-9_-] (folder names), other than '
                  "rendered / generated / mixed")  # fmt: skip


@dataclass(frozen=True)
class HMRSettings(Section):
    """One HMR2-style regressor per training set, with the same step budget for each (hmr_checkpoints)."""

    key = "hmr"
    image_size: int = setting(256, "input side; crops are resized", integer(16, 1024, multiple_of=8))
    backbone: str = setting("vit", "cnn | vit (a small ViT from scratch does not learn in CPU minutes)",
                            one_of("cnn", "vit"))  # fmt: skip
    width: int = setting(768, "cnn: first-stage channels; vit: token width", integer(4, 4096))
    depth: int = setting(12, "cnn: stages; vit: encoder layers", integer(1, 64))
    patch: int = setting(16, "vit: patch side", integer(1, 64))
    dim: int = setting(1024, "decoder token width", integer(8, 4096))
    decoder_layers: int = setting(6, "transformer decoder layers", integer(1, 64))
    heads: int = setting(8, "attention heads of the decoder", integer(1, 64))
    steps: int = setting(100_000, "training steps per training set (the same budget for each)",
                         integer(1, 10_000_000))  # fmt: skip
    batch_size: int = setting(48, "training batch (per rank)", integer(1, 100_000))
    lr: float = setting(0.00001, "AdamW learning rate", number(1e-7, 1.0))
    weight_decay: float = setting(0.0001, "AdamW weight decay", number(0.0, 1.0))
    flip: float = setting(0.5, "share of each batch mirrored left-right (labels mirrored exactly)", number(0.0, 1.0))
    checkpoint_every: int = setting(1000, "resume state every n steps (a killed run continues from here)",
                                    integer(1, 10_000_000))  # fmt: skip
    train_sets: tuple[str, ...] = setting(list(SYNTHETIC_SETS), "synthetic training sets",
                                          items(lambda v: v in SYNTHETIC_SETS, "a non-empty list of distinct names "
                                                "from [rendered, generated, mixed]", distinct=True))  # fmt: skip

    parallel_sets: int = setting(1, "training sets trained side by side (CPU cores split between them)",
                                 integer(1, 64))  # fmt: skip
    loader_workers: int = setting(6, "DataLoader workers decoding training shards per rank (0: in the training "
                                  "process; the batches are the same for any number)", integer(0, 256))  # fmt: skip
    launcher: str = setting("torchrun --standalone --nproc_per_node gpu", '"" = one process per training set; '
                            '"torchrun ..." = data-parallel ranks (DDP, through Pipes)', LAUNCHER)  # fmt: skip
    real_train: dict[str, str] = setting({}, 'extra sets from real data: name -> "3dpw:<3DPW root>" (train split; '
                                         "needs body_model smpl)", REAL_SETS)  # fmt: skip

    def model_fields(self) -> dict[str, Any]:
        """The ``HMRConfig`` fields (image size and shape count come from the data and body)."""
        return {k: getattr(self, k) for k in HMR_MODEL_FIELDS}

    def training_fields(self, seed: int) -> dict[str, Any]:
        """The ``HMRTraining`` fields."""
        return {**{k: getattr(self, k) for k in HMR_TRAINING_FIELDS}, "seed": seed}

    def constraints(self) -> list[tuple[bool, str]]:
        return [(self.backbone != "vit" or self.image_size % self.patch == 0,
                 "backbone vit needs image_size to be a multiple of patch"),
                (self.dim % self.heads == 0, "dim must be a multiple of heads")]  # fmt: skip


@dataclass(frozen=True)
class BenchmarkSettings(Section):
    """The test sets and image-quality distances of the benchmark table (benchmark_scores)."""

    key = "benchmark_scores"
    generated_test_samples: int = setting(5000, "test-pose controls through the DPO generator, then the dataset's "
                                          "filter", integer(1, 10_000_000))  # fmt: skip
    inception_weights: str = setting("", 'FID / KID: path to the FID Inception weights (pt_inception-2015-12-05); '
                                     '"" = unavailable', TEXT)  # fmt: skip
    threedpw_path: str = setting("", "3DPW root (sequenceFiles/, imageFiles/): scores the test split; needs "
                                 "body_model smpl", TEXT)  # fmt: skip
    emdb_path: str = setting("", "EMDB root (P*/<sequence>/): scores the emdb1 sequences; needs body_model smpl", TEXT)
    real_test_limit: int = setting(2000, "at most this many frames per real benchmark, spread over all sequences",
                                   integer(1, 10_000_000))  # fmt: skip


@dataclass(frozen=True)
class GSTSettings(Section):
    """GST on top of an HMR checkpoint, trained on the reference_renders multi-view subjects (gst_checkpoint)."""

    key = "gst"
    hmr_checkpoint: str = setting("mixed", "which hmr_checkpoints training set GST starts from", TEXT)
    num_vertices: int = setting(13718, "Gaussians: a farthest-point subset of the body's vertices (13718: every "
                                "anny vertex)", integer(1, 10_000_000))  # fmt: skip
    chunk: int = setting(64, "vertices per Gaussian query token", integer(1, 100_000))
    sh_degree: int = setting(1, "spherical-harmonics degree of the colours", integer(0, 3))
    freeze_backbone: bool = setting(False, "keep the HMR parts it starts from fixed", FLAG)
    steps: int = setting(100_000, "training steps", integer(1, 10_000_000))
    subjects_per_step: int = setting(8, "subjects per step", integer(1, 100_000))
    target_views: int = setting(4, "novel views rendered per subject and step", integer(1, 1000))
    lr: float = setting(0.001, "learning rate of the Gaussian queries and heads", number(1e-7, 1.0))
    backbone_lr: float = setting(0.0001, "learning rate of the HMR parts it starts from", number(0.0, 1.0))
    mask_weight: float = setting(1.0, "weight of the silhouette loss", number(0.0, 1e6))
    tightness_weight: float = setting(10.0, "offsets stay near their vertices", number(0.0, 1e6))
    checkpoint_every: int = setting(1000, "resume state every n steps", integer(1, 10_000_000))
    loader_workers: int = setting(4, "DataLoader workers decoding multi-view shards into subjects (0: in the "
                                  "training process; the batches are the same for any number)",
                                  integer(0, 256))  # fmt: skip
    turntable_views: int = setting(8, "views of the exported turntable preview", integer(1, 360))

    def model_fields(self) -> dict[str, Any]:
        """The ``GSTConfig`` fields (the initial scale comes from the body's vertex spacing)."""
        return {k: getattr(self, k) for k in GST_MODEL_FIELDS}

    def training_fields(self, seed: int) -> dict[str, Any]:
        """The ``GSTTraining`` fields."""
        return {**{k: getattr(self, k) for k in GST_TRAINING_FIELDS}, "seed": seed}
