"""Where assets write: ``data/<asset_key>/`` inside the repo unless PD_DATA_DIR says otherwise."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import dagster as dg

from dreamer_core.io import lock_within
from orchestration.env import data_dir


class StorageResource(dg.ConfigurableResource):
    root: str = ""  # empty: PD_DATA_DIR or <repo>/data

    def base(self) -> Path:
        return Path(self.root).expanduser().resolve() if self.root else data_dir()

    @contextmanager
    def run_lock(self, name: str, run_id: str, wait_s: float = 10.0) -> Iterator[None]:
        """Held while one run writes ``name`` (an asset, or an asset's partition): a second run of
        it waits ``wait_s`` (a run just finishing), then fails with the holder's run, host and pid
        instead of interleaving its writes with the first's. An ``flock`` on the data volume: it
        holds across the processes and pods that share the volume where the volume maps it onto
        POSIX byte-range locks (NFSv4, CephFS, EFS); the kernel drops it when the holder dies (a
        dead node's, when its lease expires), so a killed run never leaves it stuck. Child
        processes (Pipes trainings) do not hold it themselves."""
        folder = self.base() / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{quote(name, safe='')}.lock"  # a partition key may hold '/'; the name stays one file
        with open(path, "a+") as fh:
            if not lock_within(fh, wait_s):
                fh.seek(0)
                holder = fh.read().strip() or "another run"
                raise dg.Failure(f"{name} is being materialized by {holder}; wait for that run to finish (or "
                                 "cancel it), then launch this one again", allow_retries=False)  # fmt: skip
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"run": run_id, "host": socket.gethostname(), "pid": os.getpid()}))
            fh.flush()
            try:
                yield
            finally:
                fh.truncate(0)

    def asset_dir(self, asset_key: str) -> Path:
        path = self.base() / asset_key
        try:
            path.mkdir(parents=True, exist_ok=True)
            # Fail before any work (and before the earlier output is touched), not at the first write.
            # An unnamed file (O_TMPFILE where the file system has it): a run killed here leaves no
            # probe in the output folder (the fault suite found one there, versioned with the data).
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise dg.Failure(
                f"output folder {path} is not writable ({exc.strerror or exc}); make it writable or set "
                "PD_DATA_DIR / the storage resource's root to a writable folder"
            ) from exc
        return path
