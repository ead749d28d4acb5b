"""Where assets write: ``data/<asset_key>/`` inside the repo unless PD_DATA_DIR says otherwise."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration.env import data_dir


class StorageResource(dg.ConfigurableResource):
    root: str = ""  # empty: PD_DATA_DIR or <repo>/data

    def asset_dir(self, asset_key: str) -> Path:
        base = Path(self.root).expanduser().resolve() if self.root else data_dir()
        path = base / asset_key
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise dg.Failure(
                f"cannot create output folder {path} ({exc.strerror}); make it writable or set "
                "PD_DATA_DIR / the storage resource's root to a writable folder"
            ) from exc
        return path
