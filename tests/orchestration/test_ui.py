"""`dagster dev` started from a script answers on loopback and stops cleanly by PID."""

from __future__ import annotations

import socket
import time

import pytest

from orchestration.ui import start_dagster, stop, wait_code_loaded, wait_http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dagster_dev_starts_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    port = free_port()
    proc = start_dagster(port, log=tmp_path / "dagster.log")
    try:
        assert wait_http(f"http://127.0.0.1:{port}/server_info", 120, proc), (tmp_path / "dagster.log").read_text()[
            -2000:
        ]
        assert wait_code_loaded(f"http://127.0.0.1:{port}", 120), "the code location did not load"
    finally:
        t0 = time.monotonic()
        stop(proc, timeout=20)
        elapsed = time.monotonic() - t0
    assert proc.returncode is not None and elapsed < 20
    with socket.socket() as s:  # nothing listens any more
        assert s.connect_ex(("127.0.0.1", port)) != 0
