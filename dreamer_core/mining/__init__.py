"""Hard-pose mining: round draws, sharded generation, difficulty cues and the cross-fitted hardness regressor."""
