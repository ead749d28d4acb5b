"""Settings of the body model and of the pose bank sampled from it."""

from __future__ import annotations

from dataclasses import dataclass

from dreamer_core.config.fields import FLAG, TEXT, Section, integer, interval, number, one_of, setting, weights

FAMILY_NAMES = ("standing", "walking", "running", "sitting", "crouching", "reaching", "lying")
SOURCE_NAMES = ("anatomical", "amass")


@dataclass(frozen=True)
class BodyModelSettings(Section):
    """Which parametric body every asset poses, renders and fits (the ``body_model`` resource)."""

    key = "body_model"
    name: str = setting("anny", "anny | smpl | smplx", one_of("anny", "smpl", "smplx"))
    model_dir: str = setting("", "smpl/smplx: folder holding SMPL_NEUTRAL.npz / SMPLX_NEUTRAL.npz", TEXT)
    gender: str = setting("neutral", "neutral | male | female (smpl/smplx)", one_of("neutral", "male", "female"))
    num_betas: int = setting(10, "shape coefficients (smpl/smplx)", integer(1, 300))
    allow_pickle_models: bool = setting(False, "accept official .pkl model files (unpickles them: trust needed)",
                                        FLAG)  # fmt: skip


@dataclass(frozen=True)
class PoseBankSettings(Section):
    """How many poses, from which sources, how diverse, and how they split into train / val / test."""

    key = "pose_bank"
    num_poses: int = setting(50_000, "rows in data/pose_bank/poses.parquet", integer(2, 10_000_000))
    candidate_factor: float = setting(2.0, "farthest-point selection keeps num_poses of factor * num_poses",
                                      number(1.0, 100.0))  # fmt: skip
    source_weights: dict[str, float] = setting({"anatomical": 0.5, "amass": 0.5},
                                               "share of the bank per source (amass is used only with amass_path)",
                                               weights(SOURCE_NAMES))  # fmt: skip
    family_weights: dict[str, float] = setting(
        {"standing": 1.0, "walking": 1.0, "running": 1.0, "sitting": 1.0, "crouching": 1.0, "reaching": 1.0,
         "lying": 0.5}, "activity families of the anatomical sampler", weights(FAMILY_NAMES))  # fmt: skip
    noise_deg: float = setting(10.0, "per-angle Gaussian noise before clipping to joint limits", number(0.0, 90.0))
    age_range: tuple[float, float] = setting([5.0, 85.0], "anny phenotypes: morphological ages to sample",
                                             interval(0.0, 90.0))  # fmt: skip
    betas_range: float = setting(1.0, "smpl/smplx: betas uniform in [-r, r] (PoseDreamer)", number(0.0, 5.0))
    amass_path: str = setting("", "folder of AMASS .npz files (searched recursively)", TEXT)
    amass_stride: int = setting(5, "keep every n-th AMASS frame", integer(1, 100_000))
    amass_on_error: str = setting("skip", "skip | fail: what a bad AMASS file does", one_of("skip", "fail"))
    amass_zup: bool = setting(True, "AMASS world is Z up; rotate roots into Y up", FLAG)
    batch_size: int = setting(1024, "body-model forward batch", integer(1, 1_000_000))
    val_fraction: float = setting(0.05, "pose ids for validation: defaults, thresholds and sweeps are chosen here",
                                  number(0.01, 0.5))  # fmt: skip
    test_fraction: float = setting(0.05, "pose ids touched only to report (benchmarks, held-out DPO gain)",
                                   number(0.01, 0.5))  # fmt: skip
