"""Hard-pose mining: round draws, sharded generation, and the hardness regressor."""
