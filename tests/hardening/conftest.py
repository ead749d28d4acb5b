"""After a run that reached the hardening suite: one line per case tried, with the error it gave."""

from __future__ import annotations

REPORT: list[tuple[str, str, str]] = []  # (case, outcome, error message)


def pytest_terminal_summary(terminalreporter) -> None:
    if not REPORT:
        return
    terminalreporter.section(f"hardening: {len(REPORT)} bad-input cases")
    for name, outcome, message in REPORT:
        first = message.splitlines()[0] if message else ""
        terminalreporter.write_line(f"{outcome:6} {name}: {first[:160]}")
