"""`make ui` (python -m orchestration.ui): both UIs on loopback only, URLs printed, Ctrl-C stops both."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.ui import wait_code_loaded, wait_http
from tests.helpers.repo import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listeners(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:  # 0A: LISTEN
                found.append(addr)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


@pytest.mark.slow
def test_make_ui_serves_on_loopback_and_stops_on_ctrl_c(tmp_path):
    dport, mport = free_port(), free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PD_MLFLOW_ARTIFACT_ROOT": (tmp_path / "artifacts").as_uri(),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.ui", "--dagster-port", str(dport), "--mlflow-port", str(mport)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert wait_http(f"http://127.0.0.1:{dport}/server_info", 120, proc), "Dagster did not answer"
        assert wait_http(f"http://127.0.0.1:{mport}/health", 120, proc), "MLflow did not answer"
        assert wait_code_loaded(f"http://127.0.0.1:{dport}", 120), "the code location did not load"
        while len(lines) < 3:  # "Dagster UI: ...", "MLflow UI: ...", "Ctrl-C stops both."
            line = proc.stdout.readline()
            assert line, "make ui exited early"
            if line.startswith(("Dagster UI", "MLflow UI", "Ctrl-C")):
                lines.append(line.strip())
        for port in (dport, mport):
            bound = listeners(port)
            assert bound and set(bound) <= LOOPBACK, f"port {port} listens on {bound}, not loopback only"
    finally:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            proc.kill()
        elapsed = time.monotonic() - t0
    urls = [f"Dagster UI: http://127.0.0.1:{dport}", f"MLflow UI: http://127.0.0.1:{mport}"]
    assert lines == [*urls, "Ctrl-C stops both."]
    assert proc.returncode == 0 and elapsed < 45, (proc.returncode, elapsed)
    time.sleep(1.0)
    for port in (dport, mport):
        assert not listeners(port), f"something still listens on {port} after Ctrl-C"
