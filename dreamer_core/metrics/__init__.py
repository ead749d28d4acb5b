"""Evaluation metrics shared by the benchmarks (3D pose and shape errors)."""
