"""Generate ``dvc.yaml`` from the Dagster asset graph, so both tools agree on one DAG.

One stage per asset: its command materializes that asset through Dagster; its deps are every
project file the asset's module runs (the closure of its imports, ``orchestration.code_deps``),
the params sections declared in the asset's metadata and the upstream outputs; its out is
``data/<asset>``. ``python -m orchestration.cli dvc-yaml --check`` fails on drift.
"""

from __future__ import annotations

from typing import Any

import yaml

from dreamer_core.config import PROFILES, read_params
from orchestration.code_deps import import_closure
from orchestration.env import REPO_ROOT

HEADER = (
    "# GENERATED from the Dagster asset graph by `python -m orchestration.cli dvc-yaml`.\n"
    "# Do not edit by hand: change the assets, then regenerate (a test fails on drift).\n"
)
# Resources reach every asset through the Definitions, whether or not its module imports them.
COMMON_MODULES = ["orchestration.resources", "orchestration.settings"]


def asset_module(node: Any) -> str:
    """The module that defines an asset's compute function (its checks live beside it)."""
    return node.assets_def.op.compute_fn.decorated_fn.__module__


def build_stages(defs: Any) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    raw = read_params()
    stages: dict[str, Any] = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        name = key.to_user_string()
        meta = node.metadata or {}
        code = import_closure(REPO_ROOT, [asset_module(node), *COMMON_MODULES])
        upstream = sorted(f"data/{k.to_user_string()}" for k in node.parent_keys)
        # A profile lists only what it changes; the defaults are code (a dep of every stage, through config).
        listed = [(p, s) for p in PROFILES for s in meta.get("dvc/params", []) if s in (raw.get(p) or {})]
        params = ["profile"] + [f"{p}.{s}" for p, s in listed]
        stages[name] = {
            "cmd": f"python -m orchestration.cli materialize {name}",
            "deps": code + upstream,
            "params": params,
            # persist: DVC must not delete the output before `dvc repro` runs the stage; the asset
            # replaces its own files and keeps its caches (resume states, filter scores).
            "outs": [{f"data/{name}": {"persist": True}}],
        }
    return {"stages": stages}


def render(defs: Any) -> str:
    return HEADER + yaml.safe_dump(build_stages(defs), sort_keys=False, width=120)
