"""After a run that reached the hardening suite: one line per case tried, with the error it gave."""

from __future__ import annotations

REPORT: list[tuple[str, str, str]] = []  # (case, outcome, error message)
# (asset, SIGKILLs survived, writes of its two versions, what a reader saw after the kills)
FAULTS: list[tuple[str, int, list[int], dict[str, int]]] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if FAULTS:
        total = sum(n for _, n, _, _ in FAULTS)
        terminalreporter.section(f"faults: {total} SIGKILLs survived")
        for asset, n, writes, seen in FAULTS:
            terminalreporter.write_line(f"{asset}: {n} kills survived (a complete run makes {writes} writes; "
                                        f"a reader then saw {seen})")  # fmt: skip
    if not REPORT:
        return
    terminalreporter.section(f"hardening: {len(REPORT)} bad-input cases")
    for name, outcome, message in REPORT:
        first = message.splitlines()[0] if message else ""
        terminalreporter.write_line(f"{outcome:6} {name}: {first[:160]}")
