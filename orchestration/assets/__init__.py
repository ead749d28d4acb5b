"""Asset groups, one module each: the module, its Dagster group and what it holds share one name."""

import warnings

import dagster as dg

# Checks of partitioned assets are partitioned too, so that a partition's run checks that partition
# only (see shard_checks.py). Dagster 1.13 calls partitioned checks "preview"; the version in
# requirements/lock.txt is the one the tests run, so the warning would only repeat at every import.
warnings.filterwarnings("ignore", "Specifying a partitions_def on an AssetCheckSpec", dg.PreviewWarning)
