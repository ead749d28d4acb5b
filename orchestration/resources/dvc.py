"""DVC versioning of asset outputs, through DVC's own tool environment.

DVC's hydra/omegaconf pin antlr4 4.9 while Dagster's selection parser needs 4.13, so DVC lives
in ``.venv-dvc`` and is called as a CLI. After a materialization in the UI we commit that
stage's outputs (DVC hashes them into dvc.lock and its cache) and push to the configured
remote. Inside ``dvc repro`` / ``dvc exp run`` (DVC sets DVC_STAGE for stage commands) DVC
commits for us, so we do nothing.
DVC locks the repository: commands run one at a time behind a file lock, with retries. On a
cluster the DVC workspace is a checkout on the shared volume (``PD_DVC_REPO``, with
``PD_DATA_DIR`` its ``data`` folder, see deploy/k8s), so the lock, ``dvc.lock`` and the cache are
shared by every pod and the lock makes one pod at a time the writer.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from dreamer_core.io import lock_within
from orchestration.env import REPO_ROOT, data_dir
from orchestration.resources.tracking import redact

UNDER_DVC_ENV = "DVC_STAGE"  # set by DVC for every stage command it runs


def default_dvc_bin() -> str:
    return os.environ.get("PD_DVC_BIN", str(REPO_ROOT / ".venv-dvc" / "bin" / "dvc"))


class DVCResource(dg.ConfigurableResource):
    """Commits and pushes asset outputs. Which binary runs and in which workspace come from the
    deployment's environment (PD_DVC_BIN, PD_DVC_REPO), never from a resource or run config: a
    launchpad could otherwise run any program."""

    push: bool = True
    enabled: bool = True  # PD_DVC=off also switches versioning off (a scratch data folder outside the repo)
    retries: int = 5
    lock_timeout_s: float = 900.0  # how long a commit waits for another run's DVC command

    def _repo(self) -> Path:
        return Path(os.environ.get("PD_DVC_REPO") or REPO_ROOT).resolve()

    def check_layout(self, out: str) -> None:
        """dvc.yaml's outs are ``data/<asset>`` inside the DVC workspace: assets must write there,
        or DVC would version a folder nobody wrote (or fail on a missing one)."""
        repo = self._repo()
        if not (repo / "dvc.yaml").is_file():
            raise dg.Failure(f"DVC workspace {repo} has no dvc.yaml: set PD_DVC_REPO to a checkout of this repository "
                             "(deploy/k8s: the posedreamer-init job) or switch DVC off with PD_DVC=off")  # fmt: skip
        data = data_dir()
        if "PD_DATA_DIR" in os.environ and data != repo / "data" or not (repo / out).exists():
            raise dg.Failure(f"DVC versions {repo / out}, but assets write to {data / Path(out).name} (PD_DATA_DIR): "
                             f"set PD_DATA_DIR to {repo / 'data'} (or PD_DVC_REPO to the folder above the data), "
                             "or switch DVC off with PD_DVC=off")  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        repo = self._repo()
        binary = default_dvc_bin()
        if not Path(binary).exists():
            raise dg.Failure(f"DVC not found at {binary}; run `make setup` (it creates .venv-dvc) or set PD_DVC_BIN")
        lock_path = repo / ".dvc" / "tmp" / "pd-resource.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
        with open(lock_path, "w") as lock:
            self._lock(lock, lock_path)
            for attempt in range(self.retries):
                proc = subprocess.run([binary, *args], cwd=repo, env=env, capture_output=True, text=True)
                if proc.returncode == 0 or "lock" not in (proc.stderr + proc.stdout).lower():
                    break
                time.sleep(0.5 * (attempt + 1))  # another DVC command holds the repo lock
        if proc.returncode != 0:  # DVC's stderr may hold a remote URL with its credentials
            raise dg.Failure(f"`dvc {' '.join(args)}` failed:\n{redact(proc.stderr.strip() or proc.stdout.strip())}")
        return proc

    def _lock(self, lock: Any, path: Path) -> None:
        """The workspace's writer lock (one DVC command at a time across processes and pods), waited
        for at most ``lock_timeout_s``: a stuck holder fails this step with a message, not forever."""
        if not lock_within(lock, self.lock_timeout_s, poll=0.5):
            raise dg.Failure(f"the DVC workspace lock {path} was held by another run for more than "
                             f"{self.lock_timeout_s:.0f} s; rerun this step when it is free")  # fmt: skip

    def out_hash(self, stage: str, out: str) -> str | None:
        lock = self._repo() / "dvc.lock"
        if not lock.exists():
            return None
        data = yaml.safe_load(lock.read_text()) or {}
        for entry in data.get("stages", {}).get(stage, {}).get("outs", []):
            if entry.get("path") == out:
                return entry.get("md5")
        return None

    def version_output(self, stage: str, out: str, log: Any) -> dict[str, str]:
        """Commit (and push) one stage's outputs; return metadata for the asset."""
        if not self.enabled or os.environ.get("PD_DVC", "on").lower() in ("off", "0", "false"):
            return {"dvc_hash": "disabled"}
        if os.environ.get(UNDER_DVC_ENV):
            return {"dvc_hash": "committed by dvc repro"}
        self.check_layout(out)
        log.info(f"dvc commit {stage}")
        self.run("commit", "--force", "--quiet", stage)
        digest = self.out_hash(stage, out) or "unknown"
        meta = {"dvc_hash": digest}
        if self.push:
            log.info(f"dvc push {stage}")
            self.run("push", "--quiet", stage)
            meta["dvc_remote"] = "pushed"
        return meta
