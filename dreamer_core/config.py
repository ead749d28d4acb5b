"""Loading and validating ``params.yaml`` (the profiles) and run-config overrides.

Every value is checked at this boundary with a message that names its key (``tiny.pose_bank.
num_poses must be an integer >= 1, got -3``) so a typo never surfaces as a shape error later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dreamer_core.errors import ConfigError

PROFILES = ("tiny", "full")
GENERATOR_BACKENDS = ("tiny", "sd15_controlnet", "sdxl_controlnet", "flux_control")
PROFILE_ENV = "PD_PROFILE"
PARAMS_ENV = "PD_PARAMS"


@dataclass(frozen=True)
class Field:
    check: Callable[[Any], bool]
    expect: str


def _int(lo: int = -(2**62), hi: int = 2**62) -> Field:
    return Field(lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
                 f"an integer in [{lo}, {hi}]" if lo > -(2**62) else "an integer")  # fmt: skip


def _float(lo: float = -math.inf, hi: float = math.inf) -> Field:
    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi

    return Field(ok, f"a finite number in [{lo:g}, {hi:g}]")


def _choice(*options: str) -> Field:
    return Field(lambda v: v in options, f"one of {list(options)}")


_BOOL = Field(lambda v: isinstance(v, bool), "true or false")
_STR = Field(lambda v: isinstance(v, str), 'a string ("" for none)')


def _weights(keys: tuple[str, ...]) -> Field:
    def ok(v: Any) -> bool:
        return (
            isinstance(v, Mapping)
            and set(v) <= set(keys)
            and all(_float(0.0).check(x) for x in v.values())
            and sum(v.values()) > 0
        )

    return Field(ok, f"a mapping of {list(keys)} to non-negative numbers with a positive sum")


def _range(lo: float, hi: float) -> Field:
    def ok(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and len(v) == 2 and all(_float(lo, hi).check(x) for x in v) and v[0] <= v[1]

    return Field(ok, f"[low, high] with {lo:g} <= low <= high <= {hi:g}")


FAMILY_NAMES = ("standing", "walking", "running", "sitting", "crouching", "reaching", "lying")
SOURCE_NAMES = ("anatomical", "amass")
BACKGROUND_KINDS = ("gradient", "noise", "tiles", "images")

SCHEMA: dict[str, Any] = {
    "seed": _int(0, 2**31 - 1),
    "body_model": {
        "name": _choice("anny", "smpl", "smplx"),
        "model_dir": _STR,
        "gender": _choice("neutral", "male", "female"),
        "num_betas": _int(1, 300),
        "allow_pickle_models": _BOOL,
    },
    "pose_bank": {
        "num_poses": _int(2, 10_000_000),
        "candidate_factor": _float(1.0, 100.0),
        "source_weights": _weights(SOURCE_NAMES),
        "family_weights": _weights(FAMILY_NAMES),
        "noise_deg": _float(0.0, 90.0),
        "age_range": _range(0.0, 90.0),
        "betas_range": _float(0.0, 5.0),
        "amass_path": _STR,
        "amass_stride": _int(1, 100_000),
        "amass_on_error": _choice("skip", "fail"),
        "amass_zup": _BOOL,
        "batch_size": _int(1, 1_000_000),
        "val_fraction": _float(0.01, 0.5),
        "test_fraction": _float(0.01, 0.5),
    },
    "render": {
        "image_size": _int(16, 4096),
        "supersample": _int(1, 8),
        "focal_range": _range(1.0, 1e5),
        "frame_size": _int(16, 100_000),
        "distance_range": _range(0.5, 1000.0),
        "pitch_deg": _float(0.0, 89.0),
        "crop_margin": _float(0.0, 1.0),
        "min_body_px": _float(0.0, 1e5),
        "backgrounds": Field(
            lambda v: isinstance(v, list) and bool(v) and set(v) <= set(BACKGROUND_KINDS),
            f"a non-empty list drawn from {list(BACKGROUND_KINDS)}",
        ),
        "backgrounds_dir": _STR,
    },
    "reference_renders": {
        "num_train": _int(1, 100_000_000),
        "num_val": _int(1, 100_000_000),
        "num_test": _int(1, 100_000_000),
        "multiview_subjects": _int(1, 1_000_000),
        "multiview_heldout": _int(0, 1_000_000),
        "views_per_ring": _int(2, 360),
        "elevations_deg": Field(
            lambda v: isinstance(v, list) and bool(v) and all(_float(-89.0, 89.0).check(x) for x in v),
            "a non-empty list of elevations in [-89, 89] degrees",
        ),
        "multiview_radius": _float(0.5, 100.0),
        "samples_per_shard": _int(1, 1_000_000),
    },
    "control_renders": {
        "num_shards": _int(1, 100_000),
        "samples_per_shard": _int(1, 1_000_000),
    },
    "pose_detector": {
        "backend": _choice("heatmap", "vitpose"),
        "weights": _STR,
        "steps": _int(1, 10_000_000),
        "batch_size": _int(1, 100_000),
        "lr": _float(1e-7, 1.0),
        "width": Field(lambda v: isinstance(v, int) and v >= 8 and v % 8 == 0, "a multiple of 8, at least 8"),
        "judge_width": Field(lambda v: isinstance(v, int) and v >= 8 and v % 8 == 0, "a multiple of 8, at least 8"),
        "judge_depth": _int(1, 8),
        "judge_steps": _int(1, 10_000_000),
    },
    "generator": {
        "backend": _choice(*GENERATOR_BACKENDS),
        "weights": _STR,
        "control_weights": _STR,
        "objective": _choice("sample", "v_prediction", "epsilon", "flow"),
        "unshuffle": _choice(1, 2, 4, 8),
        "channels": Field(
            lambda v: (
                isinstance(v, list)
                and 2 <= len(v) <= 5
                and all(isinstance(c, int) and c >= 8 and c % 8 == 0 for c in v)
            ),
            "a list of 2 to 5 channel widths, each a multiple of 8",
        ),
        "steps": _int(1, 100_000_000),
        "batch_size": _int(1, 100_000),
        "lr": _float(1e-7, 1.0),
        "ema_decay": _float(0.0, 0.99999),
        "control_dropout": _float(0.0, 0.9),
        "sample_steps": _int(1, 1000),
        "guidance_scale": _float(0.0, 100.0),
        "eval_samples": _int(2, 1_000_000),
    },
    "dpo": {
        "num_controls": _int(1, 100_000_000),
        "num_candidates": _int(2, 64),
        "min_gap": _float(0.0, 1.0),
        "min_winner_oks": _float(0.0, 1.0),
        "pairing": _choice("best_worst", "all"),
        "beta": _float(1e-6, 1e9),
        "steps": _int(1, 100_000_000),
        "batch_pairs": _int(1, 100_000),
        "lr": _float(1e-7, 1.0),
        "lora_rank": _int(1, 1024),
        "lora_targets": Field(
            lambda v: isinstance(v, list) and bool(v) and all(isinstance(t, str) and t for t in v),
            "a non-empty list of module names",
        ),
        "heldout_controls": _int(2, 1_000_000),
        "heldout_seeds": _int(2, 100),  # the gain is judged against its spread over seeds
        "heldout_split": _choice("val", "test"),
    },
    "round_generations": {
        "samples_per_shard": _int(1, 1_000_000),
        "initial_shards": _int(1, 100_000),
        "regenerate_shards": _int(1, 10_000),
        "schedule_cron": Field(
            lambda v: isinstance(v, str) and len(v.split()) == 5, 'a cron string with five fields, e.g. "0 3 * * *"'
        ),
        "batch_size": _int(1, 100_000),
        "hard_pool_fraction": _float(0.001, 1.0),
    },
    "hardness_model": {
        "max_iter": _int(1, 100_000),
        "learning_rate": _float(1e-4, 1.0),
        "max_leaf_nodes": _int(2, 4096),
        "min_samples_leaf": _int(1, 100_000),
        "l2_regularization": _float(0.0, 1e6),
        "folds": _int(2, 50),
        "bins": Field(
            lambda v: (
                isinstance(v, list)
                and bool(v)
                and all(_float(0.0, 1.0).check(x) for x in v)
                and all(a > b for a, b in zip(v, v[1:], strict=False))
            ),
            "a non-empty, strictly decreasing list of OKS thresholds in [0, 1] (e.g. [0.8, 0.6, 0.4])",
        ),
    },
    "filtered_dataset": {
        "max_people": _int(1, 1000),
        "min_person_area": _float(0.0, 1.0),
        "min_keypoint_score": _float(0.0, 1.0),
        "min_oks": _float(0.0, 1.0),
        "min_std": _float(0.0, 1.0),
        "max_saturated": _float(0.0, 1.0),
        "min_sharpness": _float(0.0, 1e6),
        "max_hash_distance": _int(0, 64),
        "samples_per_shard": _int(1, 1_000_000),
    },
    "hmr": {
        "image_size": Field(
            lambda v: isinstance(v, int) and 16 <= v <= 1024 and v % 8 == 0, "a multiple of 8 in [16, 1024]"
        ),
        "backbone": _choice("cnn", "vit"),
        "width": _int(4, 4096),
        "depth": _int(1, 64),
        "patch": _int(1, 64),
        "dim": _int(8, 4096),
        "decoder_layers": _int(1, 64),
        "heads": _int(1, 64),
        "steps": _int(1, 10_000_000),
        "batch_size": _int(1, 100_000),
        "lr": _float(1e-7, 1.0),
        "weight_decay": _float(0.0, 1.0),
        "flip": _float(0.0, 1.0),
        "checkpoint_every": _int(1, 10_000_000),
        "parallel_sets": _int(1, 64),
        "launcher": Field(
            lambda v: isinstance(v, str) and (v == "" or v.split()[0] == "torchrun"),
            '"" (one process) or a torchrun command line, e.g. "torchrun --standalone --nproc_per_node gpu"',
        ),
        "real_train": Field(
            lambda v: (
                isinstance(v, dict)
                and all(isinstance(s, str) and s.startswith("3dpw:") for s in v.values())
                and not set(v) & {"rendered", "generated", "mixed"}
            ),
            'a mapping name -> "3dpw:<root>" whose names differ from rendered / generated / mixed',
        ),
        "train_sets": Field(
            lambda v: (
                isinstance(v, list)
                and len(v) > 0
                and len(set(v)) == len(v)
                and all(x in ("rendered", "generated", "mixed") for x in v)
            ),
            "a non-empty list of distinct names from [rendered, generated, mixed]",
        ),
    },
    "benchmark_scores": {
        "generated_test_samples": _int(1, 10_000_000),
        "inception_weights": _STR,
        "threedpw_path": _STR,
        "emdb_path": _STR,
        "real_test_limit": _int(1, 10_000_000),
    },
    "gst": {
        "hmr_checkpoint": _STR,
        "num_vertices": _int(1, 10_000_000),
        "chunk": _int(1, 100_000),
        "sh_degree": _int(0, 3),
        "freeze_backbone": _BOOL,
        "steps": _int(1, 10_000_000),
        "subjects_per_step": _int(1, 100_000),
        "target_views": _int(1, 1000),
        "lr": _float(1e-7, 1.0),
        "backbone_lr": _float(0.0, 1.0),
        "mask_weight": _float(0.0, 1e6),
        "tightness_weight": _float(0.0, 1e6),
        "checkpoint_every": _int(1, 10_000_000),
        "turntable_views": _int(1, 360),
    },
}


# Constraints between keys of one section: (predicate, message naming the keys).
CROSS_CHECKS: dict[str, list[tuple[Callable[[Mapping[str, Any]], bool], str]]] = {
    "pose_detector": [
        (lambda d: d["backend"] != "vitpose" or bool(d["weights"]),
         "backend vitpose needs weights (a folder saved with save_pretrained, or a hub id)"),
    ],
    "generator": [
        (lambda d: d["backend"] == "tiny" or bool(d["weights"]),
         "a pretrained backend needs weights (a pipeline folder or a hub id)"),
        (lambda d: d["backend"] == "tiny" or bool(d["control_weights"]),
         "a pretrained backend needs control_weights (a ControlNet / control-LoRA folder or hub id)"),
    ],
    "hmr": [
        (lambda d: d["backbone"] != "vit" or d["image_size"] % d["patch"] == 0,
         "backbone vit needs image_size to be a multiple of patch"),
        (lambda d: d["dim"] % d["heads"] == 0, "dim must be a multiple of heads"),
    ],
    "reference_renders": [
        (lambda d: d["multiview_heldout"] < d["multiview_subjects"],
         "multiview_heldout must be smaller than multiview_subjects"),
    ],
}  # fmt: skip

# Constraints between sections of one profile (checked after every section validated).
PROFILE_CHECKS: list[tuple[Callable[[Mapping[str, Any]], bool], str]] = [
    (lambda p: p["dpo"]["heldout_controls"] <= p["reference_renders"][f"num_{p['dpo']['heldout_split']}"],
     "dpo.heldout_controls must not exceed reference_renders.num_<dpo.heldout_split>: the DPO gain would be "
     "measured on fewer controls than asked"),
]  # fmt: skip


def _check_keys(where: str, values: Any, allowed: Mapping[str, Any], what: str) -> None:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must be a mapping, got {type(values).__name__}")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown {what} {unknown}; allowed are {sorted(allowed)}")
    missing = sorted(set(allowed) - set(values))
    if missing:
        raise ConfigError(f"{where}: missing {what} {missing}")


def validate_section(section: str, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Check one section (``"pose_bank"``, ...) against the schema; return a plain dict copy."""
    schema = SCHEMA[section]
    where = f"{prefix}{section}"
    _check_keys(where, values, schema, "keys")
    for key, field in schema.items():
        value = values[key]
        if not field.check(value):
            raise ConfigError(f"{where}.{key} must be {field.expect}, got {value!r}")
    for check, message in CROSS_CHECKS.get(section, []):
        if not check(values):
            raise ConfigError(f"{where}: {message}")
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in values.items()}


def validate_profile(profile: Mapping[str, Any], name: str) -> dict[str, Any]:
    _check_keys(name, profile, SCHEMA, "sections")
    out: dict[str, Any] = {}
    for section, schema in SCHEMA.items():
        if isinstance(schema, Field):
            if not schema.check(profile[section]):
                raise ConfigError(f"{name}.{section} must be {schema.expect}, got {profile[section]!r}")
            out[section] = profile[section]
        else:
            out[section] = validate_section(section, profile[section], prefix=f"{name}.")
    for check, message in PROFILE_CHECKS:
        if not check(out):
            raise ConfigError(f"{name}: {message}")
    return out


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def params_path() -> Path:
    return Path(os.environ.get(PARAMS_ENV, repo_root() / "params.yaml"))


def load_params(path: str | os.PathLike[str] | None = None, profile: str | None = None) -> dict[str, Any]:
    """Validated settings of one profile (``PD_PROFILE`` or the file's ``profile`` by default)."""
    p = Path(path) if path else params_path()
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: params file not found (set {PARAMS_ENV} or run from the repository)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{p}: must hold a mapping with 'profile' and the profiles {list(PROFILES)}")
    name = profile or os.environ.get(PROFILE_ENV) or raw.get("profile", "tiny")
    if name not in PROFILES:
        source = "PD_PROFILE" if os.environ.get(PROFILE_ENV) and not profile else "profile"
        raise ConfigError(f"{source}: must be one of {list(PROFILES)}, got {name!r}")
    if name not in raw:
        raise ConfigError(f"{p}: has no section for profile {name!r}")
    settings = validate_profile(raw[name], name)
    settings["profile"] = name
    return settings
