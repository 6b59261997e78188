"""CI's second pass (TEST_BACKENDS_ONLY=1) runs the tests that reach a
backend, and leaves out those that reach none."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def collected(*args: str, backends_only: bool) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_BACKENDS_ONLY"}
    if backends_only:
        env["TEST_BACKENDS_ONLY"] = "1"
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in listing.splitlines() if "::" in line}


def test_the_second_pass_keeps_what_reaches_a_backend_or_is_the_stack() -> None:
    files = ("tests/test_amounts.py", "tests/test_store.py", "tests/test_stack.py")
    everything = collected(*files, backends_only=False)
    kept = collected(*files, backends_only=True)
    assert kept < everything
    # Pure arithmetic reaches no backend: it ran in the first pass.
    assert not any(test.startswith("tests/test_amounts.py") for test in kept)
    # The stack's tests read TEST_* themselves: every one is kept.
    assert {t for t in everything if t.startswith("tests/test_stack.py")} <= kept
    # A file can go either way: the store's tests on the database given are
    # kept, those on an SQLite file of their own are not.
    store = {t for t in everything if t.startswith("tests/test_store.py")}
    assert store & kept and store - kept
