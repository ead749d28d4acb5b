"""Dagster orchestration: the only layer that imports dagster, mlflow or dvc (DESIGN.md section 3)."""
