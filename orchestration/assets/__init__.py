"""Asset groups, one module each: the module, its Dagster group and what it holds share one name."""
