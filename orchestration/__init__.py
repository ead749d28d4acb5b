"""Dagster orchestration: the only layer that imports dagster, mlflow or dvc (``tests/test_layering.py``)."""
