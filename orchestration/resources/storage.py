"""Where assets write: ``data/<asset_key>/`` inside the repo unless PD_DATA_DIR says otherwise."""

from __future__ import annotations

import tempfile
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
            # Fail before any work (and before the earlier output is touched), not at the first write.
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
                pass
        except OSError as exc:
            raise dg.Failure(
                f"output folder {path} is not writable ({exc.strerror or exc}); make it writable or set "
                "PD_DATA_DIR / the storage resource's root to a writable folder"
            ) from exc
        return path
