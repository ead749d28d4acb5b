"""Run-config classes derived from the library's settings sections, with the active profile's values.

Each field of a run config is a field of a ``dreamer_core.config`` section: same name, the type a
launchpad can edit, the profile's value as default and the section's doc line as description.
``settings()`` builds the sections back, so a bad launchpad value is rejected by the same check
as params.yaml, with its key.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import dagster as dg
from pydantic import Field, create_model

from dreamer_core.config import (
    BenchmarkSettings,
    ControlRendersSettings,
    DPOSettings,
    FilterSettings,
    GeneratorSettings,
    GSTSettings,
    HardnessSettings,
    HMRSettings,
    PipelineSettings,
    PoseBankSettings,
    PoseDetectorSettings,
    ReferenceRendersSettings,
    RenderSettings,
    RoundGenerationsSettings,
    Section,
    load_settings,
)
from dreamer_core.config.listing import DEVICE_DOC
from dreamer_core.devices import resolve_device
from orchestration.env import apply_defaults

SETTINGS: PipelineSettings = load_settings()
apply_defaults(SETTINGS.profile)
SEED_DOC = "global seed: every random stream of the asset derives from it"


def launchpad_type(hint: Any) -> Any:
    """The type a Dagster run config can hold for a section field (tuples become lists)."""
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]]  # type: ignore[index]
    return hint


def config_class(
    name: str, sections: tuple[type[Section], ...], doc: str, fixed: tuple[str, ...] = ()
) -> type[dg.Config]:
    """A run-config class whose fields are those of ``sections`` (defaults: the active profile), the
    seed and the device (``torch_device()`` resolves it, checked as in params.yaml).

    Keys in ``fixed`` shape the asset graph itself (e.g. the number of partitions), so they are not
    offered per run; they keep the profile's value.
    """
    fields: dict[str, Any] = {"seed": (int, Field(SETTINGS.seed, description=SEED_DOC)),
                              "device": (str, Field(SETTINGS.device, description=DEVICE_DOC))}  # fmt: skip
    owner: dict[str, type[Section]] = {}
    for cls in sections:
        current, hints = SETTINGS.section(cls.key).to_dict(), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in fixed:
                continue
            if f.name in owner:
                raise ValueError(f"{name}: key {f.name!r} appears in both {owner[f.name].key} and {cls.key}")
            owner[f.name] = cls
            fields[f.name] = (launchpad_type(hints[f.name]), Field(current[f.name], description=f.metadata["doc"]))

    def settings(self: dg.Config) -> dict[str, Any]:
        values = self.model_dump()
        out = {}
        for cls in sections:
            part = {k: values[k] for k, o in owner.items() if o is cls}
            part.update({k: getattr(SETTINGS.section(cls.key), k) for k in fixed if k in cls.__dataclass_fields__})
            out[cls.key] = cls.from_mapping(part, "run_config.")
        return out

    model = create_model(name, __base__=dg.Config, __doc__=doc, **fields)
    model.settings = settings  # type: ignore[attr-defined]
    model.torch_device = lambda self: resolve_device(self.device)  # type: ignore[attr-defined]
    return model


PoseBankConfig = config_class(
    "PoseBankConfig", (PoseBankSettings,),
    "How many poses, from which sources, and how diverse (params.yaml: pose_bank).",
)  # fmt: skip
ReferenceRendersConfig = config_class(
    "ReferenceRendersConfig", (RenderSettings, ReferenceRendersSettings),
    "Textured renders of posed bodies: train / test / multi-view (params.yaml: render, reference_renders).",
    fixed=("num_train", "num_val", "num_test", "multiview_subjects", "views_per_ring", "elevations_deg",
           "samples_per_shard"),  # the partitions (reference_plan); change them in params.yaml
)  # fmt: skip
ControlRendersConfig = config_class(
    "ControlRendersConfig", (RenderSettings, ControlRendersSettings),
    "PNCC control images, masks, depth and labels per shard (params.yaml: render, control_renders).",
    fixed=("num_shards",),  # the partitions; change it in params.yaml
)  # fmt: skip
PoseDetectorConfig = config_class(
    "PoseDetectorConfig", (PoseDetectorSettings,),
    "Keypoint detector trained on reference renders (or pretrained ViTPose) and the independent judge of DPO "
    "(params.yaml: pose_detector).",
)  # fmt: skip
GeneratorConfig = config_class(
    "GeneratorConfig", (GeneratorSettings,),
    "Control-conditioned generator: tiny (trained here on reference renders) or a pretrained diffusers "
    "pipeline (params.yaml: generator).",
)  # fmt: skip
DPOConfig = config_class(
    "DPOConfig", (DPOSettings,),
    "Diffusion-DPO: candidates per control, pair rule, LoRA and training (params.yaml: dpo).",
)  # fmt: skip
RoundGenerationsConfig = config_class(
    "RoundGenerationsConfig", (RenderSettings, RoundGenerationsSettings),
    "One generation shard: poses drawn from the bank (round 1 at random, round 2 the predicted hardest), "
    "control renders, DPO-generator samples, OKS (params.yaml: render, round_generations).",
    fixed=("initial_shards", "regenerate_shards", "schedule_cron"),  # partitions and schedule: params.yaml
)  # fmt: skip
HardnessConfig = config_class(
    "HardnessConfig", (HardnessSettings,),
    "Gradient-boosted regressor pose + shape -> round-1 OKS (params.yaml: hardness_model).",
)  # fmt: skip
FilteredDatasetConfig = config_class(
    "FilteredDatasetConfig", (FilterSettings,),
    "Filter stages and their thresholds, output shard size (params.yaml: filtered_dataset).",
)  # fmt: skip
HMRCheckpointsConfig = config_class(
    "HMRCheckpointsConfig", (HMRSettings,),
    "HMR model, training budget (the same for every training set) and which sets to train (params.yaml: hmr).",
    fixed=("launcher",),  # the command the training runs under: the deployment's (params.yaml), never a run's
)  # fmt: skip
BenchmarkConfig = config_class(
    "BenchmarkConfig", (BenchmarkSettings,),
    "Test sets and image-quality distances of the benchmark table (params.yaml: benchmark_scores).",
)  # fmt: skip
GSTConfig = config_class(
    "GSTConfig", (GSTSettings,),
    "GST on an HMR checkpoint: Gaussians, heads and multi-view training budget (params.yaml: gst).",
)  # fmt: skip
