"""Run-config classes whose defaults come from params.yaml (the active profile).

The launchpad in the web UI shows these defaults; whatever a user changes there is validated
by the same schema as params.yaml, with an error naming the key.
"""

from typing import Any

import dagster as dg

from dreamer_core.config import load_params, validate_section
from orchestration.env import apply_defaults

PARAMS: dict[str, Any] = load_params()
apply_defaults(PARAMS["profile"])
_PB = PARAMS["pose_bank"]


class PoseBankConfig(dg.Config):
    """How many poses, from which sources, and how diverse (see params.yaml: pose_bank)."""

    num_poses: int = _PB["num_poses"]
    candidate_factor: float = _PB["candidate_factor"]
    source_weights: dict[str, float] = _PB["source_weights"]
    family_weights: dict[str, float] = _PB["family_weights"]
    noise_deg: float = _PB["noise_deg"]
    age_range: list[float] = _PB["age_range"]
    betas_range: float = _PB["betas_range"]
    amass_path: str = _PB["amass_path"]
    amass_stride: int = _PB["amass_stride"]
    amass_on_error: str = _PB["amass_on_error"]
    amass_zup: bool = _PB["amass_zup"]
    batch_size: int = _PB["batch_size"]
    val_fraction: float = _PB["val_fraction"]
    test_fraction: float = _PB["test_fraction"]
    seed: int = PARAMS["seed"]

    def settings(self) -> dict[str, Any]:
        values = self.model_dump()
        values.pop("seed")
        return validate_section("pose_bank", values, prefix="run_config.")


def _annotation(value: Any) -> Any:
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, dict):
        return dict[str, str] if all(isinstance(v, str) for v in value.values()) else dict[str, float]
    if isinstance(value, list):
        if value and isinstance(value[0], str):
            return list[str]
        return list[int] if value and all(isinstance(v, int) for v in value) else list[float]
    raise TypeError(f"no config type for {value!r}")


def config_class(name: str, sections: tuple[str, ...], doc: str, fixed: tuple[str, ...] = ()) -> type[dg.Config]:
    """A run-config class whose fields are the keys of ``sections`` (defaults: params.yaml) + seed.

    ``settings()`` splits the values back into sections and validates each with the same schema
    as params.yaml, so a bad launchpad value is reported by its key. Keys in ``fixed`` shape the
    asset graph itself (e.g. the number of partitions), so they are not offered per run.
    """
    from pydantic import create_model

    fields: dict[str, Any] = {"seed": (int, PARAMS["seed"])}
    owner: dict[str, str] = {}
    for section in sections:
        for key, value in PARAMS[section].items():
            if key in fixed:
                continue
            if key in owner:
                raise ValueError(f"{name}: key {key!r} appears in both {owner[key]} and {section}")
            owner[key] = section
            fields[key] = (_annotation(value), value)

    def settings(self: dg.Config) -> dict[str, Any]:
        values = self.model_dump()
        out = {}
        for s in sections:
            part = {k: values[k] for k, o in owner.items() if o == s}
            part.update({k: PARAMS[s][k] for k in fixed if k in PARAMS[s]})
            out[s] = validate_section(s, part, prefix="run_config.")
        return out

    cls = create_model(name, __base__=dg.Config, __doc__=doc, **fields)
    cls.settings = settings  # type: ignore[attr-defined]
    return cls


ReferenceRendersConfig = config_class(
    "ReferenceRendersConfig", ("render", "reference_renders"),
    "Textured renders of posed bodies: train / test / multi-view (params.yaml: render, reference_renders).",
)  # fmt: skip
ControlRendersConfig = config_class(
    "ControlRendersConfig", ("render", "control_renders"),
    "PNCC control images, masks, depth and labels per shard (params.yaml: render, control_renders).",
    fixed=("num_shards",),  # the partitions; change it in params.yaml
)  # fmt: skip
GeneratorConfig = config_class(
    "GeneratorConfig", ("generator",),
    "Control-conditioned generator: tiny (trained here on reference renders) or a pretrained diffusers "
    "pipeline (params.yaml: generator).",
)  # fmt: skip
DPOConfig = config_class(
    "DPOConfig", ("dpo",),
    "Diffusion-DPO: candidates per control, pair rule, LoRA and training (params.yaml: dpo).",
)  # fmt: skip
RoundGenerationsConfig = config_class(
    "RoundGenerationsConfig", ("render", "round_generations"),
    "One generation shard: poses drawn from the bank (round 1 at random, round 2 the predicted hardest), "
    "control renders, DPO-generator samples, OKS (params.yaml: render, round_generations).",
    fixed=("initial_shards", "regenerate_shards", "schedule_cron"),  # partitions and schedule: params.yaml
)  # fmt: skip
HardnessConfig = config_class(
    "HardnessConfig", ("hardness_model",),
    "Gradient-boosted regressor pose + shape -> round-1 OKS (params.yaml: hardness_model).",
)  # fmt: skip
FilteredDatasetConfig = config_class(
    "FilteredDatasetConfig", ("filtered_dataset",),
    "Filter stages and their thresholds, output shard size (params.yaml: filtered_dataset).",
)  # fmt: skip
HMRCheckpointsConfig = config_class(
    "HMRCheckpointsConfig", ("hmr",),
    "HMR model, training budget (the same for every training set) and which sets to train (params.yaml: hmr).",
)  # fmt: skip
BenchmarkConfig = config_class(
    "BenchmarkConfig", ("benchmark_scores",),
    "Test sets and image-quality distances of the benchmark table (params.yaml: benchmark_scores).",
)  # fmt: skip
GSTConfig = config_class(
    "GSTConfig", ("gst",),
    "GST on an HMR checkpoint: Gaussians, heads and multi-view training budget (params.yaml: gst).",
)  # fmt: skip
