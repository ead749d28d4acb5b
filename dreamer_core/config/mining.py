"""Settings of the mining loop (generation rounds, the hardness model) and of the dataset filter."""

from __future__ import annotations

from dataclasses import dataclass

from dreamer_core.config.fields import Check, Section, integer, items, number, setting

CRON = Check(lambda v: isinstance(v, str) and len(v.split()) == 5, 'a cron string with five fields, e.g. "0 3 * * *"')


@dataclass(frozen=True)
class RoundGenerationsSettings(Section):
    """One generation shard per Dagster dynamic partition: round 1 at random, round 2 the predicted hardest."""

    key = "round_generations"
    samples_per_shard: int = setting(1000, "samples per generation shard", integer(1, 1_000_000))
    initial_shards: int = setting(100, "shards per round that `make demo` / the CLI create when a round has none",
                                  integer(1, 100_000))  # fmt: skip
    regenerate_shards: int = setting(10, "shards per round that each scheduled (or UI-launched) regeneration adds",
                                     integer(1, 10_000))  # fmt: skip
    schedule_cron: str = setting("0 3 * * *", "scheduled regeneration; the schedule is off until switched on in the "
                                 "UI", CRON)  # fmt: skip
    batch_size: int = setting(16, "generator batch", integer(1, 100_000))
    hard_pool_fraction: float = setting(0.2, "round 2 draws from this share of training poses with the lowest "
                                        "predicted OKS", number(0.001, 1.0))  # fmt: skip


@dataclass(frozen=True)
class HardnessSettings(Section):
    """HistGradientBoostingRegressor: pose + shape parameters -> round-1 OKS, and the bins it sorts poses into."""

    key = "hardness_model"
    max_iter: int = setting(500, "boosting iterations", integer(1, 100_000))
    learning_rate: float = setting(0.05, "boosting learning rate", number(1e-4, 1.0))
    max_leaf_nodes: int = setting(31, "leaves per tree", integer(2, 4096))
    min_samples_leaf: int = setting(20, "poses per leaf: targets are per-pose mean OKS (weighted by samples)",
                                    integer(1, 100_000))  # fmt: skip
    l2_regularization: float = setting(1.0, "L2 penalty on leaf values", number(0.0, 1e6))
    folds: int = setting(5, "cross-fitting by pose: out-of-fold predictions for round 2 and held-out metrics",
                         integer(2, 50))  # fmt: skip
    bins: tuple[float, ...] = setting([0.8, 0.6, 0.4], "predicted COCO OKS thresholds: easy >= bins[0] > medium >= "
                                      "bins[1] > hard >= bins[2] > very hard",
                                      items(number(0.0, 1.0).ok, "a non-empty, strictly decreasing list of OKS "
                                            "thresholds in [0, 1] (e.g. [0.8, 0.6, 0.4])",
                                            order=lambda a, b: a > b))  # fmt: skip


@dataclass(frozen=True)
class FilterSettings(Section):
    """The filter stages' thresholds (``filters.stages``) and the kept dataset's shard size."""

    key = "filtered_dataset"
    max_people: int = setting(4, "crowding: more people than this (person-mask components) -> reject",
                              integer(1, 1000))  # fmt: skip
    min_person_area: float = setting(0.02, "a mask component counts as a person from this share of the image",
                                     number(0.0, 1.0))  # fmt: skip
    min_keypoint_score: float = setting(0.3, "empty: mean keypoint confidence below this (and no component) -> "
                                        "reject", number(0.0, 1.0))  # fmt: skip
    min_oks: float = setting(0.85, "pose alignment, COCO OKS (PoseDreamer: 0.85)", number(0.0, 1.0))
    min_std: float = setting(0.04, "blank: grey-level standard deviation below this", number(0.0, 1.0))
    max_saturated: float = setting(0.5, "saturated: share of pixels clipped to 0 or 255 above this", number(0.0, 1.0))
    min_sharpness: float = setting(0.0005, "blurred: variance of the Laplacian (grey in [0, 1]) below this",
                                   number(0.0, 1e6))  # fmt: skip
    max_hash_distance: int = setting(4, "near-duplicate: 64-bit perceptual-hash Hamming distance at most this",
                                     integer(0, 64))  # fmt: skip
    samples_per_shard: int = setting(1000, "kept samples per output shard", integer(1, 1_000_000))
