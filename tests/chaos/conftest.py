"""Prints the fault table after the chaos tests ran."""

from __future__ import annotations

import pytest

from tests.chaos.test_faults import summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = summary()
    if lines:
        terminalreporter.section("faults injected: every acknowledged order accounted for")
        for line in lines:
            terminalreporter.write_line(line)
