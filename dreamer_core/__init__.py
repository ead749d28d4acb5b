"""PoseDreamer core library: bodies, poses, cameras, rendering, datasets, generation, metrics.

Plain Python/PyTorch only: nothing here imports Dagster, MLflow or DVC (``tests/test_layering.py``
checks it), so every function can be tested and reused outside the orchestration layer.
"""
