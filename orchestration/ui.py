"""`make ui`: the Dagster web UI and the MLflow UI on 127.0.0.1, stopped together on Ctrl-C.

Each server runs in its own process session: started with a bare `&`, `dagster dev` ignores
SIGINT/SIGTERM and hangs; in its own session we can stop its whole process group by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from orchestration.env import (
    MLFLOW_UI_URL_ENV,
    REPO_ROOT,
    default_artifact_root,
    default_tracking_uri,
    ensure_dagster_home,
)

HOST = "127.0.0.1"


def _default_signals() -> None:
    """In the child before exec: Ctrl-C / SIGTERM back to their defaults. A shell's background job
    (`make ui &`, nohup, CI wrappers) starts with SIGINT ignored, which the servers inherit; `dagster
    dev` then cannot pass the interrupt on to its webserver and never stops (measured: the UI test
    fails only when run as a background job)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start_dagster(
    port: int, log: Path | None = None, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``dagster dev`` (webserver + daemon) for the code location in ``cwd``. ``env`` must carry
    DAGSTER_HOME when given; by default the repo's instance is used (and created)."""
    if env is None:
        ensure_dagster_home()
    exe = Path(sys.executable).parent / "dagster"
    out = open(log, "wb") if log else None  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(
        [str(exe), "dev", "-m", "orchestration.definitions", "-h", HOST, "-p", str(port)],
        cwd=cwd, env=env, start_new_session=True, preexec_fn=_default_signals, stdout=out,
        stderr=subprocess.STDOUT if out else None,
    )  # fmt: skip


def start_mlflow(
    port: int,
    log: Path | None = None,
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """The MLflow UI over the pipeline's tracking store (default: the repo's SQLite file)."""
    exe = Path(sys.executable).parent / "mlflow"
    uri = tracking_uri or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    env = {**(os.environ if env is None else env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    out = open(log, "wb") if log else None  # noqa: SIM115
    return subprocess.Popen(
        [str(exe), "server", "--host", HOST, "--port", str(port), "--workers", "1",
         "--backend-store-uri", uri, "--default-artifact-root", artifact_root or default_artifact_root()],
        cwd=REPO_ROOT, env=env, start_new_session=True, preexec_fn=_default_signals, stdout=out,
        stderr=subprocess.STDOUT if out else None,
    )  # fmt: skip


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def wait_code_loaded(url: str, timeout: float) -> bool:
    """Wait until the webserver at ``url`` reports every code location loaded (the UI a person
    sees is then usable)."""
    query = b'{"query": "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"}'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(f"{url}/graphql", data=query, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                entries = json.load(r)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return True
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.5)
    return False


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dagster-port", type=int, default=int(os.environ.get("DAGSTER_PORT", 3000)))
    parser.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", 5000)))
    args = parser.parse_args()
    # Ctrl-C (and a SIGTERM from a supervisor) stop both servers even when this process started
    # with SIGINT ignored, as a background job does (Python then installs no KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    urls = [f"http://{HOST}:{args.dagster_port}", f"http://{HOST}:{args.mlflow_port}"]
    ensure_dagster_home()
    # Asset pages link their MLflow runs on the port this MLflow UI really uses.
    dagster_env = {**os.environ, MLFLOW_UI_URL_ENV: urls[1]}
    procs = [start_dagster(args.dagster_port, env=dagster_env), start_mlflow(args.mlflow_port)]
    try:
        for name, url, proc in zip(("Dagster", "MLflow"), urls, procs, strict=True):
            ok = wait_http(url, 90, proc)
            print(f"{name} UI: {url}" + ("" if ok else "  (did not answer yet; see its log above)"), flush=True)
        print("Ctrl-C stops both.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            stop(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
