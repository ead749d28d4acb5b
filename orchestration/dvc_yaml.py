"""Generate ``dvc.yaml`` from the Dagster asset graph, so both tools agree on one DAG.

One stage per asset: its command materializes that asset through Dagster; its deps are the
code folders and params sections declared in the asset's metadata plus upstream outputs; its
out is ``data/<asset>``. ``python -m orchestration.cli dvc-yaml --check`` fails on drift.
"""

from __future__ import annotations

from typing import Any

import yaml

from dreamer_core.config import PROFILES

HEADER = (
    "# GENERATED from the Dagster asset graph by `python -m orchestration.cli dvc-yaml`.\n"
    "# Do not edit by hand: change the assets, then regenerate (a test fails on drift).\n"
)
COMMON_CODE = ["dreamer_core/config.py", "dreamer_core/io.py", "orchestration/resources", "orchestration/settings.py"]


def build_stages(defs: Any) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    stages: dict[str, Any] = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        name = key.to_user_string()
        meta = node.metadata or {}
        code = sorted(set(meta.get("dvc/code_deps", [])) | set(COMMON_CODE))
        upstream = sorted(f"data/{k.to_user_string()}" for k in node.parent_keys)
        params = ["profile"] + [f"{p}.{s}" for p in PROFILES for s in meta.get("dvc/params", [])]
        stages[name] = {
            "cmd": f"python -m orchestration.cli materialize {name}",
            "deps": code + upstream,
            "params": params,
            "outs": [f"data/{name}"],
        }
    return {"stages": stages}


def render(defs: Any) -> str:
    return HEADER + yaml.safe_dump(build_stages(defs), sort_keys=False, width=120)
