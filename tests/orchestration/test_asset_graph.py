"""A snapshot of the asset graph: every asset's key, upstream keys, group, partitions, kinds, pool,
definition metadata and check names. The graph is what users schedule, backfill and version with
DVC, so a change to it is made on purpose: rerun with ``UPDATE_ASSET_GRAPH=1`` and review the diff
of ``asset_graph.json`` in the commit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.definitions import defs

SNAPSHOT = Path(__file__).with_name("asset_graph.json")


def _partitions(pdef: Any) -> Any:
    if pdef is None:
        return None
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return {"dynamic": pdef.name}
    if isinstance(pdef, dg.StaticPartitionsDefinition):
        keys = pdef.get_partition_keys()
        return {"static": len(keys), "first": keys[0], "last": keys[-1]}
    return type(pdef).__name__


def graph_snapshot() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        out[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "kinds": sorted(node.kinds),
            "pools": sorted(node.pools or []),
            "metadata": {k: v for k, v in sorted((node.metadata or {}).items())},
            "checks": sorted(c.name for c in node.check_keys),
        }
    return out


def test_asset_graph_matches_its_snapshot():
    current = graph_snapshot()
    if os.environ.get("UPDATE_ASSET_GRAPH"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    saved = json.loads(SNAPSHOT.read_text())
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    assert not changed, (
        f"the asset graph changed for {changed}; if on purpose, rerun with UPDATE_ASSET_GRAPH=1 and commit "
        f"tests/orchestration/asset_graph.json. Now: {json.dumps({k: current.get(k) for k in changed}, indent=1)}"
    )


def test_groups_are_the_modules_that_define_them():
    """Module = group = what it holds: an asset's Dagster group is the name of its module."""
    graph = defs.resolve_asset_graph()
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        module = node.assets_def.op.compute_fn.decorated_fn.__module__.rsplit(".", 1)[1]
        assert node.group_name == module, f"{key.to_user_string()}: group {node.group_name}, module {module}"


def test_partition_mappings_are_valid():
    """What `dagster definitions validate` (and so the web UI's code location) checks: a
    partitioned asset's partitioned upstream with another partition set needs an explicit mapping
    (the rounds on reference_renders' partitions)."""
    from orchestration.definitions import defs

    defs.resolve_asset_graph().validate_partitions()
